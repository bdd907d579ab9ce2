"""Which files make the pairs of a split, in either of the two usual layouts, and reading one pair.

* side by side (the pix2pix releases): `ROOT/SPLIT/name.jpg`, each file holding A | B;
* two folders: `ROOT/SPLIT/A/name.ext` and `ROOT/SPLIT/B/name.ext`, matched by file stem.

Pillow only, no torch: the data tools and the torch-free deployment use it too.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from pix2pix.data.images import (
    IMAGE_EXTENSIONS,
    DataError,
    convert_channels,
    list_images,
    load_image,
    read_image_header,
    split_pair,
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


def pair_image_size(pair: PairFile) -> tuple[int, int]:
    """(width, height) of each of the pair's two images, from the file headers (half a side-by-side file)."""
    width, height = read_image_header(pair.a_path)
    return (width // 2, height) if pair.b_path is None else (width, height)


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
