"""fit(config): the training run, read top to bottom.

Epochs of D/G steps, the paper's learning-rate schedule (constant, then linear decay to zero), per-epoch
logs (console, CSV, TensorBoard), sample grids and atomic checkpoints that resume exactly.
"""

from __future__ import annotations

import csv
import random
import time
from pathlib import Path

import torch
from torch.utils.data import DataLoader
from tqdm import tqdm

from pix2pix.checkpoint import (
    CHECKPOINT_DIR,
    LATEST,
    build_discriminator_for,
    build_generator_for,
    capture_rng_state,
    load_checkpoint,
    resolve_checkpoint,
    restore_rng_state,
    save_checkpoint,
)
from pix2pix.config import RunConfig
from pix2pix.data import PairedDataset
from pix2pix.data.builtin import resolve_data_root
from pix2pix.devices import default_num_workers, resolve_device
from pix2pix.nn.modes import set_inference_mode, set_training_mode
from pix2pix.training.step import train_step
from pix2pix.visuals import make_grid

LOSS_NAMES = ("G_GAN", "G_L1", "D_real", "D_fake")
LOG_FIELDS = ("epoch", "iteration", "lr", *LOSS_NAMES, "seconds")


def linear_decay(n_epochs: int, n_epochs_decay: int):
    """Learning-rate factor per epoch: 1 for n_epochs, then linear towards 0 (the official rule)."""

    def factor(epoch: int) -> float:
        return 1.0 - max(0, epoch + 1 - n_epochs) / float(n_epochs_decay + 1)

    return factor


def epoch_order(num_items: int, seed: int, epoch: int) -> list[int]:
    """The shuffled sample order of one epoch, a pure function of (seed, epoch) so resume replays it."""
    generator = torch.Generator().manual_seed(seed * 100_003 + epoch)
    return torch.randperm(num_items, generator=generator).tolist()


def fit(config: RunConfig, *, resume: str | None = None, progress: bool = True) -> Path:
    """Train pix2pix as `config` says; returns the run folder."""
    run_dir = Path(config.train.out)
    device = resolve_device(config.train.device)
    torch.manual_seed(config.train.seed)
    random.seed(config.train.seed)

    generator = build_generator_for(config).to(device)
    discriminator = build_discriminator_for(config).to(device) if config.loss.gan else None
    data_root = resolve_data_root(config.data.data)
    dataset = PairedDataset(
        data_root,
        "train",
        direction=config.data.direction,
        in_channels=config.model.in_channels,
        out_channels=config.model.out_channels,
        preprocess=config.data.preprocess,
        load_size=config.data.load_size,
        crop_size=config.data.crop_size,
        flip=config.data.flip,
        size_multiple=generator.stride,
        train=True,
        seed=config.train.seed,
    )
    sample_batch = load_sample_batch(config, data_root, generator.stride)

    optim = config.optim
    betas = (optim.beta1, optim.beta2)
    opt_g = torch.optim.Adam(generator.parameters(), lr=optim.lr, betas=betas)
    opt_d = torch.optim.Adam(discriminator.parameters(), lr=optim.lr, betas=betas) if discriminator else None
    lr_factor = linear_decay(optim.n_epochs, optim.n_epochs_decay)
    schedulers = [torch.optim.lr_scheduler.LambdaLR(opt, lr_factor) for opt in (opt_g, opt_d) if opt]

    start_epoch, iteration = 0, 0
    if resume:
        state, _ = load_checkpoint(resolve_resume(resume, run_dir))
        generator.load_state_dict(state["generator"])
        opt_g.load_state_dict(state["opt_g"])
        if discriminator is not None and opt_d is not None:
            discriminator.load_state_dict(state["discriminator"])
            opt_d.load_state_dict(state["opt_d"])
        for scheduler, scheduler_state in zip(schedulers, state["schedulers"]):
            scheduler.load_state_dict(scheduler_state)
        start_epoch, iteration = state["epoch"], state["iteration"]
        restore_rng_state(state["rng"])

    run_dir.mkdir(parents=True, exist_ok=True)
    config.save_json(run_dir / "config.json")
    log = EpochLog(run_dir, keep_through_epoch=start_epoch)
    writer = open_tensorboard(run_dir) if config.train.tensorboard else None
    num_workers = config.data.num_workers if config.data.num_workers >= 0 else default_num_workers(device)

    total_epochs = optim.n_epochs + optim.n_epochs_decay
    for epoch in range(start_epoch, total_epochs):
        started = time.perf_counter()
        dataset.set_epoch(epoch)
        loader = DataLoader(
            dataset,
            batch_size=optim.batch_size,
            sampler=epoch_order(len(dataset), config.train.seed, epoch),
            num_workers=num_workers,
            pin_memory=device.type == "cuda",
        )
        totals = dict.fromkeys(LOSS_NAMES, 0.0)
        bar = tqdm(loader, desc=f"epoch {epoch + 1}/{total_epochs}", disable=not progress, leave=False)
        for batch in bar:
            source = batch["source"].to(device, non_blocking=True)
            target = batch["target"].to(device, non_blocking=True)
            losses = train_step(
                generator,
                discriminator,
                opt_g,
                opt_d,
                source,
                target,
                gan_mode=config.loss.gan_mode,
                l1_weight=config.loss.l1_weight,
            )
            iteration += 1
            for name in LOSS_NAMES:
                totals[name] += losses.get(name, 0.0)
            bar.set_postfix({name: f"{losses.get(name, 0.0):.3f}" for name in LOSS_NAMES})

        lr = opt_g.param_groups[0]["lr"]
        for scheduler in schedulers:
            scheduler.step()
        means = {name: total / max(1, len(loader)) for name, total in totals.items()}
        row = {"epoch": epoch + 1, "iteration": iteration, "lr": lr, **means}
        row["seconds"] = time.perf_counter() - started
        log.append(row)
        if writer is not None:
            for name in (*LOSS_NAMES, "lr"):
                writer.add_scalar(f"train/{name}", row[name], epoch + 1)
            writer.flush()
        if progress:
            tqdm.write(
                f"epoch {epoch + 1}/{total_epochs}  it {iteration}  "
                + "  ".join(f"{name} {means[name]:.4f}" for name in LOSS_NAMES)
                + f"  lr {lr:.2e}  {row['seconds']:.0f}s"
            )

        last = epoch + 1 == total_epochs
        if (epoch + 1) % config.train.sample_every == 0 or last:
            save_sample_grid(generator, sample_batch, device, run_dir / "samples" / f"epoch_{epoch + 1:04d}.png")
        if (epoch + 1) % config.train.save_every == 0 or last:
            state = {
                "config": config.to_dict(),
                "generator": generator.state_dict(),
                "discriminator": discriminator.state_dict() if discriminator else None,
                "opt_g": opt_g.state_dict(),
                "opt_d": opt_d.state_dict() if opt_d else None,
                "schedulers": [scheduler.state_dict() for scheduler in schedulers],
                "epoch": epoch + 1,
                "iteration": iteration,
                "rng": capture_rng_state(),
            }
            checkpoint_dir = run_dir / CHECKPOINT_DIR
            save_checkpoint(checkpoint_dir / f"epoch_{epoch + 1:04d}.pt", state)
            save_checkpoint(checkpoint_dir / LATEST, state)

    if writer is not None:
        writer.close()
    return run_dir


