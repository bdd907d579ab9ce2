"""The dataset name `builtin`: procedurally generated facades, made on first use and cached.

Paired runs read the pairs (label | photo). CycleGAN runs read an unpaired set derived from them: label
maps in trainA, photos in trainB, each domain from a different half of the training pairs, so no image
has its counterpart in the other domain (valA/valB, testA/testB keep the held-out pairs whole, to compare by eye).
"""

from __future__ import annotations

import shutil
from pathlib import Path

from pix2pix.cache import cache_home
from pix2pix.data.synthetic import default_synthetic_root, generate_synthetic_facades
from pix2pix.data.tools.unpair import unpair

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
    source_marker = (paired_root / "DONE").read_text()
    if (root / "DONE").is_file() and (root / "DONE").read_text() == source_marker:
        return root
    shutil.rmtree(root, ignore_errors=True)  # a stale derivation: only ever our own folder
    unpair(paired_root, root, disjoint=True)  # built aside and renamed: a crash never leaves half a dataset
    (root / "DONE").write_text(source_marker)  # last: marks the derivation whole
    return root
