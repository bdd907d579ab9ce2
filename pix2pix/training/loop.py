"""fit(config): the training run, read top to bottom.

Epochs of D/G steps, the paper's learning-rate schedule (constant, then linear decay to zero), per-epoch
logs (console, CSV, TensorBoard), sample grids and atomic checkpoints that resume exactly.
"""

from __future__ import annotations

import csv
import math
import random
import shutil
import signal
import threading
import time
import warnings
from pathlib import Path
from typing import Any

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
    prune_checkpoints,
    resolve_checkpoint,
    restore_rng_state,
    save_checkpoint,
)
from pix2pix.config import RunConfig
from pix2pix.data import DataError, PairedDataset, PairFile, find_bad_pairs, find_pairs
from pix2pix.data.builtin import resolve_data_root
from pix2pix.data.tensors import lab_batch_to_rgb
from pix2pix.devices import default_num_workers
from pix2pix.nn.modes import run_for_inference, set_training_mode
from pix2pix.training.acceleration import align_optimizer_state, plan_acceleration, prepare_for_step
from pix2pix.training.distributed import Process, end_process, shard_order, start_process, sum_across_processes
from pix2pix.training.optim import build_optimizer
from pix2pix.training.step import train_step
from pix2pix.visuals import make_grid, write_progress_gif

LOSS_NAMES = ("G_GAN", "G_L1", "D_real", "D_fake")
NAN_LR_FACTOR = 0.5  # --nan-retries: the learning rate is multiplied by this at each rollback
VAL_METRICS = ("l1", "psnr", "ssim")
LOG_FIELDS = ("epoch", "iteration", "lr", *LOSS_NAMES, *(f"val_{name}" for name in VAL_METRICS), "seconds")


def linear_decay(n_epochs: int, n_epochs_decay: int):
    """Learning-rate factor per epoch: 1 for n_epochs, then linear towards 0 (the official rule)."""

    def factor(epoch: int) -> float:
        return 1.0 - max(0, epoch + 1 - n_epochs) / float(n_epochs_decay + 1)

    return factor


def epoch_order(num_items: int, seed: int, epoch: int) -> list[int]:
    """The shuffled sample order of one epoch, a pure function of (seed, epoch) so resume replays it."""
    generator = torch.Generator().manual_seed(seed * 100_003 + epoch)
    return torch.randperm(num_items, generator=generator).tolist()


class TrainingStopped(RuntimeError):
    """Training cannot go on (e.g. a non-finite loss); the message says where and what is kept."""


class NonFiniteLoss(TrainingStopped):
    """A loss turned NaN or infinite; the weights of that step are not saved."""


class TrainingInterrupted(Exception):
    """A stop was requested; the run was checkpointed and can be resumed (the message says how)."""


class StopRequest:
    """SIGINT/SIGTERM ask the loop to finish the current iteration, checkpoint and exit cleanly."""

    def __init__(self) -> None:
        self.requested = False
        self.previous: dict[int, Any] = {}

    def __enter__(self) -> StopRequest:
        if threading.current_thread() is threading.main_thread():  # signals only reach the main thread
            for signum in (signal.SIGINT, signal.SIGTERM):
                self.previous[signum] = signal.signal(signum, self.request)
        return self

    def request(self, signum, frame) -> None:
        if self.requested:  # a second Ctrl-C means now
            raise KeyboardInterrupt
        self.requested = True

    def __exit__(self, *exc) -> None:
        for signum, handler in self.previous.items():
            signal.signal(signum, handler)


def fit(config: RunConfig, *, resume: str | None = None, progress: bool = True) -> Path:
    """Train pix2pix as `config` says; returns the run folder.

    With `train.nan_retries`, a non-finite loss sends the run back to its last checkpoint (or its start)
    with the learning rate halved, up to that many times; every process takes the same decision.
    """
    process = start_process(config.train.device)
    try:
        retries_left = config.train.nan_retries
        while True:
            try:
                return train(config, process, resume=resume, progress=progress and process.is_main)
            except NonFiniteLoss as err:
                if retries_left <= 0:
                    raise
                retries_left -= 1
                config = config.replace("optim", lr=config.optim.lr * NAN_LR_FACTOR)
                has_checkpoint = (Path(config.train.out) / "checkpoints" / "latest.pt").exists()
                resume = "auto" if has_checkpoint else None
                if process.is_main:
                    where = "the last checkpoint" if has_checkpoint else "the start"
                    warnings.warn(f"{err} Going back to {where} with --lr {config.optim.lr:g}", stacklevel=2)
    finally:
        end_process(process)


