"""The dataset name `builtin`: procedurally generated facades, made on first use and cached."""

from __future__ import annotations

from pathlib import Path

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
