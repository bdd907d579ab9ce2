"""Carve a fixed validation split out of a dataset that ships only a training folder.

`pix2pix data holdout ROOT --out NEW --fraction 0.1 --seed 0` writes NEW/train and NEW/val holding links
to (or copies of) ROOT's training files, so the held-out pairs are never trained on and the original
folder is left untouched (it may be read-only). Other splits of ROOT (e.g. test) are linked as they are.
The choice is a seeded shuffle, recorded in NEW/holdout.json so the split can be audited and rebuilt.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from pix2pix.data.images import DataError
from pix2pix.data.layout import find_pairs
from pix2pix.data.tools.pairs import assign_splits


def carve_holdout(
    root: Path | str, out: Path | str, *, fraction: float = 0.1, seed: int = 0, copy: bool = False
) -> dict[str, int]:
    """Split ROOT/train into OUT/train and OUT/val; returns the number of pairs in each."""
    root, out = Path(root).resolve(), Path(out)
    if not 0 < fraction < 1:
        raise DataError(f"--fraction must be between 0 and 1 (exclusive), got {fraction}")
    if (root / "val").exists():
        raise DataError(f"{root} already has a val split; train on it as it is")
    if out.exists() and any(out.iterdir()):
        raise DataError(f"{out}: output folder exists and is not empty")
    pairs = find_pairs(root, "train")
    splits = assign_splits(len(pairs), (1 - fraction, fraction, 0), seed)
    if "val" not in splits or "train" not in splits:
        raise DataError(f"{root}/train: {len(pairs)} pairs cannot give both a train and a val split at {fraction}")
    place, place_tree = (shutil.copy2, shutil.copytree) if copy else (_link, _link)
    for pair, split in zip(pairs, splits, strict=True):
        for path in (pair.a_path, pair.b_path):
            if path is not None:
                destination = out / split / path.relative_to(root / "train")
                destination.parent.mkdir(parents=True, exist_ok=True)
                place(path, destination)
    for other in sorted(p for p in root.iterdir() if p.is_dir() and p.name not in ("train", "val")):
        if not other.name.startswith("."):
            place_tree(other, out / other.name)
    names = {split: [p.name for p, s in zip(pairs, splits, strict=True) if s == split] for split in ("train", "val")}
    record = {"source": str(root), "fraction": fraction, "seed": seed, **names}
    (out / "holdout.json").write_text(json.dumps(record, indent=1) + "\n")
    return {split: len(chosen) for split, chosen in names.items()}


def _link(source: Path, destination: Path) -> None:
    # Absolute targets, so the new root can be moved without breaking its links.
    os.symlink(source.resolve(), destination)
