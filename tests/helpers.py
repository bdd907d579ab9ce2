"""Tiny paired datasets made on the fly, and small-network configs."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
from PIL import Image

from pix2pix.config import DataConfig, LossConfig, ModelConfig, OptimConfig, RunConfig, TrainConfig


def write_pairs(root: Path, split: str, count: int, size: int = 32, seed: int = 0) -> Path:
    """Side-by-side A|B PNGs: A is a few coloured rectangles, B a fixed non-trivial function of A."""
    rng = np.random.default_rng(seed)
    folder = root / split
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        a = np.zeros((size, size, 3), np.uint8)
        for _ in range(3):
            y, x = rng.integers(0, size - 8, 2)
            h, w = rng.integers(4, size // 2, 2)
            a[y : y + h, x : x + w] = rng.integers(0, 256, 3)
        b = 255 - a[:, ::-1]  # inverted and mirrored: the mapping needs spatial context
        Image.fromarray(np.concatenate([a, b], axis=1)).save(folder / f"{i}.png")
    return root


def tiny_config(data: Path, out: Path, **train_changes) -> RunConfig:
    """32x32 images, ngf = ndf = 8: an iteration costs a few milliseconds on a CPU."""
    return RunConfig(
        data=DataConfig(data=str(data), load_size=32, crop_size=32, flip=False, num_workers=0),
        model=ModelConfig(base_channels=8, disc_channels=8),
        loss=LossConfig(),
        optim=OptimConfig(n_epochs=1, n_epochs_decay=1),
        train=TrainConfig(out=str(out), sample_every=1, save_every=1, tensorboard=False, **train_changes),
    )


# `pix2pix train` flags for a network that costs milliseconds per iteration (epochs are set per test)
TINY_FLAGS = "--load-size 32 --crop-size 32 --base-channels 8 --disc-channels 8 --no-tensorboard --quiet".split()
# the same with the logged warnings shown: --quiet leaves errors only
TINY_FLAGS_WITH_WARNINGS = [flag for flag in TINY_FLAGS if flag != "--quiet"]


def logged(caplog, pattern: str) -> list[str]:
    """The messages of the `pix2pix` loggers' records so far that match `pattern` (re.search)."""
    return [
        record.getMessage()
        for record in caplog.records
        if record.name.startswith("pix2pix") and re.search(pattern, record.getMessage())
    ]
