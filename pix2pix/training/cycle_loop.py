"""fit_cyclegan(config): unpaired training (Zhu et al. 2017), read top to bottom.

The same run as pix2pix's loop.py (its run folder, schedule, stop requests and atomic checkpoints that
resume exactly, mid-epoch too) with CycleGAN's state: G_A (A -> B), G_B (B -> A), D_A (judges B images),
D_B (judges A images), one Adam over both generators and one over both discriminators, and the two image
pools. G_A is saved as "generator", so test, eval, export and serve use it as an A -> B model; G_B as
"generator_b". Under torchrun each process trains on its share of the global batch (DDP averages the
gradients) and the image pools see the global batch, as one process with the whole batch would.
"""

from __future__ import annotations

import itertools
import logging
import math
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from pix2pix.checkpoint import load_checkpoint
from pix2pix.config import CROPPING, RunConfig
from pix2pix.data.builtin import resolve_unpaired_root
from pix2pix.data.unpaired import UnpairedDataset
from pix2pix.networks import build_discriminator_for, build_generator_for, reverse_domains
from pix2pix.nn.generators import generator_stride
from pix2pix.training.acceleration import (
    Acceleration,
    MixedPrecision,
    align_optimizer_state,
    plan_acceleration,
    prepare_for_step,
)
from pix2pix.training.cycle_step import CYCLE_LOSS_NAMES, cycle_train_step
from pix2pix.training.distributed import (
    Process,
    shard_order,
)
from pix2pix.training.image_pool import ImagePool, PoolOfTheGlobalBatch
from pix2pix.training.inputs import check_val_split, checked_unpaired_images, stack_samples
from pix2pix.training.loop import (
    RunFiles,
    StopRequest,
    end_epoch_schedule,
    epoch_batches,
    epoch_order,
    keep_saved_totals_on_main,
    resolve_resume,
    save_mid_epoch,
    train_with_retries,
    vote_to_stop,
)
from pix2pix.training.monitor import (
    CYCLE_VAL_FIELDS,
    CycleValidation,
    is_improvement,
    load_cycle_validation,
    report_epoch,
    translate_round_trips,
    validate_cycle,
)
from pix2pix.training.optim import build_optimizer
from pix2pix.training.state import capture_rng_state, linear_decay, restore_rng_state, restore_schedulers
from pix2pix.visuals import make_grid, write_progress_gif

logger = logging.getLogger(__name__)

CYCLE_LOG_FIELDS = ("epoch", "iteration", "lr", *CYCLE_LOSS_NAMES, *CYCLE_VAL_FIELDS, "seconds")
SAMPLE_COLUMNS = ("real_A", "fake_B", "rec_A", "real_B", "fake_A", "rec_B")  # one row per sample pair


@dataclass
class CycleState:
    """Everything a CycleGAN checkpoint holds besides the config."""

    g_a: nn.Module
    g_b: nn.Module
    d_a: nn.Module
    d_b: nn.Module
    opt_g: torch.optim.Optimizer  # G_A and G_B
    opt_d: torch.optim.Optimizer  # D_A and D_B
    schedulers: list[torch.optim.lr_scheduler.LambdaLR]
    pool_a: ImagePool  # generated A images: D_B's fakes
    pool_b: ImagePool  # generated B images: D_A's fakes
    precision: MixedPrecision
    epoch: int = 0  # completed epochs
    batch: int = 0  # batches done in the current epoch (a mid-epoch checkpoint)
    iteration: int = 0
    totals: dict[str, float] = field(default_factory=lambda: dict.fromkeys(CYCLE_LOSS_NAMES, 0.0))
    best_scores: dict[str, float] | None = None  # validation scores of best.pt (a paired validation split)

    @property
    def networks(self) -> list[nn.Module]:
        return [self.g_a, self.g_b, self.d_a, self.d_b]

    def checkpointed_values(self, config: RunConfig) -> int:
        """The two full pools (A and B fakes) at the crop size: with a 256 px crop, 79 MB beside 339 MB of
        networks and moments. A preprocess without a crop keeps whole images, which this may under-count."""
        model, pixels = config.model, config.data.crop_size**2
        return config.loss.pool_size * (model.in_channels + model.out_channels) * pixels

    def to_checkpoint(self, config: RunConfig, *, epoch: int, batch: int) -> dict[str, Any]:
        return {
            "config": config.to_dict(),
            "generator": self.g_a.state_dict(),
            "generator_b": self.g_b.state_dict(),
            "discriminator": self.d_a.state_dict(),
            "discriminator_b": self.d_b.state_dict(),
            "opt_g": self.opt_g.state_dict(),
            "opt_d": self.opt_d.state_dict(),
            "schedulers": [scheduler.state_dict() for scheduler in self.schedulers],
            "pools": {"A": self.pool_a.state_dict(), "B": self.pool_b.state_dict()},
            "epoch": epoch,
            "batch": batch,
            "iteration": self.iteration,
            "epoch_totals": self.totals,
            "best_scores": self.best_scores,
            "scaler": self.precision.state_dict(),  # fp16's loss scale; None otherwise
            "rng": capture_rng_state(),  # the pools' draws come from torch's global stream
        }

    def restore(self, state: dict[str, Any], config: RunConfig) -> None:
        """Continue from a checkpoint; the learning-rate schedule follows `config`, as pix2pix's does."""
        for key, network in zip(("generator", "generator_b", "discriminator", "discriminator_b"), self.networks):
            network.load_state_dict(state[key])
        self.opt_g.load_state_dict(state["opt_g"])
        self.opt_d.load_state_dict(state["opt_d"])
        self.epoch, self.batch, self.iteration = state["epoch"], state["batch"], state["iteration"]
        restore_schedulers(self.schedulers, state["schedulers"], config, self.epoch)
        self.pool_a.load_state_dict(state["pools"]["A"])
        self.pool_b.load_state_dict(state["pools"]["B"])
        self.totals, self.best_scores = state["epoch_totals"], state.get("best_scores")
        self.precision.load_state_dict(state.get("scaler"))
        restore_rng_state(state["rng"])
        for opt in (self.opt_g, self.opt_d):
            align_optimizer_state(opt)  # the saved run may have had another memory format


