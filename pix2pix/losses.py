"""The pix2pix objective as pure functions of tensors (paper eq. 4: cGAN + lambda * L1)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

GAN_MODES = ("vanilla", "lsgan")


def adversarial_loss(logits: torch.Tensor, target_is_real: bool, mode: str = "vanilla") -> torch.Tensor:
    """GAN loss of discriminator logits against an all-real or all-fake label map.

    vanilla: binary cross-entropy on logits (the paper); lsgan: least squares (Mao et al.).
    """
    target = torch.full_like(logits, 1.0 if target_is_real else 0.0)
    if mode == "vanilla":
        return F.binary_cross_entropy_with_logits(logits, target)
    if mode == "lsgan":
        return F.mse_loss(logits, target)
    raise ValueError(f"unknown GAN mode {mode!r}; expected one of {GAN_MODES}")


def discriminator_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor, mode: str) -> dict[str, torch.Tensor]:
    """D objective, halved as in the paper "to slow down the rate at which D learns relative to G"."""
    real = adversarial_loss(real_logits, True, mode)
    fake = adversarial_loss(fake_logits, False, mode)
    return {"D_real": real, "D_fake": fake, "D": 0.5 * (real + fake)}


def generator_loss(
    fake_logits: torch.Tensor | None, fake_target: torch.Tensor, target: torch.Tensor, mode: str, l1_weight: float
) -> dict[str, torch.Tensor]:
    """G objective: fool D (non-saturating form) plus lambda-weighted L1 to the target.

    `fake_logits` is None for the L1-only baseline, which has no discriminator.
    """
    l1 = F.l1_loss(fake_target, target)
    gan = adversarial_loss(fake_logits, True, mode) if fake_logits is not None else torch.zeros_like(l1)
    return {"G_GAN": gan, "G_L1": l1, "G": gan + l1_weight * l1}
