"""Networks of the paper: U-Net / ResNet generators, PatchGAN / PixelGAN discriminators, and builders."""

from pix2pix.nn.blocks import (
    NORMS,
    UPSAMPLES,
    ResnetBlock,
    build_norm,
    build_upsample_conv,
    conv_bias,
    init_weights,
)
from pix2pix.nn.discriminators import PatchDiscriminator, PixelDiscriminator, receptive_field
from pix2pix.nn.generators import ResNetGenerator, UNetGenerator
from pix2pix.nn.official import (
    convert_official_state_dict,
    describe_official_discriminator,
    describe_official_generator,
    load_official_discriminator,
    load_official_generator,
)
from pix2pix.nn.registry import DISCRIMINATORS, GENERATORS, build_discriminator, build_generator, unet_depth

__all__ = [
    "DISCRIMINATORS",
    "GENERATORS",
    "NORMS",
    "UPSAMPLES",
    "PatchDiscriminator",
    "PixelDiscriminator",
    "ResNetGenerator",
    "ResnetBlock",
    "UNetGenerator",
    "build_discriminator",
    "build_generator",
    "build_norm",
    "build_upsample_conv",
    "conv_bias",
    "convert_official_state_dict",
    "describe_official_discriminator",
    "describe_official_generator",
    "init_weights",
    "load_official_discriminator",
    "load_official_generator",
    "receptive_field",
    "unet_depth",
]