def build_cycle_state(config: RunConfig, device: torch.device, acceleration: Acceleration) -> CycleState:
    """Fresh networks (the official initialisation), the two Adams and the paper's schedule."""
    reverse = reverse_domains(config)  # describes G_B (B -> A) and D_B (judges A images)
    networks = [build_generator_for(config), build_generator_for(reverse)]
    networks += [build_discriminator_for(config), build_discriminator_for(reverse)]
    for network in networks:
        # the ignore: Module.to takes memory_format= (its docstring), but torch's typed overloads leave it out
        network.to(device, memory_format=acceleration.memory_format)  # type: ignore[call-overload]
    g_a, g_b, d_a, d_b = networks
    optim = config.optim
    betas = (optim.beta1, optim.beta2)
    opt_g = build_optimizer(itertools.chain(g_a.parameters(), g_b.parameters()), lr=optim.lr, betas=betas)
    opt_d = build_optimizer(itertools.chain(d_a.parameters(), d_b.parameters()), lr=optim.lr_d, betas=betas)
    lr_factor = linear_decay(optim.n_epochs, optim.n_epochs_decay)
    schedulers = [torch.optim.lr_scheduler.LambdaLR(opt, lr_factor) for opt in (opt_g, opt_d)]
    pool_size = config.loss.pool_size
    pools = ImagePool(pool_size), ImagePool(pool_size)
    return CycleState(g_a, g_b, d_a, d_b, opt_g, opt_d, schedulers, *pools, acceleration.precision)


def fit_cyclegan(config: RunConfig, *, resume: str | None = None, progress: bool = True) -> Path:
    """Train CycleGAN as `config` says; returns the run folder. Raises loop's TrainingInterrupted after a
    stop request (checkpointed) and TrainingStopped on a failed write or a non-finite loss (with
    `train.nan_retries`, after that many returns to the last checkpoint at half the learning rate)."""
    return train_with_retries(fit_cyclegan_once, config, resume=resume, progress=progress)


def fit_cyclegan_once(config: RunConfig, process: Process, *, resume: str | None, progress: bool) -> Path:
    """One attempt at the run, in every process; only the main process (rank 0) writes files."""
    if process.distributed and config.data.preprocess not in CROPPING:
        # the pools gather every process's fakes, which takes one image size for all
        raise ValueError(
            f'data.preprocess = "{config.data.preprocess}": under torchrun CycleGAN needs images of one size; '
            f"use a cropping preprocess ({', '.join(CROPPING)})"
        )
    run_dir = Path(config.train.out)
    if run_dir.exists() and not run_dir.is_dir():
        raise ValueError(f"--out {run_dir} is a file, not a folder")
    device = process.device
    acceleration = plan_acceleration(config, process)
    torch.manual_seed(config.train.seed)
    random.seed(config.train.seed)
    run = build_cycle_state(config, device, acceleration)
    data = load_cycle_data(config, generator_stride(run.g_a))
    if resume:
        checkpoint = resolve_resume(resume, run_dir)
        restore_cycle_run(run, config, checkpoint)
        keep_saved_totals_on_main(run, process)
        if process.is_main:
            logger.info("resumed from %s (iteration %d)", checkpoint, run.iteration)
    steps = CycleSteps.for_process(run, process, acceleration)
    files = RunFiles(config, run, device, log_fields=CYCLE_LOG_FIELDS) if process.is_main else None
    total_epochs = config.optim.total_epochs
    if process.is_main:
        logger.info(
            "training CycleGAN %s on %s: %d A and %d B images, epochs %d to %d",
            run_dir,
            device,
            len(data.train.a_paths),
            len(data.train.b_paths),
            run.epoch + 1,
            total_epochs,
        )
    memory_format = acceleration.memory_format
    with StopRequest() as stop:
        for epoch in range(run.epoch, total_epochs):
            started = time.perf_counter()
            batches = train_cycle_epoch(
                config, run, steps, data.train, epoch, memory_format, stop, files, process, progress=progress
            )
            row = end_epoch_schedule(run, epoch, batches, process, CYCLE_LOSS_NAMES)
            if files is not None:  # logging, samples and checkpoints: rank 0's work
                write_epoch_outputs(files, run, data, row, started=started, console=progress)
    if files is not None:
        files.close()
    return run_dir


