"""The dataset name `builtin`: procedurally generated facades, made on first use and cached.

Paired runs read the pairs (label | photo). CycleGAN runs read an unpaired set derived from them: label
maps in trainA, photos in trainB, each domain from a different half of the training pairs, so no image
has its counterpart in the other domain (testA/testB keep the test pairs' names, to compare by eye).
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from pix2pix.cache import cache_home
from pix2pix.data.layout import find_pairs, load_pair
from pix2pix.data.synthetic import default_synthetic_root, generate_synthetic_facades

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
    halves, A from the first and B from the second, and its test pairs whole. Made once; remade when the
    paired set's DONE marker changes (it was regenerated)."""
    root = parent / f"{paired_root.name}-unpaired"
    source_marker = (paired_root / "DONE").read_text()
    if (root / "DONE").is_file() and (root / "DONE").read_text() == source_marker:
        return root
    # built beside root and renamed, as the paired set is, so a crash never leaves half a dataset
    parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{root.name}-", dir=parent))
    try:
        for split in ("train", "test"):
            pairs = find_pairs(paired_root, split)
            half = len(pairs) // 2
            a_pairs, b_pairs = (pairs[:half], pairs[half:]) if split == "train" else (pairs, pairs)
            for domain, chosen, side in (("A", a_pairs, 0), ("B", b_pairs, 1)):
                (staging / f"{split}{domain}").mkdir()
                for pair in chosen:
                    image = load_pair(pair, direction="AtoB", in_channels=3, out_channels=3)[side]
                    image.save(staging / f"{split}{domain}" / f"{pair.name}.png")
        (staging / "DONE").write_text(source_marker)
        shutil.rmtree(root, ignore_errors=True)  # a stale derivation: only ever our own folder
        staging.rename(root)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return root