def train(config: RunConfig, process: Process, *, resume: str | None, progress: bool) -> Path:
    """The run itself, in every process; only the main process (rank 0) writes files."""
    run_dir, device = Path(config.train.out), process.device
    acceleration = plan_acceleration(config, process)  # precision, channels_last, compile, SyncBatchNorm
    precision, memory_format = acceleration.precision, acceleration.memory_format
    torch.manual_seed(config.train.seed)
    random.seed(config.train.seed)

    generator = build_generator_for(config).to(device, memory_format=memory_format)
    discriminator = build_discriminator_for(config).to(device, memory_format=memory_format) if config.loss.gan else None
    data_root = resolve_data_root(config.data.data)
    pairs = checked_pairs(data_root, skip_bad=config.train.skip_bad)
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
        pairs=pairs,
        color_space=config.data.color_space,
        skip_bad=config.train.skip_bad,  # also covers files whose header passed the check but whose data is bad
    )
    sample_batch = load_sample_batch(config, data_root, generator.stride)
    val_dataset = None
    if config.train.val_every > 0:
        val_dataset = build_eval_dataset(config, data_root, config.data.val_split, generator.stride)

    optim = config.optim
    betas = (optim.beta1, optim.beta2)
    opt_g = build_optimizer(generator.parameters(), lr=optim.lr, betas=betas)
    opt_d = build_optimizer(discriminator.parameters(), lr=optim.lr, betas=betas) if discriminator else None
    lr_factor = linear_decay(optim.n_epochs, optim.n_epochs_decay)
    schedulers = [torch.optim.lr_scheduler.LambdaLR(opt, lr_factor) for opt in (opt_g, opt_d) if opt]

    # where the run stands: completed epochs, batches done in the current one, iterations overall
    start_epoch, start_batch, iteration = 0, 0, 0
    totals = dict.fromkeys(LOSS_NAMES, 0.0)
    best_scores: dict[str, float] | None = None
    if resume:
        state, _ = load_checkpoint(resolve_resume(resume, run_dir))
        generator.load_state_dict(state["generator"])
        opt_g.load_state_dict(state["opt_g"])
        if discriminator is not None and opt_d is not None:
            discriminator.load_state_dict(state["discriminator"])
            opt_d.load_state_dict(state["opt_d"])
        start_epoch, start_batch, iteration = state["epoch"], state["batch"], state["iteration"]
        for scheduler, scheduler_state in zip(schedulers, state["schedulers"]):
            scheduler.load_state_dict(scheduler_state)
            # the schedule follows this run's config (its --lr, added decay epochs), not the saved one
            scheduler.base_lrs = [optim.lr] * len(scheduler.base_lrs)
            for group in scheduler.optimizer.param_groups:
                group["lr"] = optim.lr * lr_factor(start_epoch)
        totals, best_scores = state["epoch_totals"], state["best_scores"]
        precision.load_state_dict(state.get("scaler"))
        restore_rng_state(state["rng"])
        for opt in (opt_g, opt_d):
            if opt:
                align_optimizer_state(opt)  # the saved run may have had another memory format
    # the updates go through DDP/compiled/SyncBatchNorm views; checkpoints and samples use the bare networks
    step_generator = prepare_for_step(generator, acceleration, process)
    step_discriminator = prepare_for_step(discriminator, acceleration, process) if discriminator else None

    log, writer = None, None
    if process.is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
        check_free_space(run_dir, [generator, discriminator])
        config.save_json(run_dir / "config.json")
        log = EpochLog(run_dir, keep_through_epoch=start_epoch)
        writer = open_tensorboard(run_dir) if config.train.tensorboard else None
    num_workers = config.data.num_workers if config.data.num_workers >= 0 else default_num_workers(device)
    checkpoint_dir = run_dir / CHECKPOINT_DIR

    def save(name: str | None, epoch: int, batch: int) -> None:
        """latest.pt always; `name` too (an epoch checkpoint), pruned to the newest K. Main process only."""
        if not process.is_main:
            return
        state = {
            "config": config.to_dict(),
            "generator": generator.state_dict(),
            "discriminator": discriminator.state_dict() if discriminator else None,
            "opt_g": opt_g.state_dict(),
            "opt_d": opt_d.state_dict() if opt_d else None,
            "schedulers": [scheduler.state_dict() for scheduler in schedulers],
            "epoch": epoch,
            "batch": batch,
            "iteration": iteration,
            "epoch_totals": totals,
            "best_scores": best_scores,
            "scaler": precision.state_dict(),  # fp16's loss scale; None otherwise
            "rng": capture_rng_state(),
        }
        if name is not None:
            save_checkpoint(checkpoint_dir / name, state)
            prune_checkpoints(checkpoint_dir, config.train.keep_checkpoints)
        if name != "best.pt":
            save_checkpoint(checkpoint_dir / LATEST, state)

    total_epochs = optim.n_epochs + optim.n_epochs_decay
    with StopRequest() as stop:
        for epoch in range(start_epoch, total_epochs):
            started = time.perf_counter()
            dataset.set_epoch(epoch)
            order = shard_order(epoch_order(len(dataset), config.train.seed, epoch), process)
            first_batch = start_batch if epoch == start_epoch else 0
            # a new loader (and workers) per epoch, not persistent workers: a worker holds the copy of the
            # dataset made when it started, which set_epoch does not reach, so it would repeat that epoch's jitter
            loader = DataLoader(
                dataset,
                batch_size=optim.batch_size,
                sampler=order[first_batch * optim.batch_size :],  # a resumed epoch skips what it has seen
                num_workers=num_workers,
                pin_memory=device.type == "cuda",
            )
            batches_in_epoch = math.ceil(len(order) / optim.batch_size)
            if first_batch == 0:
                totals = dict.fromkeys(LOSS_NAMES, 0.0)
            bar = tqdm(
                loader,
                desc=f"epoch {epoch + 1}/{total_epochs}",
                initial=first_batch,
                total=batches_in_epoch,
                disable=not progress,
                leave=False,
            )
            for batch_index, batch in enumerate(bar, start=first_batch):
                source = batch["source"].to(device, non_blocking=True, memory_format=memory_format)
                target = batch["target"].to(device, non_blocking=True, memory_format=memory_format)
                losses = train_step(
                    step_generator,
                    step_discriminator,
                    opt_g,
                    opt_d,
                    source,
                    target,
                    gan_mode=config.loss.gan_mode,
                    l1_weight=config.loss.l1_weight,
                    precision=precision,
                )
                bad = [name for name, value in losses.items() if not math.isfinite(value)]
                # every process must stop at the same iteration, or the others would wait forever
                stop_votes, bad_votes = sum_across_processes([float(stop.requested), float(bool(bad))], process)
                if bad_votes:
                    # the weights are already poisoned: keep latest.pt as it was, the last good state
                    terms = ", ".join(f"{name}={losses[name]}" for name in bad) or "in another process"
                    raise NonFiniteLoss(
                        f"non-finite loss ({terms}) at iteration {iteration + 1} "
                        f"(epoch {epoch + 1}); stopped. The last good checkpoint is kept in {checkpoint_dir}; "
                        "try a lower --lr (or --nan-retries N), and check the data for broken images."
                    )
                iteration += 1
                for name in LOSS_NAMES:
                    totals[name] += losses.get(name, 0.0)
                bar.set_postfix({name: f"{losses.get(name, 0.0):.3f}" for name in LOSS_NAMES})
                if stop_votes or (config.train.save_every_iters and iteration % config.train.save_every_iters == 0):
                    save(None, epoch, batch_index + 1)
                if stop_votes:
                    bar.close()
                    raise TrainingInterrupted(
                        f"stopped at epoch {epoch + 1}, iteration {iteration}; checkpoint saved. "
                        f"Resume with: pix2pix train --resume auto --out {run_dir}"
                    )

            lr = opt_g.param_groups[0]["lr"]
            for scheduler in schedulers:
                scheduler.step()
            summed = sum_across_processes([totals[name] for name in LOSS_NAMES], process)
            means = {name: total / (batches_in_epoch * process.world_size) for name, total in zip(LOSS_NAMES, summed)}
            row = {"epoch": epoch + 1, "iteration": iteration, "lr": lr, **means}
            last = epoch + 1 == total_epochs
            if not process.is_main:
                continue  # the rest of the epoch is logging, samples and checkpoints: rank 0's work
            scores = {}
            if val_dataset is not None and ((epoch + 1) % config.train.val_every == 0 or last):
                scores = validate(generator, val_dataset, device)
                row.update({f"val_{name}": value for name, value in scores.items()})
            row["seconds"] = time.perf_counter() - started
            log.append(row)  # type: ignore[union-attr]
            if writer is not None:
                for name in (*LOSS_NAMES, "lr"):
                    writer.add_scalar(f"train/{name}", row[name], epoch + 1)
                for name, value in scores.items():
                    writer.add_scalar(f"val/{name}", value, epoch + 1)
                writer.flush()
            if progress:
                tqdm.write(
                    f"epoch {epoch + 1}/{total_epochs}  it {iteration}  "
                    + "  ".join(f"{name} {means[name]:.4f}" for name in LOSS_NAMES)
                    + "".join(f"  val_{name} {value:.4f}" for name, value in scores.items())
                    + f"  lr {lr:.2e}  {row['seconds']:.0f}s"
                )
            if scores and is_improvement(scores, best_scores, config.train.best_metric):
                best_scores = scores
                save("best.pt", epoch + 1, 0)

            if (epoch + 1) % config.train.sample_every == 0 or last:
                samples_dir = run_dir / "samples"
                grid_path = samples_dir / f"epoch_{epoch + 1:04d}.png"
                save_sample_grid(generator, sample_batch, device, grid_path, color_space=config.data.color_space)
                write_progress_gif(sorted(samples_dir.glob("epoch_*.png")), samples_dir / "progress.gif")
            if (epoch + 1) % config.train.save_every == 0 or last:
                save(f"epoch_{epoch + 1:04d}.pt", epoch + 1, 0)
            elif config.train.save_every_iters:
                save(None, epoch + 1, 0)  # latest.pt must not lag behind an epoch boundary

    if writer is not None:
        writer.close()
    return run_dir


