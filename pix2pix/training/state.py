"""What a checkpoint holds besides the config: the networks, their optimisers and schedules, and where
the run stands. `TrainingState` is built fresh or restored from a checkpoint, and saved back as one dict."""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import torch
from torch import nn

from pix2pix.config import RunConfig
from pix2pix.networks import build_discriminator_for, build_generator_for
from pix2pix.training.acceleration import Acceleration, MixedPrecision, align_optimizer_state
from pix2pix.training.optim import build_optimizer

LOSS_NAMES = ("G_GAN", "G_L1", "D_real", "D_fake")


def linear_decay(n_epochs: int, n_epochs_decay: int) -> Callable[[int], float]:
    """Learning-rate factor per epoch: 1 for n_epochs, then linear towards 0 (the official rule)."""

    def factor(epoch: int) -> float:
        return 1.0 - max(0, epoch + 1 - n_epochs) / float(n_epochs_decay + 1)

    return factor


def capture_rng_state() -> dict[str, Any]:
    state: dict[str, Any] = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


class SavedRun(Protocol):
    """What the run folder's writer (loop.RunFiles) and the epoch's end need of a run: pix2pix's TrainingState
    and CycleGAN's CycleState alike."""

    epoch: int
    iteration: int
    opt_g: torch.optim.Optimizer
    schedulers: list[torch.optim.lr_scheduler.LambdaLR]
    totals: dict[str, float]  # the current epoch's summed loss terms

    @property
    def networks(self) -> list[nn.Module]: ...

    def checkpointed_values(self, config: RunConfig) -> int:
        """Values a checkpoint holds beyond the networks' and their Adam moments, at its fullest."""
        ...

    def to_checkpoint(self, config: RunConfig, *, epoch: int, batch: int) -> dict[str, Any]: ...


def restore_schedulers(
    schedulers: list[torch.optim.lr_scheduler.LambdaLR], saved: list[dict[str, Any]], config: RunConfig, epoch: int
) -> None:
    """Continue the saved schedules (G's, then D's) with `config`'s learning rates and decay epochs, which
    a resumed run may change, from `epoch` (completed epochs)."""
    optim = config.optim
    lr_factor = linear_decay(optim.n_epochs, optim.n_epochs_decay)
    for scheduler, scheduler_state, lr in zip(schedulers, saved, (optim.lr, optim.lr_d)):
        scheduler.load_state_dict(scheduler_state)
        scheduler.base_lrs = [lr] * len(scheduler.base_lrs)
        for group in scheduler.optimizer.param_groups:
            group["lr"] = lr * lr_factor(epoch)


