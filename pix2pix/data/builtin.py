"""The dataset name `builtin`: procedurally generated facades, made on first use and cached.

Paired runs read the pairs (label | photo). CycleGAN runs read an unpaired set derived from them: label
maps in trainA, photos in trainB, each domain from a different half of the training pairs, so no image
has its counterpart in the other domain (valA/valB, testA/testB keep the held-out pairs whole, to compare by eye).
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from pix2pix.cache import cache_home
from pix2pix.data.synthetic import default_synthetic_root, generate_synthetic_facades
from pix2pix.data.tools.unpair import write_unpaired

BUILTIN = "builtin"


def resolve_data_root(data: str) -> Path:
    """A dataset root folder, generating the built-in set when `data` is "builtin"."""
    if data == BUILTIN:
        return generate_synthetic_facades(default_synthetic_root())
    root = Path(data)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: dataset folder not found")
    return root


def resolve_unpaired_root(data: str) -> Path:
    """An unpaired dataset root (ROOT/trainA, ROOT/trainB, ...), deriving the built-in one when `data` is
    "builtin"."""
    if data == BUILTIN:
        return unpair_dataset(generate_synthetic_facades(default_synthetic_root()), cache_home() / "datasets")
    return resolve_data_root(data)


def unpair_dataset(paired_root: Path, parent: Path) -> Path:
    """`parent/NAME-unpaired` for the paired dataset `paired_root` (NAME): its train pairs split in two
    halves, A from the first and B from the second, and its held-out pairs whole. Made once; remade when the
    paired set's DONE marker changes (it was regenerated)."""
    root = parent / f"{paired_root.name}-unpaired"
    marker = f"{(paired_root / 'DONE').read_text()}\n{UNPAIRED_FORMAT}"
    if is_made(root, marker):
        return root
    # built beside root with its DONE marker and renamed, as the paired set is: a crash never leaves half a
    # dataset, and processes that make it at once (torchrun's ranks) each end with a whole one
    parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{root.name}-", dir=parent))
    try:
        write_unpaired(paired_root, staging, direction="AtoB", disjoint=True, progress=False)
        (staging / "DONE").write_text(marker)
        if not is_made(root, marker):  # made by another process meanwhile: keep it, it may be in use
            shutil.rmtree(root, ignore_errors=True)  # a stale derivation: only ever our own folder
        try:
            staging.rename(root)
        except OSError:
            if not is_made(root, marker):  # another process renamed its copy first: that one serves
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return root


UNPAIRED_FORMAT = "unpaired 2"  # bumped when the derivation changes (2: valA/valB too), so old caches are remade


def is_made(root: Path, marker: str) -> bool:
    return (root / "DONE").is_file() and (root / "DONE").read_text() == marker
