"""Test-time behaviour as two independent switches: dropout and normalisation statistics.

The paper runs G at test time exactly as in training (dropout on, batch statistics); most users want
a deterministic model (dropout off, running statistics). The official code couples both to one
`--eval` flag; here each is set on its own.
"""

from __future__ import annotations

import threading

import torch
from torch import nn

NORM_STATS = ("batch", "running")


def set_inference_mode(generator: nn.Module, *, dropout: bool, norm_stats: str) -> nn.Module:
    if norm_stats not in NORM_STATS:
        raise ValueError(f"unknown norm statistics {norm_stats!r}; expected one of {NORM_STATS}")
    generator.eval()
    for module in generator.modules():
        if isinstance(module, nn.Dropout):
            module.train(dropout)
        elif isinstance(module, nn.modules.batchnorm._BatchNorm):
            batch_stats = norm_stats == "batch"
            module.train(batch_stats)
            # in train mode BatchNorm would also update its running averages; a translation must not
            # change the model, so stop tracking while batch statistics are used
            module.track_running_stats = not batch_stats
    return generator


@torch.no_grad()
def run_for_inference(
    generator: nn.Module, batch: torch.Tensor, *, dropout: bool, norm_stats: str, seed: int | None
) -> torch.Tensor:
    """Forward in the given test-time mode. `seed` fixes the dropout draw on a forked RNG, so the result
    is reproducible and the caller's RNG (e.g. a training run's) does not move; None uses the global RNG."""
    set_inference_mode(generator, dropout=dropout, norm_stats=norm_stats)
    if seed is None:
        return generator(batch)
    # Dropout draws from the global generator: seeding it is process-wide, so seeded forwards take turns
    # (serve's threads), and none sees another's seed
    with SEEDED_FORWARD, torch.random.fork_rng(devices=[batch.device] if batch.device.type == "cuda" else []):
        torch.manual_seed(seed)
        return generator(batch)


SEEDED_FORWARD = threading.Lock()


def set_training_mode(generator: nn.Module) -> nn.Module:
    """Undo `set_inference_mode`."""
    for module in generator.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            module.track_running_stats = True
    return generator.train()
