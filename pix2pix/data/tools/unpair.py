"""A paired dataset laid out for unpaired training (CycleGAN): `pix2pix data unpair ROOT --out NEW`.

Each split's pairs are cut into their halves: NEW/SPLITA gets the halves translated from (as
`--direction` reads the pairs) and NEW/SPLITB the halves translated to, as the CycleGAN releases lay out
their data (their facades set is pix2pix's, unpaired this way). With `--disjoint` the training pairs are
halved first, A from the first half and B from the second, so no training image has its counterpart in
the other domain; held-out splits stay whole, so a translation can be set beside its target.
NEW/unpair.json records the source, the direction and whether the halves are disjoint.
"""

from __future__ import annotations

import json
import shutil
import uuid
from pathlib import Path

from tqdm import tqdm

from pix2pix.data.images import DataError
from pix2pix.data.layout import find_pairs, load_pair

HELD_OUT = ("val", "test")  # an empty folder of these is left out
RECORD = "unpair.json"


def unpair(
    source: Path | str, out: Path | str, *, direction: str = "AtoB", disjoint: bool = False, progress: bool = True
) -> dict[str, tuple[int, int]]:
    """Write OUT from the paired SOURCE, all at once: built beside OUT and renamed, so a failure never leaves
    half a dataset. OUT must be new or an empty folder. Returns {split: (A images, B images)}."""
    source, out = Path(source), Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise DataError(f"{out}: output folder exists and is not empty")
    find_pairs(source, "train")  # a DataError that says what is wrong, before anything is written
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = out.parent / f".{out.name}.{uuid.uuid4().hex[:8]}"  # mkdir, unlike mkdtemp, keeps the umask
    staging.mkdir()
    try:
        counts = write_unpaired(source, staging, direction=direction, disjoint=disjoint, progress=progress)
        if out.exists():
            out.rmdir()  # empty, as checked
        staging.rename(out)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return counts


def write_unpaired(
    source: Path, folder: Path, *, direction: str, disjoint: bool, progress: bool
) -> dict[str, tuple[int, int]]:
    """SPLITA/, SPLITB/ and unpair.json into the empty `folder`, for train and each held-out split there is."""
    held_out = [split for split in HELD_OUT if (source / split).is_dir() and any((source / split).iterdir())]
    counts = {
        split: write_split(source, folder, split, direction, disjoint=disjoint, progress=progress)
        for split in ("train", *held_out)
    }
    made = {"source": str(source.resolve()), "direction": direction, "disjoint": disjoint}
    (folder / RECORD).write_text(json.dumps({**made, "images": counts}, indent=2) + "\n")
    return counts


def write_split(
    source: Path, out: Path, split: str, direction: str, *, disjoint: bool, progress: bool
) -> tuple[int, int]:
    """OUT/SPLITA and OUT/SPLITB from SOURCE/SPLIT's pairs, as PNG (lossless: no second JPEG encoding)."""
    pairs = find_pairs(source, split)
    half = len(pairs) // 2
    a_pairs, b_pairs = (pairs[:half], pairs[half:]) if disjoint and split == "train" else (pairs, pairs)
    if not a_pairs:
        raise DataError(f"{source / split}: {len(pairs)} pair(s) cannot be halved into two domains (--disjoint)")
    for domain, chosen, side in (("A", a_pairs, 0), ("B", b_pairs, 1)):
        folder = out / f"{split}{domain}"
        folder.mkdir()
        for pair in tqdm(chosen, desc=f"{split}{domain}", leave=False, disable=not progress):
            load_pair(pair, direction=direction, in_channels=3, out_channels=3)[side].save(folder / f"{pair.name}.png")
    return len(a_pairs), len(b_pairs)


def read_unpair_record(root: Path) -> dict | None:
    """What ROOT/unpair.json says it was made from (source, direction, disjoint), or None."""
    path = root / RECORD
    return json.loads(path.read_text()) if path.is_file() else None
