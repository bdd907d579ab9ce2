"""The optimiser: Adam as in the paper, with the fastest exact implementation the device offers."""

from __future__ import annotations

from collections.abc import Iterable

import torch


def build_optimizer(
    parameters: Iterable[torch.nn.Parameter], *, lr: float, betas: tuple[float, float]
) -> torch.optim.Adam:
    """Adam with `fused=True` where torch has a fused kernel for the parameters' device, else `foreach=True`.

    Both compute the same update as the plain per-parameter loop (to float rounding); the fused step
    for G and D is ~10x faster on a CPU (~320 -> ~27 ms per
    iteration at 256x256 on a 2-core AMD EPYC with AVX-512, docs/performance.md).
    """
    parameters = list(parameters)
    try:
        return torch.optim.Adam(parameters, lr=lr, betas=betas, fused=True)
    except RuntimeError:  # no fused Adam for this device (or dtype) in the installed torch
        return torch.optim.Adam(parameters, lr=lr, betas=betas, foreach=True)