def check_free_space(run_dir: Path, networks: list) -> None:
    """Refuse to start when the disk cannot hold two checkpoints (weights + two Adam moments each).

    A full disk found hours in would end the run; found now it costs nothing.
    """
    values = sum(t.numel() for net in networks if net is not None for t in (*net.parameters(), *net.buffers()))
    needed = 2 * 3 * 4 * values  # two files, float32 weights plus Adam's two moments
    free = shutil.disk_usage(run_dir).free
    if free < needed:
        raise ValueError(
            f"{run_dir}: {free / 2**20:.0f} MiB free, but checkpoints need about {needed / 2**20:.0f} MiB; "
            "free some space or choose another --out"
        )


def checked_pairs(data_root: Path, *, skip_bad: bool) -> list[PairFile]:
    """The training pairs after a header check of every file, so a bad image stops the run at start."""
    pairs = find_pairs(data_root, "train")
    bad = find_bad_pairs(tqdm(pairs, desc="checking data", leave=False, disable=len(pairs) < 2000))
    if bad and not skip_bad:
        listing = "; ".join(reason for _, reason in bad[:5]) + (f"; ... ({len(bad)} in all)" if len(bad) > 5 else "")
        raise DataError(f"{len(bad)} unusable file(s): {listing}. Fix or remove them, or pass --skip-bad")
    if bad:
        for _, reason in bad:
            warnings.warn(f"skipping {reason}", stacklevel=2)
        skipped = {pair.name for pair, _ in bad}
        pairs = [pair for pair in pairs if pair.name not in skipped]
        if not pairs:
            raise DataError(f"{data_root / 'train'}: every pair is unusable")
    return pairs


