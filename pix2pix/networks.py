"""The networks a run config describes: the one place where `config` meets the `nn` registry
(`pix2pix.nn` itself knows nothing of configs).

Used by training (fresh networks), checkpoint loading (the architecture the weights belong to) and
`pix2pix summary`.
"""

from __future__ import annotations

from torch import nn

from pix2pix.config import RunConfig, other_direction
from pix2pix.nn.registry import build_discriminator, build_generator


def build_generator_for(config: RunConfig) -> nn.Module:
    model = config.model
    return build_generator(
        model.generator,
        in_channels=model.in_channels,
        out_channels=model.out_channels,
        image_size=config.data.crop_size,
        base_channels=model.base_channels,
        norm=model.norm,
        dropout=model.dropout,
        upsample=model.upsample,
    )


def build_discriminator_for(config: RunConfig) -> nn.Module:
    model = config.model
    return build_discriminator(
        model.discriminator,
        in_channels=discriminator_channels(config),
        base_channels=model.disc_channels,
        n_layers=model.disc_layers,
        norm=model.disc_norm,
        scales=model.disc_scales,
        spectral_norm=model.disc_spectral_norm,
    )


def discriminator_channels(config: RunConfig) -> int:
    """A conditional D sees the input and the output stacked; an unconditional one the output only."""
    model = config.model
    return model.out_channels + (model.in_channels if model.disc_conditional else 0)


def reverse_domains(config: RunConfig) -> RunConfig:
    """The config that describes a CycleGAN run's B -> A networks (G_B, and D_B, which judges A images):
    the channels and the direction swapped, so `build_generator_for` and the inference side read it as
    they read the A -> B one."""
    model = config.model
    swapped = config.replace("model", in_channels=model.out_channels, out_channels=model.in_channels)
    return swapped.replace("data", direction=other_direction(config.data.direction))
