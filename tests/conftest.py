"""Shared fixtures."""

from __future__ import annotations

import os

# The test run is a program, like the `pix2pix` command (pix2pix.runtime.tune_process_for_cli), so it may
# set what the library must not: idle OpenMP threads sleep instead of spinning, which keeps the suite fast
# on shared cores. Before anything imports torch, whose OpenMP runtime reads the variable once.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

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