def resolve_resume(resume: str, run_dir: Path) -> Path:
    """`auto` means the run folder's latest checkpoint."""
    return resolve_checkpoint(run_dir if resume == "auto" else resume)


def build_eval_dataset(config: RunConfig, data_root: Path, split: str, size_multiple: int) -> PairedDataset:
    """A split resized as at test time (no jitter)."""
    return PairedDataset(
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
        color_space=config.data.color_space,
        skip_bad=config.train.skip_bad,
    )


def load_sample_batch(config: RunConfig, data_root: Path, size_multiple: int) -> dict[str, torch.Tensor]:
    """The fixed validation images shown in every sample grid (train images if there is no val split)."""
    split = config.data.val_split if (data_root / config.data.val_split).is_dir() else "train"
    dataset = build_eval_dataset(config, data_root, split, size_multiple)
    count = min(config.train.num_samples, len(dataset))
    items = [dataset[i] for i in range(count)]
    return {key: torch.stack([item[key] for item in items]) for key in ("source", "target")}


def translate_as_at_test_time(generator, sources, device: torch.device) -> list[torch.Tensor]:
    """Outputs as `pix2pix test` makes them by default: dropout on, batch statistics, seed 0, one image
    at a time (batch statistics over several images would mix them)."""
    outputs = [
        run_for_inference(generator, source[None].to(device), dropout=True, norm_stats="batch", seed=0)[0].cpu()
        for source in sources
    ]
    set_training_mode(generator)
    return outputs


