"""Unpaired datasets for CycleGAN: two folders of images, `ROOT/trainA` and `ROOT/trainB` (`testA`/`testB`
for the test split), with no correspondence between them, as the official CycleGAN releases lay them out.
"""

from __future__ import annotations

import random
from collections.abc import Iterable
from pathlib import Path

import torch
from PIL import Image
from torch.utils.data import Dataset

from pix2pix.data.images import (
    IMAGE_EXTENSIONS,
    DataError,
    list_images,
    load_image,
    read_image_header,
    resize_for_inference,
)
from pix2pix.data.layout import DIRECTIONS
from pix2pix.data.tensors import image_to_tensor
from pix2pix.data.transforms import (
    PreprocessOptions,
    apply_preprocess,
    check_preprocess,
    sample_jitter,
    test_time_size,
)


class UnpairedDataset(Dataset):
    """Items {"A": (in_channels, H, W), "B": (out_channels, H, W), "A_name", "B_name"} from `root/{split}A` and
    `root/{split}B`, as the official `unaligned_dataset.py`: A in order, B drawn at random, and each image
    jittered on its own (there is no alignment to keep). With `direction="BtoA"` the folders swap roles, so
    "A" is always the domain translated from and G_A the generator that is kept.

    The length is that of the larger folder; the smaller one's images are reused. The B drawn and both
    jitters come from an RNG seeded by (seed, epoch, index), as in PairedDataset, so they do not depend on
    the number of DataLoader workers and a resumed run sees the same items; call `set_epoch` before each
    epoch. Without `train`, B is taken in order too (`index % len(B)`, the official test mode) and
    images are only resized. `images`: the (A, B) image files to use when the caller has checked them
    (training/inputs.py); by default every image of the two folders.
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
        images: tuple[list[Path], list[Path]] | None = None,
    ) -> None:
        if direction not in DIRECTIONS:
            raise ValueError(f"unknown direction {direction!r}; allowed: {', '.join(DIRECTIONS)}")
        for name, channels in (("in_channels", in_channels), ("out_channels", out_channels)):
            if channels not in (1, 3):
                raise ValueError(f"{name} must be 1 or 3, got {channels!r}")
        check_preprocess(preprocess, load_size=load_size, crop_size=crop_size, size_multiple=size_multiple)
        self.a_paths, self.b_paths = images or find_unpaired_images(Path(root), split, direction)
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.options: PreprocessOptions = {"preprocess": preprocess, "load_size": load_size, "crop_size": crop_size}
        self.flip = flip
        self.size_multiple = size_multiple
        self.train = train
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return max(len(self.a_paths), len(self.b_paths))

    def __getitem__(self, index: int) -> dict[str, torch.Tensor | str]:
        index = range(len(self))[index]  # IndexError when out of range; -1 -> last
        # hash() of a tuple of ints does not depend on PYTHONHASHSEED, so every process agrees.
        rng = random.Random(hash((self.seed, self.epoch, index)))
        a_path = self.a_paths[index % len(self.a_paths)]
        b_path = self.b_paths[rng.randrange(len(self.b_paths)) if self.train else index % len(self.b_paths)]
        a = self._preprocess(load_image(a_path, self.in_channels), a_path, rng)
        b = self._preprocess(load_image(b_path, self.out_channels), b_path, rng)
        return {"A": image_to_tensor(a), "B": image_to_tensor(b), "A_name": a_path.stem, "B_name": b_path.stem}

    def test_time_images(self, domain: str) -> list[torch.Tensor]:
        """Every image of domain "A" or "B", once each, as given at test time: what validation scores
        (items pair each image of the larger domain with a repeated one of the smaller)."""
        if domain not in ("A", "B"):
            raise ValueError(f"domain must be 'A' or 'B', got {domain!r}")
        paths, channels = (self.a_paths, self.in_channels) if domain == "A" else (self.b_paths, self.out_channels)
        return [image_to_tensor(self._at_test_time(load_image(path, channels))) for path in paths]

    def test_time_size(self, path: Path) -> tuple[int, int]:
        """(width, height) the image at `path` is given at when not training, from its file header alone."""
        return test_time_size(read_image_header(path), size_multiple=self.size_multiple, **self.options)

    def _preprocess(self, image: Image.Image, path: Path, rng: random.Random) -> Image.Image:
        """A jitter of the image's own when training; the test-time resize otherwise."""
        if not self.train:
            return self._at_test_time(image)
        try:
            jitter = sample_jitter(rng, image.size, flip=self.flip, **self.options)
        except ValueError as err:  # e.g. an image smaller than crop_size
            raise DataError(f"{path}: {err}") from err
        return apply_preprocess(image, jitter, size_multiple=self.size_multiple, **self.options)

    def _at_test_time(self, image: Image.Image) -> Image.Image:
        size = test_time_size(image.size, size_multiple=self.size_multiple, **self.options)
        return resize_for_inference(image, size)


def find_unpaired_images(root: Path, split: str, direction: str) -> tuple[list[Path], list[Path]]:
    """The images translated from and the images translated to: ROOT/SPLITA and ROOT/SPLITB, swapped for
    BtoA."""
    source, target = (f"{split}A", f"{split}B") if direction == "AtoB" else (f"{split}B", f"{split}A")
    return find_domain_images(root / source), find_domain_images(root / target)


def find_domain_images(folder: Path) -> list[Path]:
    """The images of one domain's folder, sorted by file name (as the official code sorts them)."""
    if not folder.is_dir():
        raise DataError(
            f"{folder}: folder not found; an unpaired dataset has one per domain (ROOT/trainA, ROOT/trainB)"
        )
    paths = list(list_images(folder).values())
    if not paths:
        raise DataError(f"{folder}: no images found (looked for {', '.join(sorted(IMAGE_EXTENSIONS))})")
    return paths


def find_bad_images(paths: Iterable[Path]) -> list[tuple[Path, str]]:
    """Every image whose header check fails (unreadable, truncated, not an image), with the one-line reason."""
    bad = []
    for path in paths:
        try:
            read_image_header(path)
        except DataError as err:
            bad.append((path, str(err)))
    return bad
