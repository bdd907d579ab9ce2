"""Shared fixtures."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers import write_pairs


@pytest.fixture
def tiny_dataset(tmp_path: Path) -> Path:
    root = tmp_path / "data"
    write_pairs(root, "train", 6)
    write_pairs(root, "val", 2, seed=1)
    write_pairs(root, "test", 3, seed=2)
    return root
