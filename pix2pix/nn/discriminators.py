"""The paper's discriminators: the PatchGAN (70x70 by default) and the 1x1 PixelGAN; and, opt-in beyond the
paper, several of them at decreasing image scales (pix2pixHD) and spectral normalisation.

All output logits; the adversarial loss applies the sigmoid (or none, for LSGAN).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import cast

from torch import Tensor, nn
from torch.nn.utils.parametrizations import spectral_norm

from pix2pix.nn.blocks import build_norm, conv_bias


class PatchDiscriminator(nn.Module):
    """Classifies every overlapping patch of the (source, target) pair (official NLayerDiscriminator).

    `n_layers` stride-2 convs set the patch size: 3 gives 70x70 patches and a 30x30 map for a 256x256
    input. `model` keeps the official layer order, so official checkpoint keys map one to one.
    """

    def __init__(self, in_channels: int, base_channels: int = 64, n_layers: int = 3, norm: str = "batch") -> None:
        super().__init__()
        if n_layers < 1:
            raise ValueError(f"n_layers={n_layers} must be at least 1")
        bias = conv_bias(norm)
        width = base_channels
        layers: list[nn.Module] = [nn.Conv2d(in_channels, width, 4, stride=2, padding=1), nn.LeakyReLU(0.2)]
        for n in range(1, n_layers + 1):
            next_width = base_channels * min(2**n, 8)
            # the last of these keeps stride 1: it widens the patch without shrinking the map further
            stride = 2 if n < n_layers else 1
            layers += [
                nn.Conv2d(width, next_width, 4, stride=stride, padding=1, bias=bias),
                build_norm(norm, next_width),
                nn.LeakyReLU(0.2),
            ]
            width = next_width
        layers.append(nn.Conv2d(width, 1, 4, stride=1, padding=1))  # one logit per patch
        self.model = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return self.model(x)

    def features(self, x: Tensor) -> list[list[Tensor]]:
        return [activations(self.model, x)]


class PixelDiscriminator(nn.Module):
    """1x1 PatchGAN: judges each pixel on its own, i.e. only colour statistics (official PixelDiscriminator)."""

    def __init__(self, in_channels: int, base_channels: int = 64, norm: str = "batch") -> None:
        super().__init__()
        bias = conv_bias(norm)
        self.net = nn.Sequential(
            nn.Conv2d(in_channels, base_channels, 1),
            nn.LeakyReLU(0.2),
            nn.Conv2d(base_channels, 2 * base_channels, 1, bias=bias),
            build_norm(norm, 2 * base_channels),
            nn.LeakyReLU(0.2),
            # the official code ties this logit conv's bias to the norm too (none with batch norm)
            nn.Conv2d(2 * base_channels, 1, 1, bias=bias),
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)

    def features(self, x: Tensor) -> list[list[Tensor]]:
        return [activations(self.net, x)]


class MultiScaleDiscriminator(nn.Module):
    """The same discriminator at several image scales, each half the one before (pix2pixHD): the finest
    judges detail, the coarsest sees most of the image. Outputs one logit map per scale."""

    def __init__(self, discriminators: list[nn.Module]) -> None:
        super().__init__()
        self.scales = nn.ModuleList(discriminators)
        self.downsample = nn.AvgPool2d(3, stride=2, padding=1, count_include_pad=False)

    def forward(self, x: Tensor) -> list[Tensor]:
        return [discriminator(image) for discriminator, image in zip(self.scales, self.pyramid(x))]

    def features(self, x: Tensor) -> list[list[Tensor]]:
        return [discriminator_features(d, image)[0] for d, image in zip(self.scales, self.pyramid(x))]

    def pyramid(self, x: Tensor) -> list[Tensor]:
        images = [x]
        for _ in self.scales[1:]:
            images.append(self.downsample(images[-1]))
        return images


def discriminator_features(discriminator: nn.Module, x: Tensor) -> list[list[Tensor]]:
    """Each scale's activations, then its logits: the `features` every discriminator here has (typed here,
    as nn.Module's attribute lookup, to a type checker, gives Tensor | Module)."""
    features = cast(Callable[[Tensor], list[list[Tensor]]], discriminator.features)
    return features(x)


def activations(layers: nn.Sequential, x: Tensor) -> list[Tensor]:
    """The output of each LeakyReLU, then the logits: the features that feature matching compares."""
    outputs = []
    for layer in layers:
        x = layer(x)
        if isinstance(layer, nn.LeakyReLU):
            outputs.append(x)
    return [*outputs, x]


def with_spectral_norm(discriminator: nn.Module) -> nn.Module:
    """Every convolution's weight divided by its largest singular value (Miyato et al. 2018), which bounds
    how fast D's output can change with its input."""
    for module in list(discriminator.modules()):
        if isinstance(module, nn.Conv2d):
            spectral_norm(module)
    return discriminator


def receptive_fields(discriminator: nn.Module) -> dict[str, int]:
    """Side of the input patch that one value of each Conv2d's output sees, by module name in layer order.
    A multi-scale D's coarser scales see through the 3x3 stride-2 poolings before them."""
    if not isinstance(discriminator, MultiScaleDiscriminator):
        return conv_fields(discriminator, size=1, step=1)
    fields = {}
    for scale, single in enumerate(discriminator.scales):
        size, step = 1, 1
        for _ in range(scale):
            size, step = size + 2 * step, step * 2
        fields.update({f"scales.{scale}.{name}": field for name, field in conv_fields(single, size, step).items()})
    return fields


def conv_fields(discriminator: nn.Module, size: int, step: int) -> dict[str, int]:
    """Each k x k conv widens the field by (k - 1) steps of the input pixels between its neighbouring inputs."""
    fields = {}
    for name, conv in discriminator.named_modules():
        if isinstance(conv, nn.Conv2d):
            size += (conv.kernel_size[0] - 1) * step
            step *= conv.stride[0]
            fields[name] = size
    return fields


def receptive_field(discriminator: nn.Module) -> int:
    """Side of the input patch that one output logit judges: 1, 16, 70 and 286 for the pixel and the 1-, 3-
    and 5-layer PatchGANs (the paper's section 4.4); a multi-scale D's coarsest scale."""
    return max(receptive_fields(discriminator).values())