def resolve_resume(resume: str, run_dir: Path) -> Path:
    """`auto` means the run folder's latest checkpoint."""
    return resolve_checkpoint(run_dir if resume == "auto" else resume)


def load_sample_batch(config: RunConfig, data_root: Path, size_multiple: int) -> dict[str, torch.Tensor]:
    """The fixed validation images shown in every sample grid (train images if there is no val split)."""
    split = config.data.val_split
    if not (data_root / split).is_dir():
        split = "train"
    dataset = PairedDataset(
        data_root,
        split,
        direction=config.data.direction,
        in_channels=config.model.in_channels,
        out_channels=config.model.out_channels,
        preprocess=config.data.preprocess,
        load_size=config.data.load_size,
        crop_size=config.data.crop_size,
        flip=False,
        size_multiple=size_multiple,
        train=False,
    )
    count = min(config.train.num_samples, len(dataset))
    items = [dataset[i] for i in range(count)]
    return {key: torch.stack([item[key] for item in items]) for key in ("source", "target")}


@torch.no_grad()
def save_sample_grid(generator, batch: dict[str, torch.Tensor], device: torch.device, path: Path) -> None:
    """input | output | target rows, translated as at test time by default (dropout on, batch stats)."""
    # forked RNG: the grid's dropout draws are fixed and must not shift the training run's RNG
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(0)
        set_inference_mode(generator, dropout=True, norm_stats="batch")
        # one image at a time: batch statistics over several images would mix them
        outputs = [generator(source[None].to(device))[0].cpu() for source in batch["source"]]
        set_training_mode(generator)
    rows = [[source, output, target] for source, output, target in zip(batch["source"], outputs, batch["target"])]
    path.parent.mkdir(parents=True, exist_ok=True)
    make_grid(rows).save(path)


class EpochLog:
    """Per-epoch losses in RUN/log.csv; on resume, rows past the resumed epoch are dropped."""

    def __init__(self, run_dir: Path, keep_through_epoch: int):
        self.path = run_dir / "log.csv"
        rows = []
        if keep_through_epoch > 0 and self.path.exists():
            with self.path.open() as f:
                rows = [row for row in csv.DictReader(f) if int(row["epoch"]) <= keep_through_epoch]
        with self.path.open("w", newline="") as f:
            writer = csv.DictWriter(f, LOG_FIELDS)
            writer.writeheader()
            writer.writerows(rows)

    def append(self, row: dict[str, float]) -> None:
        with self.path.open("a", newline="") as f:
            csv.DictWriter(f, LOG_FIELDS).writerow({name: row[name] for name in LOG_FIELDS})


def open_tensorboard(run_dir: Path):
    from torch.utils.tensorboard import SummaryWriter  # imported late: it costs a second at start-up

    return SummaryWriter(str(run_dir / "tensorboard"))
