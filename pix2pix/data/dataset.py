"""Paired image datasets on disk, in either of the two usual layouts.

* side by side (the pix2pix releases): `ROOT/SPLIT/name.jpg`, each file holding A | B;
* two folders: `ROOT/SPLIT/A/name.ext` and `ROOT/SPLIT/B/name.ext`, matched by file stem.
"""

from __future__ import annotations

import random
import re
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from PIL import Image
from torch.utils.data import Dataset

from pix2pix.data.images import (
    IMAGE_EXTENSIONS,
    DataError,
    convert_channels,
    list_images,
    load_image,
    read_image_header,
    resize_for_inference,
    split_pair,
)
from pix2pix.data.lab import check_color_space
from pix2pix.data.tensors import image_to_lab_tensors, image_to_tensor
from pix2pix.data.transforms import (
    apply_preprocess,
    check_preprocess,
    sample_jitter,
    test_time_size,
)

DIRECTIONS = ("AtoB", "BtoA")

_MAX_NAMED = 5  # file names quoted in an error before "..."


@dataclass(frozen=True)
class PairFile:
    """One training pair: a side-by-side file (`b_path` None) or an A file and a B file."""

    name: str
    a_path: Path
    b_path: Path | None


def find_pairs(root: Path | str, split: str) -> list[PairFile]:
    """List the pairs of `root/split`, naturally sorted by name (2 before 10)."""
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"{root}: dataset root not found (or not a folder)")
    split_dir = root / split
    if not split_dir.is_dir():
        existing = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
        folders = ", ".join(existing) or "none"
        raise DataError(f"{split_dir}: split folder not found; folders in {root}: {folders}")
    a_dir, b_dir = split_dir / "A", split_dir / "B"
    if a_dir.is_dir() and b_dir.is_dir():
        pairs = _match_folders(_scan_images(a_dir), _scan_images(b_dir), split_dir)
    else:
        pairs = [PairFile(name, path, None) for name, path in _scan_images(split_dir).items()]
    return sorted(pairs, key=lambda pair: _natural_key(pair.name))


def load_pair(
    pair: PairFile, *, direction: str, in_channels: int, out_channels: int
) -> tuple[Image.Image, Image.Image]:
    """Decode a pair and return (source, target) with `in_channels` / `out_channels` channels."""
    if direction not in DIRECTIONS:
        raise ValueError(f"unknown direction {direction!r}; allowed: {', '.join(DIRECTIONS)}")
    a_channels, b_channels = (in_channels, out_channels)
    if direction == "BtoA":
        a_channels, b_channels = b_channels, a_channels
    if pair.b_path is None:
        # Decode once with enough channels for both halves, then convert each half.
        whole = load_image(pair.a_path, max(a_channels, b_channels))
        a, b = split_pair(whole, pair.a_path)
        a, b = convert_channels(a, a_channels), convert_channels(b, b_channels)
    else:
        a, b = load_image(pair.a_path, a_channels), load_image(pair.b_path, b_channels)
        if a.size != b.size:
            raise DataError(
                f"{pair.a_path} is {a.size[0]}x{a.size[1]} but {pair.b_path} is "
                f"{b.size[0]}x{b.size[1]}; A and B of a pair must have the same size"
            )
    return (a, b) if direction == "AtoB" else (b, a)


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
                warnings.warn(f"skipping {err}", stacklevel=2)
        raise DataError(f"no pair of {len(self.pairs)} could be decoded (first: {self.pairs[0].a_path})")

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
        options = {"preprocess": self.preprocess, "load_size": self.load_size, "crop_size": self.crop_size}
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


def check_pair_headers(pair: PairFile) -> None:
    """Header-only check of one pair (readable, splittable, A and B the same size); DataError if not."""
    a_size = read_image_header(pair.a_path)
    if pair.b_path is None:
        if a_size[0] % 2:
            raise DataError(f"{pair.a_path}: width {a_size[0]} is odd, so it cannot be split into equal A|B halves")
        return
    b_size = read_image_header(pair.b_path)
    if a_size != b_size:
        raise DataError(f"{pair.a_path} is {a_size[0]}x{a_size[1]} but {pair.b_path} is {b_size[0]}x{b_size[1]}")


def find_bad_pairs(pairs: Iterable[PairFile]) -> list[tuple[PairFile, str]]:
    """Every pair that fails `check_pair_headers`, with the one-line reason."""
    bad = []
    for pair in pairs:
        try:
            check_pair_headers(pair)
        except DataError as err:
            bad.append((pair, str(err)))
    return bad


def _scan_images(folder: Path) -> dict[str, Path]:
    """`list_images`, where a split without images is an error."""
    found = list_images(folder)
    if not found:
        extensions = ", ".join(sorted(IMAGE_EXTENSIONS))
        raise DataError(f"{folder}: no images found (looked for {extensions})")
    return found


def _match_folders(a_files: dict[str, Path], b_files: dict[str, Path], split_dir: Path) -> list[PairFile]:
    only_a = sorted(set(a_files) - set(b_files), key=_natural_key)
    only_b = sorted(set(b_files) - set(a_files), key=_natural_key)
    if only_a or only_b:
        problems = [
            f"{len(names)} only in {side} ({_list_some(files[n].name for n in names)})"
            for side, names, files in (("A", only_a, a_files), ("B", only_b, b_files))
            if names
        ]
        raise DataError(f"{split_dir}: A and B do not match by name: {'; '.join(problems)}")
    return [PairFile(name, a_files[name], b_files[name]) for name in a_files]


def _list_some(names: Iterable[str]) -> str:
    names = list(names)
    shown = ", ".join(names[:_MAX_NAMED])
    return shown + (", ..." if len(names) > _MAX_NAMED else "")


def _natural_key(name: str) -> tuple[list[int | str], str]:
    # Alternating text and number chunks, so "2" sorts before "10" and "a2" before "a10";
    # the name itself breaks ties such as "01" vs "1".
    chunks = re.split(r"(\d+)", name)
    return [int(c) if c.isdecimal() else c.lower() for c in chunks], name
