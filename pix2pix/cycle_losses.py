"""The CycleGAN objective (Zhu et al. 2017, eq. 3, plus the identity term of section 5.2) as pure functions
of tensors; the adversarial terms are pix2pix.losses' (least squares, as the official CycleGAN trains).

Names follow the official code: G_A maps A -> B and D_A judges domain B; cycle_A is the loop A -> B -> A.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

CYCLE_GAN_MODES = ("lsgan", "vanilla")  # the hinge loss has no single real/fake form for both G and D


def cycle_loss(reconstructed: torch.Tensor, real: torch.Tensor, weight: float = 10.0) -> torch.Tensor:
    """weight * L1 between an image taken around the cycle (A -> B -> A) and where it started (eq. 2)."""
    return weight * F.l1_loss(reconstructed, real)


def identity_loss(
    mapped: torch.Tensor, real: torch.Tensor, *, cycle_weight: float = 10.0, identity_weight: float = 0.5
) -> torch.Tensor:
    """identity_weight * cycle_weight * L1 between G(y) and y, for y already in G's output domain: G should
    leave it alone, which keeps the colours of photos in painting <-> photo. Scaled by the cycle weight of
    y's domain as the official code does, so `identity_weight` is relative to the cycle term."""
    return identity_weight * cycle_weight * F.l1_loss(mapped, real)
