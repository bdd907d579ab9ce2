"""How the training step uses the hardware: mixed precision, memory format, torch.compile, SyncBatchNorm.

Resolved once at start (`plan_acceleration`), so a combination that cannot work stops the run before the
first iteration. With the CPU defaults (fp32, contiguous, not compiled) the step is the plain eager one.
"""

from __future__ import annotations

import copy
import warnings
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from pix2pix.config import RunConfig
from pix2pix.devices import resolve_channels_last, resolve_precision
from pix2pix.training.distributed import Process, wrap_for_training


@dataclass(frozen=True)
class MixedPrecision:
    """The dtype the forward passes run in (under autocast unless fp32) and, for fp16, the loss scaler
    that G and D share (one scaler, updated once per iteration after both optimiser steps)."""

    dtype: torch.dtype = torch.float32
    scaler: torch.amp.GradScaler | None = None

    def autocast(self, device: torch.device) -> AbstractContextManager:
        if self.dtype == torch.float32:
            return nullcontext()
        return torch.autocast(device.type, dtype=self.dtype)

    def backward_and_step(self, loss: torch.Tensor, optimizer: torch.optim.Optimizer) -> None:
        """fp16 scales the loss up so that small gradients do not underflow; `scaler.step` unscales them
        and skips the step when one overflowed."""
        if self.scaler is None:
            loss.backward()
            optimizer.step()
            return
        self.scaler.scale(loss).backward()
        self.scaler.step(optimizer)

    def end_iteration(self) -> None:
        """The scale halves after an overflow and doubles after a long run of good steps."""
        if self.scaler is not None:
            self.scaler.update()

    def state_dict(self) -> dict[str, Any] | None:
        return self.scaler.state_dict() if self.scaler is not None else None

    def load_state_dict(self, state: dict[str, Any] | None) -> None:
        """Restore a saved scale; a run resumed in fp16 from an fp32/bf16 checkpoint starts a fresh one."""
        if self.scaler is not None and state:
            self.scaler.load_state_dict(state)


FP32 = MixedPrecision()  # the paper's arithmetic: no autocast, no scaler


@dataclass(frozen=True)
class Acceleration:
    precision: MixedPrecision
    memory_format: torch.memory_format  # channels_last, or preserve_format (leave tensors as they are)
    compile: bool
    sync_bn: bool  # only ever true under DDP on CUDA


def plan_acceleration(config: RunConfig, process: Process) -> Acceleration:
    """Resolve the `auto` settings for this process's device; refuse what cannot work there."""
    train, device = config.train, process.device
    dtype = resolve_precision(train.precision, device)
    if train.sync_bn and device.type != "cuda":
        raise ValueError(
            f"--sync-bn needs CUDA: torch's SyncBatchNorm does not run on {device.type} (gloo); "
            "use --norm instance --disc-norm instance for per-image normalisation instead"
        )
    uses_batch_norm = "batch" in (config.model.norm, config.model.disc_norm)
    if process.distributed and process.is_main and uses_batch_norm and not train.sync_bn:
        per_process, world = config.optim.batch_size, process.world_size
        warnings.warn(
            f"batch norm across {world} processes normalises each process's {per_process} image(s) on its own, "
            f"unlike one process with the global batch of {world * per_process}; use --sync-bn (CUDA) for "
            "statistics over the global batch, or --norm instance --disc-norm instance for runs that match "
            "a single process",
            stacklevel=3,
        )
    channels_last = resolve_channels_last(train.channels_last, device)
    return Acceleration(
        precision=MixedPrecision(dtype, torch.amp.GradScaler(device.type) if dtype == torch.float16 else None),
        memory_format=torch.channels_last if channels_last else torch.preserve_format,
        compile=train.compile,
        sync_bn=train.sync_bn and process.distributed,
    )


def prepare_for_step(module: nn.Module, acceleration: Acceleration, process: Process) -> nn.Module:
    """The network the training step calls: with SyncBatchNorm, compiled and in DDP as planned.

    It shares every parameter and buffer with `module`, which stays the plain network that checkpoints
    (no `_orig_mod.`/`module.` prefixes), sample grids and validation use. Compiled inside DDP, as
    torch's documentation advises, so `unwrap` gives the compiled network for the frozen-D forward.
    """
    if acceleration.sync_bn:
        module = with_sync_batch_norm(module)
    if acceleration.compile:
        compiled = torch.compile(module)
        assert isinstance(compiled, nn.Module)  # an OptimizedModule: torch's hint says only "a callable"
        module = compiled
    return wrap_for_training(module, process)


def with_sync_batch_norm(module: nn.Module) -> nn.Module:
    """A copy of `module` that shares its parameters and buffers, with SyncBatchNorm for BatchNorm.

    A copy, not `module` itself: SyncBatchNorm all-reduces in every training-mode forward, so the sample
    grids (batch statistics, made by rank 0 alone) would wait forever for the other processes.
    """
    shared = {id(tensor): tensor for tensor in (*module.parameters(), *module.buffers())}
    return nn.SyncBatchNorm.convert_sync_batchnorm(copy.deepcopy(module, memo=shared))


def align_optimizer_state(optimizer: torch.optim.Optimizer) -> None:
    """Give loaded optimiser state (e.g. Adam's moments) the memory layout of its parameter.

    A checkpoint saved without channels_last and resumed with it (or the reverse) would otherwise pair
    NHWC parameters with NCHW moments, and fused Adam (torch 2.13, CPU) then mixes up elements.
    """
    for parameter, state in optimizer.state.items():
        for key, value in state.items():
            if torch.is_tensor(value) and value.shape == parameter.shape and value.stride() != parameter.stride():
                state[key] = torch.empty_like(parameter, dtype=value.dtype).copy_(value)