def validate(generator, dataset: PairedDataset, device: torch.device) -> dict[str, float]:
    """Mean L1/PSNR/SSIM of the split's translations."""
    from pix2pix.metrics import evaluate_pairs  # needs scikit-image (the [eval] extra)

    items = [dataset[i] for i in range(len(dataset))]
    outputs = translate_as_at_test_time(generator, [item["source"] for item in items], device)
    triples = [
        to_rgb(item["source"], output, item["target"], dataset.color_space) for item, output in zip(items, outputs)
    ]
    scores = evaluate_pairs([output for _, output, _ in triples], [target for _, _, target in triples])
    return {name: scores[name] for name in VAL_METRICS}


def is_improvement(scores: dict[str, float], best: dict[str, float] | None, metric: str) -> bool:
    if best is None:
        return True
    return scores[metric] < best[metric] if metric == "l1" else scores[metric] > best[metric]


def to_rgb(
    source: torch.Tensor, output: torch.Tensor, target: torch.Tensor, color_space: str
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(input, output, target) as images to look at and measure: Lab runs show L as gray, L + ab in RGB."""
    if color_space != "lab":
        return source, output, target
    lightness, no_colour = source[None], torch.zeros_like(target)  # (1, 1, H, W), (2, H, W)
    gray, colorized, real = (lab_batch_to_rgb(lightness, ab[None])[0] for ab in (no_colour, output, target))
    return gray, colorized, real


def save_sample_grid(
    generator, batch: dict[str, torch.Tensor], device: torch.device, path: Path, *, color_space: str = "rgb"
) -> None:
    """input | output | target rows, translated as at test time by default (dropout on, batch stats)."""
    outputs = translate_as_at_test_time(generator, batch["source"], device)
    rows = [
        list(to_rgb(source, output, target, color_space))
        for source, output, target in zip(batch["source"], outputs, batch["target"])
    ]
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
            csv.DictWriter(f, LOG_FIELDS).writerow({name: row.get(name, "") for name in LOG_FIELDS})


def open_tensorboard(run_dir: Path):
    from torch.utils.tensorboard import SummaryWriter  # imported late: it costs a second at start-up

    return SummaryWriter(str(run_dir / "tensorboard"))
