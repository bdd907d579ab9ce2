"""One optimisation step of pix2pix, in the official update order: D first, then G with D frozen."""

from __future__ import annotations

import torch
from torch import nn

from pix2pix.losses import discriminator_loss, generator_loss
from pix2pix.training.acceleration import MixedPrecision
from pix2pix.training.distributed import unwrap

FP32 = MixedPrecision()


def train_step(
    generator: nn.Module,
    discriminator: nn.Module | None,
    opt_g: torch.optim.Optimizer,
    opt_d: torch.optim.Optimizer | None,
    source: torch.Tensor,
    target: torch.Tensor,
    *,
    gan_mode: str,
    l1_weight: float,
    conditional: bool = True,
    precision: MixedPrecision = FP32,
) -> dict[str, float]:
    """Update D on (source, target) vs (source, G(source)), then G; return the loss terms.

    `discriminator` is None for the L1-only baseline. A `conditional` D (the paper's cGAN) sees the
    input image stacked with the real or generated output, (B, in + out, H, W); an unconditional one the
    output alone. Under bf16/fp16 only the network forwards run in autocast; the losses are computed in
    fp32 (`.float()` is a no-op for fp32 tensors).
    """
    with precision.autocast(source.device):
        fake_target = generator(source)
    losses: dict[str, torch.Tensor] = {}
    fake_logits = None
    if discriminator is not None and opt_d is not None:
        discriminator.requires_grad_(True)
        opt_d.zero_grad(set_to_none=True)
        with precision.autocast(source.device):
            # detach: the D step must not push gradients into G
            d_fake = discriminator(what_d_sees(source, fake_target.detach(), conditional)).float()
            d_real = discriminator(what_d_sees(source, target, conditional)).float()
        losses.update(discriminator_loss(d_real, d_fake, gan_mode))
        precision.backward_and_step(losses["D"], opt_d)
        # frozen for the G step so its backward pass skips D's weight gradients
        discriminator.requires_grad_(False)
        # without the DDP wrapper: under DDP, a forward whose parameters get no gradient would leave the
        # gradient reducer waiting; D needs no synchronisation here since it is not updated
        with precision.autocast(source.device):
            fake_logits = unwrap(discriminator)(what_d_sees(source, fake_target, conditional)).float()

    losses.update(generator_loss(fake_logits, fake_target.float(), target, gan_mode, l1_weight))
    opt_g.zero_grad(set_to_none=True)
    precision.backward_and_step(losses["G"], opt_g)
    precision.end_iteration()
    return {name: value.item() for name, value in losses.items()}


def what_d_sees(source: torch.Tensor, image: torch.Tensor, conditional: bool) -> torch.Tensor:
    """The pair (input, output) stacked on channels for the paper's cGAN; the output alone for a plain GAN."""
    return torch.cat([source, image], 1) if conditional else image
