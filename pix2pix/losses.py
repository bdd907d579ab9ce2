"""The pix2pix objective as pure functions of tensors (paper eq. 4: cGAN + lambda * L1), and the opt-in
terms beyond the paper: the hinge loss, feature matching and the R1 penalty.

A discriminator's output is one logit map, or a list of them for a multi-scale D; every adversarial
term is then the mean over the scales.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

GAN_MODES = ("vanilla", "lsgan", "hinge")
Logits = torch.Tensor | list[torch.Tensor]


@dataclass(frozen=True)
class Objective:
    """What a training step optimises; the defaults are the paper's."""

    gan_mode: str = "vanilla"
    l1_weight: float = 100.0
    conditional: bool = True  # D sees the input beside the output (cGAN)
    feature_matching_weight: float = 0.0
    r1_weight: float = 0.0
    diff_augment: str = ""  # DiffAugment policy for what D sees


def float_logits(logits: Logits) -> Logits:
    """Logits in fp32 (under autocast they come in bf16/fp16): the losses are computed in fp32."""
    return [scale.float() for scale in logits] if isinstance(logits, list) else logits.float()


def adversarial_loss(logits: Logits, target_is_real: bool, mode: str = "vanilla") -> torch.Tensor:
    """GAN loss of discriminator logits against an all-real or all-fake label map.

    vanilla: binary cross-entropy on logits (the paper); lsgan: least squares (Mao et al.). The hinge
    loss has separate forms for D and G: `discriminator_loss`, `generator_loss`.
    """
    if mode not in ("vanilla", "lsgan"):
        raise ValueError(f"unknown GAN mode {mode!r}; expected one of {GAN_MODES}")

    def term(x: torch.Tensor) -> torch.Tensor:
        target = torch.full_like(x, 1.0 if target_is_real else 0.0)
        return F.binary_cross_entropy_with_logits(x, target) if mode == "vanilla" else F.mse_loss(x, target)

    return mean_over_scales(logits, term)


def mean_over_scales(logits: Logits, term: Callable[[torch.Tensor], torch.Tensor]) -> torch.Tensor:
    if not isinstance(logits, list):
        return term(logits)
    return torch.stack([term(scale) for scale in logits]).mean()


def discriminator_loss(real_logits: Logits, fake_logits: Logits, mode: str) -> dict[str, torch.Tensor]:
    """D objective, halved as in the paper "to slow down the rate at which D learns relative to G"."""
    if mode == "hinge":  # Lim & Ye; Miyato et al.: a margin of 1 on each side
        real = mean_over_scales(real_logits, lambda x: F.relu(1 - x).mean())
        fake = mean_over_scales(fake_logits, lambda x: F.relu(1 + x).mean())
    else:
        real = adversarial_loss(real_logits, True, mode)
        fake = adversarial_loss(fake_logits, False, mode)
    return {"D_real": real, "D_fake": fake, "D": 0.5 * (real + fake)}


def generator_loss(
    fake_logits: Logits | None, fake_target: torch.Tensor, target: torch.Tensor, mode: str, l1_weight: float
) -> dict[str, torch.Tensor]:
    """G objective: fool D (non-saturating form; for hinge, -D) plus lambda-weighted L1 to the target.

    `fake_logits` is None for the L1-only baseline, which has no discriminator.
    """
    l1 = F.l1_loss(fake_target, target)
    if fake_logits is None:
        gan = torch.zeros_like(l1)
    elif mode == "hinge":
        gan = mean_over_scales(fake_logits, lambda x: -x.mean())
    else:
        gan = adversarial_loss(fake_logits, True, mode)
    return {"G_GAN": gan, "G_L1": l1, "G": gan + l1_weight * l1}


def feature_matching_loss(
    fake_features: list[list[torch.Tensor]], real_features: list[list[torch.Tensor]]
) -> torch.Tensor:
    """L1 between D's intermediate activations on generated and real pairs, weighted as pix2pixHD weights
    them (eq. 4 and its code): per scale, 4 / (number of layers) times their sum, the logits left out;
    then the mean over the scales. The real features are targets (no gradient)."""
    per_scale = []
    for fake_scale, real_scale in zip(fake_features, real_features, strict=True):
        layers = list(zip(fake_scale[:-1], real_scale[:-1], strict=True))  # [-1]: the logits
        distances = torch.stack([F.l1_loss(fake, real.detach()) for fake, real in layers])
        per_scale.append(4 * distances.mean())
    return torch.stack(per_scale).mean()


def r1_penalty(real_logits: Logits, real_input: torch.Tensor) -> torch.Tensor:
    """Squared norm of the gradient of D's output at the real pairs (Mescheder et al. 2018), D's output
    being each sample's mean logit (so the penalty does not grow with the patch map, i.e. the crop size);
    the mean over samples and then over scales, as every adversarial term here. `real_input` must have
    required grad when `real_logits` were computed. The graph is kept, so the penalty trains D."""

    def penalty(scale: torch.Tensor) -> torch.Tensor:
        per_sample = scale.flatten(1).mean(1).sum()  # one backward for the batch, as usual for R1
        (gradient,) = torch.autograd.grad(per_sample, real_input, create_graph=True, retain_graph=True)
        return gradient.pow(2).flatten(1).sum(1).mean()

    return mean_over_scales(real_logits, penalty)
