"""The data a training run reads: its checked training pairs, its datasets and the fixed sample images."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import cast

import torch
from tqdm import tqdm

from pix2pix.config import DataConfig, RunConfig
from pix2pix.data import DataError, PairedDataset, PairFile, find_bad_pairs, find_pairs
from pix2pix.data.unpaired import UnpairedDataset, find_bad_images, find_unpaired_images

logger = logging.getLogger(__name__)


def checked_pairs(data_root: Path, *, skip_bad: bool) -> list[PairFile]:
    """The training pairs after a header check of every file, so a bad image stops the run at start."""
    pairs = find_pairs(data_root, "train")
    bad = find_bad_pairs(tqdm(pairs, desc="checking data", leave=False, disable=len(pairs) < 2000))
    refuse_or_skip([reason for _, reason in bad], skip_bad=skip_bad)
    if bad:
        skipped = {pair.name for pair, _ in bad}
        pairs = [pair for pair in pairs if pair.name not in skipped]
        if not pairs:
            raise DataError(f"{data_root / 'train'}: every pair is unusable")
    return pairs


def checked_unpaired_images(data_root: Path, direction: str, *, skip_bad: bool) -> tuple[list[Path], list[Path]]:
    """Each domain's training images after a header check of every file, as for pairs: a bad image stops
    the run at start, or with `skip_bad` is left out."""
    domains = find_unpaired_images(data_root, "train", direction)
    images = [*domains[0], *domains[1]]
    bad = find_bad_images(tqdm(images, desc="checking data", leave=False, disable=len(images) < 2000))
    refuse_or_skip([reason for _, reason in bad], skip_bad=skip_bad)
    skipped = {path for path, _ in bad}
    kept = tuple([path for path in paths if path not in skipped] for paths in domains)
    for paths, original in zip(kept, domains):
        if not paths:
            raise DataError(f"{original[0].parent}: every image is unusable")
    return kept[0], kept[1]


def refuse_or_skip(reasons: list[str], *, skip_bad: bool) -> None:
    """A DataError naming the first unusable files, or with `skip_bad` a warning for each one."""
    if reasons and not skip_bad:
        listing = "; ".join(reasons[:5]) + (f"; ... ({len(reasons)} in all)" if len(reasons) > 5 else "")
        raise DataError(f"{len(reasons)} unusable file(s): {listing}. Fix or remove them, or pass --skip-bad")
    for reason in reasons:
        logger.warning("skipping %s", reason)


def build_dataset(
    config: RunConfig,
    data_root: Path,
    split: str,
    size_multiple: int,
    *,
    train: bool,
    pairs: list[PairFile] | None = None,
) -> PairedDataset:
    """`split` as the config describes it: jittered for training, else resized as at test time."""
    return PairedDataset(
        data_root,
        split,
        direction=config.data.direction,
        in_channels=config.model.in_channels,
        out_channels=config.model.out_channels,
        preprocess=config.data.preprocess,
        load_size=config.data.load_size,
        crop_size=config.data.crop_size,
        flip=config.data.flip and train,
        size_multiple=size_multiple,
        train=train,
        seed=config.train.seed,
        pairs=pairs,
        color_space=config.data.color_space,
        skip_bad=config.train.skip_bad,  # also covers files whose header passed the check but whose data is bad
    )


def check_val_split(data_root: Path, split: str, *, unpaired: bool = False) -> None:
    """A --val-split other than the default must exist: a typo would otherwise validate and sample on
    the training images without a word (only the default, val, falls back to train)."""
    folders = [f"{split}A", f"{split}B"] if unpaired else [split]
    if split == DataConfig().val_split or all((data_root / folder).is_dir() for folder in folders):
        return
    found = sorted(child.name for child in data_root.iterdir() if child.is_dir() and not child.name.startswith("."))
    raise DataError(f"--val-split {split}: {data_root} has no {' or '.join(folders)} (it has {', '.join(found)})")


def load_sample_batch(
    config: RunConfig, data_root: Path, size_multiple: int, train_pairs: list[PairFile] | None = None
) -> dict[str, torch.Tensor]:
    """The fixed validation images shown in every sample grid (train images if there is no val split:
    `train_pairs`, the checked ones, when given, so a skipped image is not met and reported again)."""
    has_val = (data_root / config.data.val_split).is_dir()
    split = config.data.val_split if has_val else "train"
    pairs = None if has_val else train_pairs
    dataset = build_dataset(config, data_root, split, size_multiple, train=False, pairs=pairs)
    return stack_samples(dataset, config.train.num_samples, ("source", "target"))


def stack_samples(
    dataset: PairedDataset | UnpairedDataset, count: int, keys: tuple[str, ...]
) -> dict[str, torch.Tensor]:
    """The first `count` items of the first item's sizes, stacked per key: a grid tiles images of one size,
    and a preprocess that does not crop keeps each image's own."""
    items: list[dict[str, torch.Tensor]] = []
    for index in range(len(dataset)):
        loaded = dataset[index]
        item = {key: cast(torch.Tensor, loaded[key]) for key in keys}
        if not items or all(item[key].shape == items[0][key].shape for key in keys):
            items.append(item)
        if len(items) == count:
            break
    return {key: torch.stack([item[key] for item in items]) for key in keys}
