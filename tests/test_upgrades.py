"""The opt-in training upgrades beyond the paper: DiffAugment, multi-scale discriminators, feature matching,
the hinge loss, spectral normalisation, the R1 penalty, D's own learning rate and the EMA of G's weights.
Each is off by default (the paper's step is tested op for op against the official order elsewhere)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from pix2pix.checkpoint import load_checkpoint
from pix2pix.cli import main
from pix2pix.config import AUGMENTATIONS, RunConfig
from pix2pix.inference import Pix2Pix
from pix2pix.losses import Objective, discriminator_loss, feature_matching_loss, generator_loss, r1_penalty
from pix2pix.networks import build_discriminator_for, build_generator_for
from pix2pix.nn.discriminators import MultiScaleDiscriminator, discriminator_features, receptive_fields
from pix2pix.training.augment import TRANSFORMS, diff_augment
from pix2pix.training.loop import fit
from pix2pix.training.state import update_ema
from pix2pix.training.step import train_step
from tests.helpers import tiny_config


def test_the_defaults_are_the_papers():
    config = RunConfig()
    assert (config.model.disc_scales, config.model.disc_spectral_norm) == (1, False)
    assert (config.loss.gan_mode, config.loss.feature_matching_weight, config.loss.r1_weight) == ("vanilla", 0, 0)
    assert (config.loss.diff_augment, config.optim.ema_decay, config.optim.lr_d) == ("", 0, config.optim.lr)
    assert set(AUGMENTATIONS) == set(TRANSFORMS)


@pytest.mark.parametrize(
    ("sections", "message"),
    [
        ({"loss": {"diff_augment": "color,blur"}}, 'loss.diff_augment = "color,blur": must be'),
        ({"model": {"disc_scales": 5}}, "model.disc_scales = 5: must be an integer from 1 to 4"),
        ({"optim": {"ema_decay": 1.0}}, "optim.ema_decay = 1.0: must be a finite number in"),
        ({"loss": {"gan": False, "r1_weight": 1.0}}, "need a discriminator"),
        ({"data": {"crop_size": 32, "load_size": 32}, "model": {"disc_scales": 2}}, "disc_scales 2"),
    ],
)
def test_bad_upgrade_settings_are_refused_in_one_line(sections, message):
    with pytest.raises(ValueError, match=message):
        RunConfig.from_dict(sections)


# DiffAugment


def pair_of_identical_images(batch=4, size=16) -> torch.Tensor:
    image = torch.rand(batch, 3, size, size) * 2 - 1
    return torch.cat([image, image], 1)


@pytest.mark.parametrize("policy", ["color", "translation", "cutout", "color,translation,cutout"])
def test_diff_augment_gives_the_input_and_output_of_a_pair_the_same_transform(policy):
    torch.manual_seed(0)
    pair = pair_of_identical_images()
    augmented = diff_augment(pair, policy, split=3)
    assert augmented.shape == pair.shape and not torch.equal(augmented, pair)
    assert torch.allclose(augmented[:, :3], augmented[:, 3:])  # the same draws for both halves
    assert not torch.allclose(augmented[0, :3], augmented[1, :3] - pair[1, :3] + pair[0, :3])  # per sample


def test_translation_shifts_with_zero_fill_and_cutout_zeroes_a_quarter():
    torch.manual_seed(0)
    ones = torch.ones(64, 1, 16, 16)
    shifted = TRANSFORMS["translation"](ones, 0)
    zero_rows = (shifted.sum(3) == 0).sum(2).flatten()  # rows emptied by a vertical shift of up to 2 px
    assert zero_rows.max() == 2 and zero_rows.min() == 0 and set(shifted.unique().tolist()) <= {0.0, 1.0}
    cut = TRANSFORMS["cutout"](ones, 0)
    zeroed = (cut == 0).flatten(1).sum(1)
    assert zeroed.max() == 64 and zeroed.min() > 0  # an 8x8 square, clipped at the borders


def test_diff_augment_is_differentiable():
    x = torch.rand(2, 6, 16, 16, requires_grad=True)
    diff_augment(x, "color,translation,cutout", split=3).sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


# Losses


def test_hinge_losses():
    real, fake = torch.tensor([2.0, 0.5]), torch.tensor([-2.0, 0.0])
    d = discriminator_loss(real, fake, "hinge")
    assert d["D_real"].item() == pytest.approx(0.25) and d["D_fake"].item() == pytest.approx(0.5)
    g = generator_loss(fake, torch.zeros(1), torch.zeros(1), "hinge", 100.0)
    assert g["G_GAN"].item() == pytest.approx(1.0)


def test_losses_average_over_the_scales_of_a_multi_scale_d():
    logits = [torch.zeros(1, 1, 4, 4), torch.full((1, 1, 2, 2), 3.0)]
    for mode in ("vanilla", "lsgan", "hinge"):
        expected = (
            generator_loss(logits[0], *[torch.zeros(1)] * 2, mode, 0)["G_GAN"]
            + generator_loss(logits[1], *[torch.zeros(1)] * 2, mode, 0)["G_GAN"]
        ) / 2
        assert generator_loss(logits, *[torch.zeros(1)] * 2, mode, 0)["G_GAN"].item() == pytest.approx(expected.item())


def test_r1_penalty_of_a_linear_discriminator_is_its_weights_squared_norm_per_pixel():
    d = nn.Conv2d(3, 1, 1, bias=False)
    x = torch.rand(2, 3, 5, 5, requires_grad=True)
    # D's output is each sample's mean logit: the gradient at every pixel is the weight vector / 25
    expected = 25 * (d.weight / 25).pow(2).sum()
    assert r1_penalty(d(x), x).item() == pytest.approx(expected.item(), rel=1e-5)


def test_feature_matching_weighs_the_layers_as_pix2pixhd_and_leaves_out_the_logits():
    features = [[torch.ones(1, 2, 4, 4), torch.ones(1, 4, 2, 2), torch.zeros(1, 1, 2, 2)]]  # 2 layers + logits
    assert feature_matching_loss(features, features).item() == 0
    shifted = [[features[0][0] + 1, features[0][1] + 3, features[0][2] + 100]]
    assert feature_matching_loss(shifted, features).item() == pytest.approx(4 * (1 + 3) / 2)  # 4/2 * the sum
    two_scales = feature_matching_loss([shifted[0], features[0]], [features[0], features[0]])
    assert two_scales.item() == pytest.approx(4.0)  # the mean over scales


# Discriminators


def config_with(**model_changes) -> RunConfig:
    return RunConfig().replace("data", crop_size=64, load_size=64).replace("model", disc_channels=4, **model_changes)


def test_multi_scale_discriminator_judges_halving_scales_with_the_same_architecture():
    torch.manual_seed(0)
    discriminator = build_discriminator_for(config_with(disc_scales=3, disc_layers=2))
    assert isinstance(discriminator, MultiScaleDiscriminator) and len(discriminator.scales) == 3
    single = build_discriminator_for(config_with(disc_layers=2))
    assert sum(p.numel() for p in discriminator.parameters()) == 3 * sum(p.numel() for p in single.parameters())
    logits = discriminator(torch.rand(2, 6, 64, 64))
    assert [tuple(x.shape[2:]) for x in logits] == [(14, 14), (6, 6), (2, 2)]  # 64, 32 and 16 px seen
    features = discriminator_features(discriminator, torch.rand(2, 6, 64, 64))
    assert len(features) == 3 and all(len(scale) == 4 for scale in features)  # 3 LeakyReLU outputs + logits
    fields = receptive_fields(discriminator)
    # 34 px at full scale; one 3x3 stride-2 pooling first: 3 px, then every conv step counts twice
    assert fields["scales.0.model.8"] == 34 and fields["scales.1.model.8"] == 3 + 2 * (34 - 1)


def test_spectral_norm_bounds_each_convs_largest_singular_value():
    torch.manual_seed(0)
    discriminator = build_discriminator_for(config_with(disc_spectral_norm=True, disc_norm="none"))
    for _ in range(30):  # each training-mode forward runs one power iteration
        discriminator(torch.rand(1, 6, 64, 64))
    convs = [m for m in discriminator.modules() if isinstance(m, nn.Conv2d)]
    assert convs and all(torch.nn.utils.parametrize.is_parametrized(conv) for conv in convs)
    sigmas = [torch.linalg.matrix_norm(conv.weight.flatten(1).detach(), ord=2).item() for conv in convs]
    assert all(sigma == pytest.approx(1.0, abs=0.05) for sigma in sigmas), sigmas


# The step and the run


def test_a_step_with_every_d_upgrade_reports_and_uses_each_term(tmp_path):
    config = tiny_config(tmp_path, tmp_path / "run").replace("model", disc_scales=2, disc_layers=2)
    torch.manual_seed(0)
    generator, discriminator = build_generator_for(config), build_discriminator_for(config)
    opt_g, opt_d = (torch.optim.Adam(n.parameters(), lr=2e-4) for n in (generator, discriminator))
    source, target = torch.rand(2, 3, 32, 32) * 2 - 1, torch.rand(2, 3, 32, 32) * 2 - 1
    objective = Objective(gan_mode="hinge", feature_matching_weight=10.0, r1_weight=1.0, diff_augment="translation")
    losses = train_step(generator, discriminator, opt_g, opt_d, source, target, objective=objective)
    assert {"G_FM", "D_R1"} <= set(losses)
    assert losses["G"] == pytest.approx(losses["G_GAN"] + 100 * losses["G_L1"] + 10 * losses["G_FM"], rel=1e-5)
    assert losses["D"] == pytest.approx(0.5 * (losses["D_real"] + losses["D_fake"]) + 0.5 * losses["D_R1"], rel=1e-5)


def test_ema_is_the_moving_average_of_the_weights_and_copies_the_buffers():
    model, average = nn.BatchNorm1d(3), nn.BatchNorm1d(3)
    with torch.no_grad():
        model.weight.fill_(2.0)
        model.running_mean.fill_(5.0)
    update_ema(average, model, decay=0.9)
    assert torch.allclose(average.weight, torch.full((3,), 0.9 * 1.0 + 0.1 * 2.0))
    assert torch.equal(average.running_mean, model.running_mean)


UPGRADES = {
    "ema": ("optim", {"ema_decay": 0.9}),
    "diffaugment": ("loss", {"diff_augment": "color,translation,cutout"}),
    "multi-scale + feature matching + diffaugment": ("model", {"disc_scales": 2, "disc_layers": 2}),  # 32 px
    "hinge + spectral norm": ("model", {"disc_spectral_norm": True, "disc_norm": "none"}),
    "r1": ("loss", {"r1_weight": 1.0}),
    "disc lr": ("optim", {"disc_lr": 1e-4}),
}


@pytest.mark.parametrize("upgrade", list(UPGRADES))
def test_each_upgrade_trains_resumes_exactly_and_loads_without_flags(upgrade, tiny_dataset, tmp_path):
    section, changes = UPGRADES[upgrade]
    # with validation every epoch: it runs D on the translations too
    config = tiny_config(tiny_dataset, tmp_path / "run", val_every=1).replace(section, **changes)
    if upgrade.startswith("multi-scale"):
        config = config.replace("loss", feature_matching_weight=10.0, diff_augment="translation")
    if upgrade.startswith("hinge"):
        config = config.replace("loss", gan_mode="hinge")
    straight = fit(config, progress=False)
    halted = fit(
        config.replace("optim", n_epochs_decay=0).replace("train", out=str(tmp_path / "halted")), progress=False
    )
    resumed = fit(config.replace("train", out=str(halted)), resume="auto", progress=False)
    a, _ = load_checkpoint(straight / "checkpoints" / "latest.pt")
    b, _ = load_checkpoint(resumed / "checkpoints" / "latest.pt")
    for network in ("generator", "generator_ema", "discriminator"):
        assert (a[network] is None) == (b[network] is None)
        for name, tensor in (a[network] or {}).items():
            assert torch.equal(tensor, b[network][name]), f"{network} {name}"
    model = Pix2Pix.load(straight, device="cpu")
    expected = a["generator_ema"] or a["generator"]  # test/eval/export/serve use the average when there is one
    assert all(torch.equal(t, expected[k]) for k, t in model.generator.state_dict().items())
    if upgrade == "disc lr":
        assert b["opt_d"]["param_groups"][0]["initial_lr"] == 1e-4
    assert main(["summary", "--checkpoint", str(straight), "--no-layers"]) == 0
