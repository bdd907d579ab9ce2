"""Name -> network builders; the names are the CLI choices (and the official `--netG` names)."""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

from pix2pix.nn.blocks import init_weights
from pix2pix.nn.discriminators import (
    MultiScaleDiscriminator,
    PatchDiscriminator,
    PixelDiscriminator,
    with_spectral_norm,
)
from pix2pix.nn.generators import ResNetGenerator, UNetGenerator


def unet_depth(image_size: int) -> int:
    """Number of U-Net levels for `image_size`: as many halvings as it divides into (256 -> 8, 384 -> 7)."""
    if image_size <= 0:
        raise ValueError(f"image size {image_size} must be positive")
    depth = 0
    while image_size % 2 ** (depth + 1) == 0:
        depth += 1
    if depth < 5:
        raise ValueError(f"image size {image_size} is divisible by 2**{depth} only; the U-Net needs a multiple of 32")
    return depth


# Each builder takes `image_size` (only "unet" and "encoder_decoder" use it) and the generator's keyword arguments.
GENERATORS: dict[str, Callable[..., nn.Module]] = {
    "unet": lambda image_size, **kwargs: UNetGenerator(num_downs=unet_depth(image_size), **kwargs),
    "unet_256": lambda image_size, **kwargs: UNetGenerator(num_downs=8, **kwargs),
    "unet_128": lambda image_size, **kwargs: UNetGenerator(num_downs=7, **kwargs),
    "encoder_decoder": lambda image_size, **kwargs: UNetGenerator(
        num_downs=unet_depth(image_size), skips=False, **kwargs
    ),
    "resnet_6blocks": lambda image_size, **kwargs: ResNetGenerator(n_blocks=6, **kwargs),
    "resnet_9blocks": lambda image_size, **kwargs: ResNetGenerator(n_blocks=9, **kwargs),
}

# Each builder takes `n_layers` (only "patch" uses it) and the discriminator's keyword arguments.
DISCRIMINATORS: dict[str, Callable[..., nn.Module]] = {
    "patch": lambda n_layers, **kwargs: PatchDiscriminator(n_layers=n_layers, **kwargs),
    "pixel": lambda n_layers, **kwargs: PixelDiscriminator(**kwargs),
}


def build_generator(
    name: str,
    *,
    in_channels: int,
    out_channels: int,
    image_size: int,
    base_channels: int,
    norm: str,
    dropout: bool,
    upsample: str,
) -> nn.Module:
    if name not in GENERATORS:
        raise ValueError(f"unknown generator {name!r}; expected one of {sorted(GENERATORS)}")
    generator = GENERATORS[name](
        image_size,
        in_channels=in_channels,
        out_channels=out_channels,
        base_channels=base_channels,
        norm=norm,
        dropout=dropout,
        upsample=upsample,
    )
    return init_weights(generator)


def build_discriminator(
    name: str,
    *,
    in_channels: int,
    base_channels: int,
    n_layers: int,
    norm: str,
    scales: int = 1,
    spectral_norm: bool = False,
) -> nn.Module:
    """`scales` > 1: that many such discriminators at halving image scales; `spectral_norm` on every conv.
    Both are beyond the paper; with the defaults this is its discriminator."""
    if name not in DISCRIMINATORS:
        raise ValueError(f"unknown discriminator {name!r}; expected one of {sorted(DISCRIMINATORS)}")
    build = DISCRIMINATORS[name]
    single = [
        init_weights(build(n_layers, in_channels=in_channels, base_channels=base_channels, norm=norm))
        for _ in range(scales)
    ]
    discriminator = single[0] if scales == 1 else MultiScaleDiscriminator(single)
    return with_spectral_norm(discriminator) if spectral_norm else discriminator