@dataclass
class TrainingState:
    generator: nn.Module
    discriminator: nn.Module | None  # None for the L1-only baseline
    opt_g: torch.optim.Optimizer
    opt_d: torch.optim.Optimizer | None
    schedulers: list[torch.optim.lr_scheduler.LambdaLR]
    precision: MixedPrecision
    epoch: int = 0  # completed epochs
    batch: int = 0  # batches done in the current epoch (a mid-epoch checkpoint)
    iteration: int = 0
    totals: dict[str, float] = field(default_factory=lambda: dict.fromkeys(LOSS_NAMES, 0.0))  # this epoch's sums
    best_scores: dict[str, float] | None = None  # validation scores of best.pt
    generator_ema: nn.Module | None = None  # with --ema-decay: the moving average of G's weights

    @property
    def generator_for_inference(self) -> nn.Module:
        """What validation, samples and (through the checkpoint) test/eval/export/serve translate with."""
        return self.generator_ema if self.generator_ema is not None else self.generator

    @property
    def networks(self) -> list[nn.Module]:
        return [net for net in (self.generator, self.discriminator, self.generator_ema) if net is not None]

    @property
    def optimizers(self) -> list[torch.optim.Optimizer]:
        return [opt for opt in (self.opt_g, self.opt_d) if opt is not None]

    def checkpointed_values(self, config: RunConfig) -> int:
        return 0

    def to_checkpoint(self, config: RunConfig, *, epoch: int, batch: int) -> dict[str, Any]:
        return {
            "config": config.to_dict(),
            "generator": self.generator.state_dict(),
            "generator_ema": self.generator_ema.state_dict() if self.generator_ema is not None else None,
            "discriminator": self.discriminator.state_dict() if self.discriminator else None,
            "opt_g": self.opt_g.state_dict(),
            "opt_d": self.opt_d.state_dict() if self.opt_d else None,
            "schedulers": [scheduler.state_dict() for scheduler in self.schedulers],
            "epoch": epoch,
            "batch": batch,
            "iteration": self.iteration,
            "epoch_totals": self.totals,
            "best_scores": self.best_scores,
            "scaler": self.precision.state_dict(),  # fp16's loss scale; None otherwise
            "rng": capture_rng_state(),
        }

    def restore(self, state: dict[str, Any], config: RunConfig) -> None:
        """Continue from a checkpoint; the learning-rate schedule follows `config` (its lr, added decay
        epochs), not the saved run's."""
        self.generator.load_state_dict(state["generator"])
        if self.generator_ema is not None:  # a run that turns the average on at resume starts it from G
            self.generator_ema.load_state_dict(state.get("generator_ema") or state["generator"])
        self.opt_g.load_state_dict(state["opt_g"])
        if self.discriminator is not None and self.opt_d is not None:
            self.discriminator.load_state_dict(state["discriminator"])
            self.opt_d.load_state_dict(state["opt_d"])
        self.epoch, self.batch, self.iteration = state["epoch"], state["batch"], state["iteration"]
        restore_schedulers(self.schedulers, state["schedulers"], config, self.epoch)
        self.totals, self.best_scores = state["epoch_totals"], state["best_scores"]
        self.precision.load_state_dict(state.get("scaler"))
        restore_rng_state(state["rng"])
        for opt in self.optimizers:
            align_optimizer_state(opt)  # the saved run may have had another memory format


def build_training_state(config: RunConfig, device: torch.device, acceleration: Acceleration) -> TrainingState:
    """Fresh networks (the official initialisation), Adam for each and the paper's schedule."""
    memory_format = acceleration.memory_format
    # the ignores: Module.to takes memory_format= (its docstring), but torch's typed overloads leave it out
    generator = build_generator_for(config).to(device, memory_format=memory_format)  # type: ignore[call-overload]
    discriminator = (
        build_discriminator_for(config).to(device, memory_format=memory_format)  # type: ignore[call-overload]
        if config.loss.gan
        else None
    )
    optim = config.optim
    betas = (optim.beta1, optim.beta2)
    opt_g = build_optimizer(generator.parameters(), lr=optim.lr, betas=betas)
    opt_d = build_optimizer(discriminator.parameters(), lr=optim.lr_d, betas=betas) if discriminator else None
    lr_factor = linear_decay(optim.n_epochs, optim.n_epochs_decay)
    schedulers = [torch.optim.lr_scheduler.LambdaLR(opt, lr_factor) for opt in (opt_g, opt_d) if opt]
    state = TrainingState(generator, discriminator, opt_g, opt_d, schedulers, acceleration.precision)
    if optim.ema_decay:
        state.generator_ema = copy.deepcopy(generator).requires_grad_(False)
    return state


@torch.no_grad()
def update_ema(average: nn.Module, model: nn.Module, decay: float) -> None:
    """average <- decay * average + (1 - decay) * model for the weights; the buffers (batch-norm running
    statistics) are copied, as they are averages already."""
    for average_weight, weight in zip(average.parameters(), model.parameters()):
        average_weight.lerp_(weight, 1 - decay)
    for average_buffer, buffer in zip(average.buffers(), model.buffers()):
        average_buffer.copy_(buffer)
