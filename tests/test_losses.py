import math

import pytest
import torch

from pix2pix.losses import adversarial_loss, discriminator_loss, generator_loss


def bce(logit: float, label: float) -> float:
    p = 1 / (1 + math.exp(-logit))
    return -(label * math.log(p) + (1 - label) * math.log(1 - p))


def test_vanilla_loss_is_bce_on_logits():
    logits = torch.tensor([[0.5, -1.0], [2.0, 0.0]])
    expected_real = sum(bce(v, 1.0) for v in logits.flatten().tolist()) / 4
    expected_fake = sum(bce(v, 0.0) for v in logits.flatten().tolist()) / 4
    assert adversarial_loss(logits, True, "vanilla").item() == pytest.approx(expected_real, rel=1e-6)
    assert adversarial_loss(logits, False, "vanilla").item() == pytest.approx(expected_fake, rel=1e-6)


def test_lsgan_loss_is_mean_squared_error():
    logits = torch.tensor([0.5, -1.0, 2.0])
    assert adversarial_loss(logits, True, "lsgan").item() == pytest.approx((0.25 + 4 + 1) / 3)
    assert adversarial_loss(logits, False, "lsgan").item() == pytest.approx((0.25 + 1 + 4) / 3)


def test_unknown_gan_mode_is_rejected():
    with pytest.raises(ValueError, match="wgan"):
        adversarial_loss(torch.zeros(1), True, "wgan")


def test_discriminator_loss_is_halved_sum():
    real, fake = torch.tensor([1.0, 3.0]), torch.tensor([-2.0, 0.5])
    losses = discriminator_loss(real, fake, "vanilla")
    expected_real = (bce(1.0, 1) + bce(3.0, 1)) / 2
    expected_fake = (bce(-2.0, 0) + bce(0.5, 0)) / 2
    assert losses["D_real"].item() == pytest.approx(expected_real, rel=1e-6)
    assert losses["D_fake"].item() == pytest.approx(expected_fake, rel=1e-6)
    assert losses["D"].item() == pytest.approx(0.5 * (expected_real + expected_fake), rel=1e-6)


def test_generator_loss_weights_l1_by_lambda():
    fake = torch.tensor([[0.0, 1.0], [0.5, -0.5]])
    target = torch.tensor([[1.0, 1.0], [0.0, 0.5]])  # |diff| = 1, 0, 0.5, 1 -> mean 0.625
    logits = torch.tensor([0.0])
    losses = generator_loss(logits, fake, target, "vanilla", l1_weight=100.0)
    assert losses["G_L1"].item() == pytest.approx(0.625)
    assert losses["G_GAN"].item() == pytest.approx(math.log(2), rel=1e-6)
    assert losses["G"].item() == pytest.approx(math.log(2) + 62.5, rel=1e-6)
    gan_only = generator_loss(logits, fake, target, "vanilla", l1_weight=0.0)
    assert gan_only["G"].item() == pytest.approx(math.log(2), rel=1e-6)


def test_l1_only_baseline_has_no_gan_term():
    fake, target = torch.zeros(3), torch.ones(3)
    losses = generator_loss(None, fake, target, "vanilla", l1_weight=100.0)
    assert losses["G_GAN"].item() == 0.0
    assert losses["G"].item() == pytest.approx(100.0)