@dataclass
class CycleData:
    train: UnpairedDataset
    sample_batch: dict[str, torch.Tensor]  # the fixed A and B images of every sample grid
    validation: CycleValidation | None  # only with --val-every


def load_cycle_data(config: RunConfig, stride: int) -> CycleData:
    """The training images (checked first: bad images are named before any work), samples and validation."""
    data_root = resolve_unpaired_root(config.data.data)
    check_val_split(data_root, config.data.val_split, unpaired=True)
    images = checked_unpaired_images(data_root, config.data.direction, skip_bad=config.train.skip_bad)
    train = build_unpaired_dataset(config, data_root, "train", stride, train=True, images=images)
    sample_batch = load_cycle_samples(config, data_root, stride)
    validation = None
    if config.train.val_every > 0:
        val = build_unpaired_dataset(config, data_root, config.data.val_split, stride, train=False)
        validation = load_cycle_validation(val)
    return CycleData(train, sample_batch, validation)


@dataclass
class CycleSteps:
    """What the training step calls: the four networks as `prepare_for_step` makes them (compiled,
    SyncBatchNorm, DDP under torchrun; the plain ones stay in CycleState for checkpoints and samples), and
    under torchrun the pools queried with the global batch."""

    g_a: nn.Module
    g_b: nn.Module
    d_a: nn.Module
    d_b: nn.Module
    pool_a: ImagePool | PoolOfTheGlobalBatch
    pool_b: ImagePool | PoolOfTheGlobalBatch

    @classmethod
    def for_process(cls, run: CycleState, process: Process, acceleration: Acceleration) -> CycleSteps:
        g_a, g_b, d_a, d_b = (prepare_for_step(network, acceleration, process) for network in run.networks)
        if not process.distributed:
            return cls(g_a, g_b, d_a, d_b, run.pool_a, run.pool_b)
        pool_a, pool_b = (PoolOfTheGlobalBatch(pool, process) for pool in (run.pool_a, run.pool_b))
        return cls(g_a, g_b, d_a, d_b, pool_a, pool_b)


def build_unpaired_dataset(
    config: RunConfig,
    data_root: Path,
    split: str,
    size_multiple: int,
    *,
    train: bool,
    images: tuple[list[Path], list[Path]] | None = None,
) -> UnpairedDataset:
    """`split` as the config describes it: each domain jittered on its own for training, else resized."""
    data, model = config.data, config.model
    return UnpairedDataset(
        data_root,
        split,
        direction=data.direction,
        in_channels=model.in_channels,
        out_channels=model.out_channels,
        preprocess=data.preprocess,
        load_size=data.load_size,
        crop_size=data.crop_size,
        flip=data.flip and train,
        size_multiple=size_multiple,
        train=train,
        seed=config.train.seed,
        images=images,
    )


def load_cycle_samples(config: RunConfig, data_root: Path, size_multiple: int) -> dict[str, torch.Tensor]:
    """The fixed A and B images of every sample grid: from --val-split, else test (the layout of the
    CycleGAN releases), else train."""
    splits = (config.data.val_split, "test", "train")
    split = next(name for name in splits if (data_root / f"{name}A").is_dir() and (data_root / f"{name}B").is_dir())
    dataset = build_unpaired_dataset(config, data_root, split, size_multiple, train=False)
    return stack_samples(dataset, config.train.num_samples, ("A", "B"))


def restore_cycle_run(run: CycleState, config: RunConfig, checkpoint: Path) -> None:
    state, saved = load_checkpoint(checkpoint)
    try:
        run.restore(state, config)
    except (RuntimeError, KeyError) as error:  # other layers, or a pix2pix checkpoint (no G_B)
        changes = "; ".join(config.differences(saved, ("data", "model"))) or "see its config.json"
        raise ValueError(
            f"{checkpoint}: its networks differ from the ones this config builds ({changes}); resume without "
            "those flags, or start a new run with another --out"
        ) from error


