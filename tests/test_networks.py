"""Every registered network forwards and backwards; shapes, receptive fields and parameter counts match
the official implementation."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from torch import nn

from pix2pix.nn import (
    DISCRIMINATORS,
    GENERATORS,
    NORMS,
    PatchDiscriminator,
    PixelDiscriminator,
    ResNetGenerator,
    UNetGenerator,
    build_discriminator,
    build_generator,
    build_norm,
    build_upsample_conv,
    conv_bias,
    init_weights,
    receptive_field,
    unet_depth,
)

FIXTURES = Path(__file__).parents[2] / "shared" / "fixtures" / "official"
COUNTS_FILE = FIXTURES / "official_parameter_counts.json"
OFFICIAL_D_NAMES = {"basic": "patch", "n_layers": "patch", "pixel": "pixel"}


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def build_small_generator(name: str, **changes) -> nn.Module:
    kwargs = dict(
        in_channels=3, out_channels=2, image_size=64, base_channels=8, norm="batch", dropout=True, upsample="transpose"
    )
    return build_generator(name, **(kwargs | changes))


def check_forward_backward(network: nn.Module, x: torch.Tensor) -> torch.Tensor:
    out = network(x)
    out.mean().backward()
    assert torch.isfinite(out).all()
    assert all(p.grad is not None for p in network.parameters())
    return out


def input_for(generator: nn.Module, height_factor: int = 1, width_factor: int = 2) -> torch.Tensor:
    """A batch the generator accepts, non-square by default: sides are multiples of its stride."""
    side = max(generator.stride, 16)  # the ResNet's reflect padding needs more than its stride
    return torch.randn(2, 3, height_factor * side, width_factor * side)  # (B, C, H, W)


@pytest.mark.parametrize("name", sorted(GENERATORS))
def test_generator_forward_backward_non_square(name: str) -> None:
    generator = build_small_generator(name)
    x = input_for(generator)
    out = check_forward_backward(generator, x)
    assert out.shape == (2, 2, *x.shape[2:])
    assert out.abs().max() <= 1  # tanh


@pytest.mark.parametrize("upsample", ["transpose", "resize-conv"])
@pytest.mark.parametrize("norm", NORMS)
@pytest.mark.parametrize("name", ["unet", "resnet_6blocks"])
def test_generator_variants(name: str, norm: str, upsample: str) -> None:
    generator = build_small_generator(name, norm=norm, upsample=upsample)
    if upsample == "resize-conv":
        assert not any(isinstance(m, nn.ConvTranspose2d) for m in generator.modules())
    x = input_for(generator, height_factor=2, width_factor=1)
    assert check_forward_backward(generator, x).shape == (2, 2, *x.shape[2:])


@pytest.mark.parametrize(
    ("name", "dropout", "expected"),
    [("unet_256", True, 3), ("unet_128", True, 2), ("unet_256", False, 0), ("resnet_9blocks", True, 9)],
)
def test_dropout_placement(name: str, dropout: bool, expected: int) -> None:
    generator = build_small_generator(name, dropout=dropout)
    assert sum(isinstance(m, nn.Dropout) for m in generator.modules()) == expected


def test_generator_rejects_indivisible_input() -> None:
    generator = UNetGenerator(3, 3, num_downs=5, base_channels=4)
    with pytest.raises(ValueError, match="48x40.*divisible by the generator's stride 32"):
        generator(torch.randn(1, 3, 48, 40))
    with pytest.raises(ValueError, match="stride 4"):
        ResNetGenerator(3, 3, n_blocks=1, base_channels=4)(torch.randn(1, 3, 30, 32))


@pytest.mark.parametrize("norm", NORMS)
@pytest.mark.parametrize("name", sorted(DISCRIMINATORS))
def test_discriminator_forward_backward(name: str, norm: str) -> None:
    discriminator = build_discriminator(name, in_channels=5, base_channels=8, n_layers=3, norm=norm)
    out = check_forward_backward(discriminator, torch.randn(2, 5, 64, 48))
    expected = (64, 48) if name == "pixel" else (6, 4)  # 64 -> 32 -> 16 -> 8 -> 7 -> 6
    assert out.shape == (2, 1, *expected)


def test_patch_map_is_30x30_for_256_input() -> None:
    discriminator = PatchDiscriminator(6, base_channels=8)
    with torch.no_grad():
        assert discriminator(torch.randn(1, 6, 256, 256)).shape == (1, 1, 30, 30)


@pytest.mark.parametrize(("n_layers", "expected"), [(1, 16), (3, 70), (5, 286)])
def test_receptive_field(n_layers: int, expected: int) -> None:
    assert receptive_field(PatchDiscriminator(6, base_channels=4, n_layers=n_layers)) == expected
    assert receptive_field(PixelDiscriminator(6, base_channels=4)) == 1


def test_receptive_field_matches_gradient_support() -> None:
    discriminator = PatchDiscriminator(1, base_channels=4, norm="none")
    x = torch.randn(1, 1, 160, 160, requires_grad=True)
    discriminator(x)[0, 0, 9, 9].backward()
    rows = x.grad[0, 0].abs().sum(1).nonzero()
    assert rows.max() - rows.min() + 1 == 70


def test_default_parameter_counts() -> None:
    with torch.device("meta"):  # no memory, no init: only the shapes matter
        assert count_parameters(UNetGenerator(3, 3, num_downs=8)) == 54_413_955
        assert count_parameters(PatchDiscriminator(6)) == 2_768_705


@pytest.mark.skipif(not COUNTS_FILE.is_file(), reason=f"official parameter counts not found at {COUNTS_FILE}")
def test_parameter_counts_match_official() -> None:
    counts = json.loads(COUNTS_FILE.read_text())
    mismatches = {}
    for key, expected in counts.items():
        # "G unet_256 ngf=64 norm=batch", or "CycleGAN D basic n_layers=3 ndf=64 norm=instance (in 3: ...)"
        cyclegan = key.startswith("CycleGAN ")
        kind, official_name, *settings = key.removeprefix("CycleGAN ").split(" (")[0].split()
        options = dict(setting.split("=") for setting in settings)
        with torch.device("meta"):
            if kind == "G":
                network = build_generator(
                    official_name,
                    in_channels=3,
                    out_channels=3,
                    image_size=256,
                    base_channels=int(options["ngf"]),
                    norm=options["norm"],
                    dropout=True,
                    upsample="transpose",
                )
            else:
                network = build_discriminator(
                    OFFICIAL_D_NAMES[official_name],
                    in_channels=3 if cyclegan else 6,  # CycleGAN's D sees one image, pix2pix's a pair
                    base_channels=int(options["ndf"]),
                    n_layers=int(options["n_layers"]),
                    norm=options["norm"],
                )
        if count_parameters(network) != expected:
            mismatches[key] = (count_parameters(network), expected)
    assert len(counts) >= 14
    assert mismatches == {}


def test_init_weights_statistics() -> None:
    torch.manual_seed(0)
    discriminator = init_weights(PatchDiscriminator(6))
    convs = [m for m in discriminator.modules() if isinstance(m, nn.Conv2d)]
    weights = torch.cat([conv.weight.flatten() for conv in convs])
    assert weights.std().item() == pytest.approx(0.02, rel=0.01)
    assert abs(weights.mean().item()) < 1e-3
    assert all((conv.bias == 0).all() for conv in convs if conv.bias is not None)
    norms = [m for m in discriminator.modules() if isinstance(m, nn.BatchNorm2d)]
    scales = torch.cat([norm.weight for norm in norms])
    assert scales.mean().item() == pytest.approx(1.0, abs=0.005)
    assert scales.std().item() == pytest.approx(0.02, rel=0.2)
    assert all((norm.bias == 0).all() for norm in norms)


def test_norm_conventions() -> None:
    assert isinstance(build_norm("batch", 4), nn.BatchNorm2d)
    instance = build_norm("instance", 4)
    assert isinstance(instance, nn.InstanceNorm2d)
    assert not instance.affine and not instance.track_running_stats
    assert isinstance(build_norm("none", 4), nn.Identity)
    assert [conv_bias(norm) for norm in NORMS] == [False, True, True]


@pytest.mark.parametrize(("upsample", "kernel_size"), [("transpose", 4), ("transpose", 3), ("resize-conv", 4)])
def test_upsample_conv_doubles_size(upsample: str, kernel_size: int) -> None:
    layer = build_upsample_conv(4, 2, upsample=upsample, bias=True, kernel_size=kernel_size)
    assert layer(torch.randn(1, 4, 5, 7)).shape == (1, 2, 10, 14)


@pytest.mark.parametrize(("image_size", "depth"), [(256, 8), (128, 7), (384, 7), (32, 5), (1024, 10)])
def test_unet_depth(image_size: int, depth: int) -> None:
    assert unet_depth(image_size) == depth


def test_unet_from_image_size() -> None:
    generator = build_small_generator("unet", image_size=96)  # 96 = 3 * 2**5
    assert generator.stride == 32


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: unet_depth(100), "image size 100"),
        (lambda: unet_depth(0), "image size 0"),
        (lambda: build_norm("group", 4), "'group'.*'batch', 'instance', 'none'"),
        (lambda: conv_bias("layer"), "'layer'"),
        (lambda: build_upsample_conv(4, 4, upsample="bilinear", bias=True), "'bilinear'.*'resize-conv'"),
        (lambda: build_upsample_conv(4, 4, upsample="transpose", bias=True, kernel_size=5), "kernel_size 5"),
        (lambda: UNetGenerator(3, 3, num_downs=4), "num_downs=4"),
        (lambda: PatchDiscriminator(3, n_layers=0), "n_layers=0"),
        (lambda: build_small_generator("unet_512"), "'unet_512'.*'resnet_9blocks'"),
        (lambda: build_small_generator("unet", image_size=48), "image size 48"),
        (
            lambda: build_discriminator("basic", in_channels=6, base_channels=8, n_layers=3, norm="batch"),
            "'basic'.*'patch', 'pixel'",
        ),
    ],
)
def test_value_errors_name_the_bad_value(build, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        build()


def test_the_registries_build_exactly_the_configs_choices_at_the_strides_it_checks():
    """config.py spells the choices (it imports no torch); the registries must agree with it."""
    import typing

    from pix2pix.config import GENERATOR_STRIDES, SIZE_DERIVED_DEPTH, DiscriminatorName, GeneratorName
    from pix2pix.nn.registry import DISCRIMINATORS, GENERATORS, build_generator

    assert set(GENERATORS) == set(typing.get_args(GeneratorName)) == set(GENERATOR_STRIDES)
    assert set(DISCRIMINATORS) == set(typing.get_args(DiscriminatorName))
    for name, stride in GENERATOR_STRIDES.items():
        size = 32 if name in SIZE_DERIVED_DEPTH else 256  # these take their depth from the size: 32 is the smallest
        kwargs = dict(in_channels=3, out_channels=3, base_channels=4, norm="batch", dropout=False, upsample="transpose")
        generator = build_generator(name, image_size=size, **kwargs)
        assert generator.stride == stride, name
