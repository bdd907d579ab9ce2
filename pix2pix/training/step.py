"""One optimisation step of pix2pix, in the official update order: D first, then G with D frozen."""

from __future__ import annotations

import torch
from torch import nn

from pix2pix.config import RunConfig
from pix2pix.losses import (
    Logits,
    Objective,
    discriminator_loss,
    feature_matching_loss,
    float_logits,
    generator_loss,
    r1_penalty,
)
from pix2pix.nn.discriminators import discriminator_features
from pix2pix.training.acceleration import FP32, MixedPrecision
from pix2pix.training.augment import diff_augment
from pix2pix.training.distributed import unwrap

PAPER = Objective()


def train_step(
    generator: nn.Module,
    discriminator: nn.Module | None,
    opt_g: torch.optim.Optimizer,
    opt_d: torch.optim.Optimizer | None,
    source: torch.Tensor,
    target: torch.Tensor,
    *,
    objective: Objective = PAPER,
    precision: MixedPrecision = FP32,
) -> dict[str, float]:
    """Update D on (source, target) vs (source, G(source)), then G; return the loss terms.

    `discriminator` is None for the L1-only baseline. A conditional D (the paper's cGAN) sees the input
    image stacked with the real or generated output, (B, in + out, H, W); an unconditional one the output
    alone. Under bf16/fp16 only the network forwards run in autocast; the losses are computed in fp32
    (`.float()` is a no-op for fp32 tensors). The objective's opt-in terms (DiffAugment, R1, feature
    matching) only add work when they are on: with the defaults this is the paper's step, op for op.
    """
    with precision.autocast(source.device):
        fake_target = generator(source)
    losses: dict[str, torch.Tensor] = {}
    fake_logits: Logits | None = None
    if discriminator is not None and opt_d is not None:
        real_pair = augmented(what_d_sees(source, target, objective.conditional), objective, source)
        losses.update(update_discriminator(discriminator, opt_d, source, fake_target, real_pair, objective, precision))
        # without the DDP wrapper: under DDP, a forward whose parameters get no gradient would leave the
        # gradient reducer waiting; D needs no synchronisation here since it is not updated
        d = unwrap(discriminator)
        fake_pair = what_d_sees(source, fake_target, objective.conditional)
        with precision.autocast(source.device):
            if objective.feature_matching_weight:
                # on the pairs as they are: DiffAugment would shift or cut the two differently
                fake_features = discriminator_features(d, fake_pair)
                with torch.no_grad():  # the targets; note that this forward also moves D's batch-norm statistics
                    real_features = discriminator_features(d, what_d_sees(source, target, objective.conditional))
                losses["G_FM"] = feature_matching_loss(fake_features, real_features).float()
            if objective.feature_matching_weight and not objective.diff_augment:
                fake_logits = float_logits(to_logits(fake_features))  # the same forward's logits
            else:
                fake_logits = float_logits(d(augmented(fake_pair, objective, source)))

    losses.update(generator_loss(fake_logits, fake_target.float(), target, objective.gan_mode, objective.l1_weight))
    if "G_FM" in losses:
        losses["G"] = losses["G"] + objective.feature_matching_weight * losses["G_FM"]
    opt_g.zero_grad(set_to_none=True)
    precision.backward_and_step(losses["G"], opt_g)
    precision.end_iteration()
    return {name: value.item() for name, value in losses.items()}


def objective_of(config: RunConfig) -> Objective:
    """The loss terms a run's config asks for."""
    loss = config.loss
    return Objective(
        gan_mode=loss.gan_mode,
        l1_weight=loss.l1_weight,
        conditional=config.model.disc_conditional,
        feature_matching_weight=loss.feature_matching_weight,
        r1_weight=loss.r1_weight,
        diff_augment=loss.diff_augment,
    )


def update_discriminator(
    discriminator: nn.Module,
    opt_d: torch.optim.Optimizer,
    source: torch.Tensor,
    fake_target: torch.Tensor,
    real_pair: torch.Tensor,
    objective: Objective,
    precision: MixedPrecision,
) -> dict[str, torch.Tensor]:
    """D's step on a real and a generated pair; D is left frozen, so G's backward pass skips its weights."""
    discriminator.requires_grad_(True)
    opt_d.zero_grad(set_to_none=True)
    # detach: the D step must not push gradients into G
    fake_pair = augmented(what_d_sees(source, fake_target.detach(), objective.conditional), objective, source)
    if objective.r1_weight:
        real_pair = real_pair.detach().requires_grad_(True)  # R1 needs D's gradient at the real input
    with precision.autocast(source.device):
        d_fake = float_logits(discriminator(fake_pair))
        d_real = float_logits(discriminator(real_pair))
    losses = discriminator_loss(d_real, d_fake, objective.gan_mode)
    if objective.r1_weight:
        losses["D_R1"] = r1_penalty(d_real, real_pair)
        losses["D"] = losses["D"] + 0.5 * objective.r1_weight * losses["D_R1"]
    precision.backward_and_step(losses["D"], opt_d)
    discriminator.requires_grad_(False)
    return losses


def what_d_sees(source: torch.Tensor, image: torch.Tensor, conditional: bool) -> torch.Tensor:
    """The pair (input, output) stacked on channels for the paper's cGAN; the output alone for a plain GAN."""
    return torch.cat([source, image], 1) if conditional else image


def augmented(pair: torch.Tensor, objective: Objective, source: torch.Tensor) -> torch.Tensor:
    """DiffAugment of what D sees when the objective asks for it; the input and output of a pair get the
    same transform (their colours are jittered as separate images)."""
    if not objective.diff_augment:
        return pair
    source_channels = source.shape[1] if objective.conditional else 0
    return diff_augment(pair, objective.diff_augment, split=source_channels)


def to_logits(features: list[list[torch.Tensor]]) -> Logits:
    """The logits of `features` (the last entry of each scale): a map, or a list of maps for several scales."""
    logits = [scale[-1] for scale in features]
    return logits if len(logits) > 1 else logits[0]