def train_cycle_epoch(
    config: RunConfig,
    run: CycleState,
    steps: CycleSteps,
    dataset: UnpairedDataset,
    epoch: int,
    memory_format: torch.memory_format,
    stop: StopRequest,
    files: RunFiles | None,
    process: Process,
    *,
    progress: bool,
) -> int:
    """The steps of one epoch (from where a resumed epoch stopped), with mid-epoch checkpoints; returns
    the number of batches in the whole epoch (loop.epoch_batches: the loader as for pix2pix)."""
    optim, loss, device = config.optim, config.loss, process.device
    dataset.set_epoch(epoch)
    order = shard_order(epoch_order(len(dataset), config.train.seed, epoch), process)
    first_batch = run.batch if epoch == run.epoch else 0
    if first_batch == 0:
        run.totals = dict.fromkeys(CYCLE_LOSS_NAMES, 0.0)
    batches_in_epoch = math.ceil(len(order) / optim.batch_size)
    bar = epoch_batches(config, dataset, order, epoch, first_batch, device, progress=progress)
    for batch_index, batch in enumerate(bar, start=first_batch):
        real_a = batch["A"].to(device, non_blocking=True, memory_format=memory_format)
        real_b = batch["B"].to(device, non_blocking=True, memory_format=memory_format)
        losses = cycle_train_step(
            steps.g_a,
            steps.g_b,
            steps.d_a,
            steps.d_b,
            run.opt_g,
            run.opt_d,
            real_a,
            real_b,
            steps.pool_a,
            steps.pool_b,
            lambda_a=loss.lambda_a,
            lambda_b=loss.lambda_b,
            lambda_identity=loss.lambda_identity,
            gan_mode=loss.gan_mode,
            precision=run.precision,
        )
        stop_requested = vote_to_stop(losses, stop, run, epoch, process)
        run.iteration += 1
        for name in CYCLE_LOSS_NAMES:
            run.totals[name] += losses[name]
        bar.set_postfix({name: f"{losses[name]:.3f}" for name in CYCLE_LOSS_NAMES})
        save_mid_epoch(config, run, files, process, bar, epoch, batch_index + 1, stop_requested=stop_requested)
    return batches_in_epoch


def write_epoch_outputs(
    files: RunFiles,
    run: CycleState,
    data: CycleData,
    row: dict[str, float],
    *,
    started: float,
    console: bool,
) -> None:
    """Validation, the log row, best.pt (by a paired split's scores), the sample grid and the epoch
    checkpoint, each at its cadence."""
    train, total_epochs = files.config.train, files.config.optim.total_epochs
    epoch = int(row["epoch"])  # epochs done
    last = epoch == total_epochs
    with files.stopping_on_write_errors(run, "the epoch's log, samples or checkpoint"):
        scores = {}
        if data.validation is not None and (epoch % train.val_every == 0 or last):
            scores = validate_cycle(run.g_a, run.g_b, data.validation, files.device, files.config)
            row.update({f"val_{name}": value for name, value in scores.items()})
        row["seconds"] = time.perf_counter() - started
        report_epoch(
            row, files.log, files.writer, total_epochs=total_epochs, console=console, loss_names=CYCLE_LOSS_NAMES
        )
        if data.validation is not None and data.validation.paired and scores:
            if is_improvement(scores, run.best_scores, train.best_metric):
                run.best_scores = scores
                files.save(run, "best.pt", epoch, 0)
        if epoch % train.sample_every == 0 or last:
            samples_dir = files.run_dir / "samples"
            save_cycle_grid(run, data.sample_batch, files.device, samples_dir / f"epoch_{epoch:04d}.png")
            write_progress_gif(sorted(samples_dir.glob("epoch_*.png")), samples_dir / "progress.gif")
        if epoch % train.save_every == 0 or last:
            files.save(run, f"epoch_{epoch:04d}.pt", epoch, 0)
        elif train.save_every_iters:
            files.save(run, None, epoch, 0)  # latest.pt must not lag behind an epoch boundary


@torch.no_grad()
def save_cycle_grid(run: CycleState, batch: dict[str, torch.Tensor], device: torch.device, path: Path) -> None:
    """Rows of SAMPLE_COLUMNS: each domain translated and taken back around its cycle, as at test time."""
    fake_b, rec_a, fake_a, rec_b = translate_round_trips(run.g_a, run.g_b, batch["A"], batch["B"], device)
    rows = [list(images) for images in zip(batch["A"], fake_b, rec_a, batch["B"], fake_a, rec_b)]
    path.parent.mkdir(parents=True, exist_ok=True)
    make_grid(rows).save(path)
