"""A paired dataset laid out for unpaired training (CycleGAN): `pix2pix data unpair ROOT --out NEW`.

Each split's pairs are cut into their halves: NEW/SPLITA gets the halves translated from (as
`--direction` reads the pairs) and NEW/SPLITB the halves translated to, as the CycleGAN releases lay out
their data (their facades set is pix2pix's, unpaired this way). With `--disjoint` the training pairs are
halved first, A from the first half and B from the second, so no training image has its counterpart in
the other domain; held-out splits stay whole, so a translation can be set beside its target.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from tqdm import tqdm

from pix2pix.data.images import DataError
from pix2pix.data.layout import find_pairs, load_pair

HELD_OUT = ("val", "test")  # an empty folder of these is left out


def unpair(source: Path | str, out: Path | str, *, direction: str = "AtoB", disjoint: bool = False) -> dict:
    """Write OUT from the paired SOURCE; returns {split: (A images, B images)}. OUT must be new or empty."""
    source, out = Path(source), Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise DataError(f"{out}: output folder exists and is not empty")
    find_pairs(source, "train")  # a DataError that says what is wrong, before anything is written
    held_out = [split for split in HELD_OUT if (source / split).is_dir() and any((source / split).iterdir())]
    splits = ["train", *held_out]
    # built beside OUT and renamed, so a failure never leaves half a dataset
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}-", dir=out.parent))
    try:
        counts = {split: write_split(source, staging, split, direction, disjoint=disjoint) for split in splits}
        if out.exists():
            out.rmdir()  # empty, as checked
        staging.rename(out)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return counts


def write_split(source: Path, out: Path, split: str, direction: str, *, disjoint: bool) -> tuple[int, int]:
    """OUT/SPLITA and OUT/SPLITB from SOURCE/SPLIT's pairs, as PNG (lossless: no second JPEG encoding)."""
    pairs = find_pairs(source, split)
    half = len(pairs) // 2
    a_pairs, b_pairs = (pairs[:half], pairs[half:]) if disjoint and split == "train" else (pairs, pairs)
    for domain, chosen, side in (("A", a_pairs, 0), ("B", b_pairs, 1)):
        folder = out / f"{split}{domain}"
        folder.mkdir()
        for pair in tqdm(chosen, desc=f"{split}{domain}", leave=False, disable=len(chosen) < 200):
            load_pair(pair, direction=direction, in_channels=3, out_channels=3)[side].save(folder / f"{pair.name}.png")
    return len(a_pairs), len(b_pairs)
