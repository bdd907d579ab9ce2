"""The ready-made recipes in configs/ load, and say what their comments claim."""

from __future__ import annotations

from pathlib import Path

import pytest

from pix2pix.config import RunConfig

CONFIGS = sorted((Path(__file__).resolve().parent.parent / "configs").glob("*.toml"))


def test_there_are_recipes():
    assert len(CONFIGS) >= 8


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.stem)
def test_every_recipe_loads_and_trains_on_its_holdout(path):
    config = RunConfig.load(path)
    assert config.data.data.startswith("datasets/") and config.train.out == f"runs/results/{path.stem}"
    assert config.data.crop_size % 2**7 == 0  # the U-Net depth the crop size implies


@pytest.mark.parametrize("name", ["facades_paper", "maps_paper"])
def test_paper_recipes_are_the_defaults(name):
    config = RunConfig.load(CONFIGS[0].parent / f"{name}.toml")
    default = RunConfig()
    for section in ("model", "loss", "optim"):
        assert getattr(config, section) == getattr(default, section)
    assert (config.data.load_size, config.data.crop_size, config.data.flip) == (286, 256, True)


def test_facades_cpu_experiments_differ_only_in_what_they_compare():
    base = RunConfig.load(CONFIGS[0].parent / "facades_cpu.toml")
    l1_only = RunConfig.load(CONFIGS[0].parent / "facades_cpu_l1.toml")
    resize_conv = RunConfig.load(CONFIGS[0].parent / "facades_cpu_resizeconv.toml")
    assert l1_only.replace("loss", gan=True).replace("train", out=base.train.out) == base
    assert resize_conv.replace("model", upsample="transpose").replace("train", out=base.train.out) == base


def test_facades_plus_is_facades_cpu_with_only_opt_in_upgrades():
    base = RunConfig.load(CONFIGS[0].parent / "facades_cpu.toml")
    plus = RunConfig.load(CONFIGS[0].parent / "facades_plus.toml")
    default = RunConfig()
    assert plus.optim.ema_decay > 0 and plus.loss.diff_augment
    upgrades = {"optim": ("ema_decay",), "loss": ("diff_augment",)}
    undone = plus.replace("train", out=base.train.out)
    for section, fields in upgrades.items():
        undone = undone.replace(section, **{name: getattr(getattr(default, section), name) for name in fields})
    assert undone == base  # data, sizes, widths and the iteration budget are the CPU recipe's
