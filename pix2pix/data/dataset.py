"""Paired datasets as the networks see them: decoded, jittered and converted to tensors.

Which files form the pairs is pix2pix.data.layout's business.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Sequence
from pathlib import Path

import torch
from PIL import Image
from torch.utils.data import Dataset

from pix2pix.data.images import DataError, resize_for_inference
from pix2pix.data.lab import check_color_space
from pix2pix.data.layout import DIRECTIONS, PairFile, find_pairs, load_pair, pair_image_size
from pix2pix.data.tensors import image_to_lab_tensors, image_to_tensor
from pix2pix.data.transforms import (
    PreprocessOptions,
    apply_preprocess,
    check_preprocess,
    sample_jitter,
    test_time_size,
)

logger = logging.getLogger(__name__)


class PairedDataset(Dataset):
    """Pairs of `root/split` as {"source": (in_channels, H, W), "target": (out_channels, H, W), "name"}.

    With `color_space="lab"` (colorization) only the target photo is read: source is its L (1, H, W)
    and target its ab (2, H, W), as in pix2pix-tensorflow's `lab_colorization`.

    Images are decoded per item, never cached. Training jitter comes from an RNG seeded by
    (seed, epoch, index), so it does not depend on the number of DataLoader workers and a resumed
    run sees the same crops. Call `set_epoch` before each epoch's DataLoader is iterated (with
    persistent workers, the workers keep the epoch they were started with).

    With `skip_bad`, a pair that fails to decode (e.g. a JPEG truncated after a valid header, which the
    start-up header check cannot see) is replaced by the next readable pair, with a warning naming it.
    """

    def __init__(
        self,
        root: Path | str,
        split: str,
        *,
        direction: str = "AtoB",
        in_channels: int = 3,
        out_channels: int = 3,
        preprocess: str = "resize_and_crop",
        load_size: int = 286,
        crop_size: int = 256,
        flip: bool = True,
        size_multiple: int = 1,
        train: bool = True,
        seed: int = 0,
        pairs: Sequence[PairFile] | None = None,
        color_space: str = "rgb",
        skip_bad: bool = False,
    ) -> None:
        if direction not in DIRECTIONS:
            raise ValueError(f"unknown direction {direction!r}; allowed: {', '.join(DIRECTIONS)}")
        check_color_space(color_space, in_channels=in_channels, out_channels=out_channels)
        for name, channels in (("in_channels", in_channels), ("out_channels", out_channels)):
            if color_space == "rgb" and channels not in (1, 3):
                raise ValueError(f"{name} must be 1 or 3, got {channels!r}")
        check_preprocess(preprocess, load_size=load_size, crop_size=crop_size, size_multiple=size_multiple)
        # `pairs` lets a caller pass a checked subset (e.g. with bad files skipped)
        self.pairs = list(pairs) if pairs is not None else find_pairs(root, split)
        self.direction = direction
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.preprocess = preprocess
        self.load_size = load_size
        self.crop_size = crop_size
        self.flip = flip
        self.size_multiple = size_multiple
        self.train = train
        self.seed = seed
        self.color_space = color_space
        self.skip_bad = skip_bad
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor | str]:
        index = range(len(self.pairs))[index]  # IndexError when out of range; -1 -> last
        if not self.skip_bad:
            return self._load_item(index)
        for offset in range(len(self.pairs)):
            substitute = (index + offset) % len(self.pairs)
            try:
                return self._load_item(substitute)
            except DataError as err:
                logger.warning("skipping %s", err)
        raise DataError(f"no pair of {len(self.pairs)} could be decoded (first: {self.pairs[0].a_path})")

    def test_time_size(self, index: int) -> tuple[int, int]:
        """(width, height) pair `index` is given at when not training, from its file headers alone."""
        size = pair_image_size(self.pairs[index])
        return test_time_size(size, size_multiple=self.size_multiple, **self._preprocess_options)

    @property
    def _preprocess_options(self) -> PreprocessOptions:
        return {"preprocess": self.preprocess, "load_size": self.load_size, "crop_size": self.crop_size}

    def _load_item(self, index: int) -> dict[str, torch.Tensor | str]:
        pair = self.pairs[index]
        if self.color_space == "lab":
            _, photo = load_pair(pair, direction=self.direction, in_channels=3, out_channels=3)
            (photo,) = self._preprocess([photo], index, pair)
            lightness, ab = image_to_lab_tensors(photo)  # one jittered photo, so L and ab always line up
            return {"source": lightness, "target": ab, "name": pair.name}
        channels = {"in_channels": self.in_channels, "out_channels": self.out_channels}
        source, target = load_pair(pair, direction=self.direction, **channels)
        source, target = self._preprocess([source, target], index, pair)
        return {"source": image_to_tensor(source), "target": image_to_tensor(target), "name": pair.name}

    def _preprocess(self, images: list[Image.Image], index: int, pair: PairFile) -> list[Image.Image]:
        """The same resize, crop and flip for every image of the pair; without jitter when not training."""
        options = self._preprocess_options
        if not self.train:
            size = test_time_size(images[0].size, size_multiple=self.size_multiple, **options)
            return [resize_for_inference(image, size) for image in images]
        # hash() of a tuple of ints does not depend on PYTHONHASHSEED, so every process agrees.
        rng = random.Random(hash((self.seed, self.epoch, index)))
        try:
            jitter = sample_jitter(rng, images[0].size, flip=self.flip, **options)
        except ValueError as err:  # e.g. an image smaller than crop_size
            raise DataError(f"{pair.a_path}: {err}") from err
        return [apply_preprocess(image, jitter, size_multiple=self.size_multiple, **options) for image in images]
