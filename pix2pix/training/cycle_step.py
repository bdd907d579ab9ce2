"""One optimisation step of CycleGAN in the official order (`cycle_gan_model.py`): both generators with both
discriminators frozen, then both discriminators on fakes drawn from the image pools.

Names follow the official code: G_A maps A -> B and D_A judges whether an image belongs to B; G_B and D_B
the other way round.
"""

from __future__ import annotations

import torch
from torch import nn

from pix2pix.cycle_losses import CYCLE_GAN_MODES, cycle_loss, identity_loss
from pix2pix.losses import adversarial_loss, discriminator_loss, float_logits
from pix2pix.training.acceleration import FP32, MixedPrecision
from pix2pix.training.distributed import unwrap
from pix2pix.training.image_pool import ImagePool, PoolOfTheGlobalBatch

CYCLE_LOSS_NAMES = ("D_A", "G_A", "cycle_A", "idt_A", "D_B", "G_B", "cycle_B", "idt_B")  # the official order


def cycle_train_step(
    g_a: nn.Module,
    g_b: nn.Module,
    d_a: nn.Module,
    d_b: nn.Module,
    opt_g: torch.optim.Optimizer,
    opt_d: torch.optim.Optimizer,
    real_a: torch.Tensor,
    real_b: torch.Tensor,
    pool_a: ImagePool | PoolOfTheGlobalBatch,
    pool_b: ImagePool | PoolOfTheGlobalBatch,
    *,
    lambda_a: float = 10.0,
    lambda_b: float = 10.0,
    lambda_identity: float = 0.5,
    gan_mode: str = "lsgan",
    precision: MixedPrecision = FP32,
) -> dict[str, float]:
    """Update G_A and G_B (one optimiser, `opt_g`), then D_A and D_B (`opt_d`); return the weighted loss
    terms named as in CYCLE_LOSS_NAMES. `pool_a` holds generated A images (D_B's fakes), `pool_b`
    generated B images (D_A's). Under bf16/fp16 the network forwards run in autocast and their outputs
    are taken back to fp32, so the losses and the pools' images are fp32 (as in training/step.py)."""
    if gan_mode not in CYCLE_GAN_MODES:
        raise ValueError(f"unknown CycleGAN GAN mode {gan_mode!r}; allowed: {', '.join(CYCLE_GAN_MODES)}")
    for name, weight in (("lambda_a", lambda_a), ("lambda_b", lambda_b), ("lambda_identity", lambda_identity)):
        if weight < 0:
            raise ValueError(f"{name} must be 0 or more, got {weight!r}")
    if lambda_identity and real_a.shape[1] != real_b.shape[1]:
        raise ValueError(
            f"the identity loss feeds B images to G_A, so A and B need the same channels (got {real_a.shape[1]} "
            f"and {real_b.shape[1]}); set lambda_identity to 0"
        )
    with precision.autocast(real_a.device):
        fake_b = g_a(real_a).float()  # (N, C_B, H, W)
        rec_a = g_b(fake_b).float()  # (N, C_A, H, W)
        fake_a = g_b(real_b).float()
        rec_b = g_a(fake_a).float()

    # G step with both D frozen, so its backward pass skips D's weights
    d_a.requires_grad_(False)
    d_b.requires_grad_(False)
    with precision.autocast(real_a.device):
        losses = identity_terms(g_a, g_b, real_a, real_b, lambda_a=lambda_a, lambda_b=lambda_b, weight=lambda_identity)
        # without the DDP wrapper: D is not updated here, so it needs no synchronisation (as in training/step.py)
        fake_b_logits, fake_a_logits = float_logits(unwrap(d_a)(fake_b)), float_logits(unwrap(d_b)(fake_a))
    losses["G_A"] = adversarial_loss(fake_b_logits, True, gan_mode)
    losses["G_B"] = adversarial_loss(fake_a_logits, True, gan_mode)
    losses["cycle_A"] = cycle_loss(rec_a, real_a, lambda_a)
    losses["cycle_B"] = cycle_loss(rec_b, real_b, lambda_b)
    opt_g.zero_grad(set_to_none=True)
    total_g = losses["G_A"] + losses["G_B"] + losses["cycle_A"] + losses["cycle_B"] + losses["idt_A"] + losses["idt_B"]
    precision.backward_and_step(total_g, opt_g)

    # D step: the pools answer with detached fakes, some from earlier generators
    d_a.requires_grad_(True)
    d_b.requires_grad_(True)
    opt_d.zero_grad(set_to_none=True)
    pooled_b, pooled_a = pool_b.query(fake_b), pool_a.query(fake_a)
    with precision.autocast(real_a.device):
        d_a_real, d_a_fake = float_logits(d_a(real_b)), float_logits(d_a(pooled_b))
        d_b_real, d_b_fake = float_logits(d_b(real_a)), float_logits(d_b(pooled_a))
    losses["D_A"] = discriminator_loss(d_a_real, d_a_fake, gan_mode)["D"]  # 0.5 * (real + fake)
    losses["D_B"] = discriminator_loss(d_b_real, d_b_fake, gan_mode)["D"]
    precision.backward_and_step(losses["D_A"] + losses["D_B"], opt_d)
    precision.end_iteration()
    return {name: losses[name].item() for name in CYCLE_LOSS_NAMES}


def identity_terms(
    g_a: nn.Module,
    g_b: nn.Module,
    real_a: torch.Tensor,
    real_b: torch.Tensor,
    *,
    lambda_a: float,
    lambda_b: float,
    weight: float,
) -> dict[str, torch.Tensor]:
    """idt_A (G_A should leave a B image as it is) and idt_B (G_B an A image); with `weight` 0 both are
    zero and the two extra generator passes are skipped, as in the official code."""
    if not weight:
        zero = real_a.new_zeros(())
        return {"idt_A": zero, "idt_B": zero}
    return {
        "idt_A": identity_loss(g_a(real_b).float(), real_b, cycle_weight=lambda_b, identity_weight=weight),
        "idt_B": identity_loss(g_b(real_a).float(), real_a, cycle_weight=lambda_a, identity_weight=weight),
    }
