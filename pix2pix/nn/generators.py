"""The paper's generators: the U-Net (pix2pix default), its encoder-decoder ablation (the same network with
the skips severed) and the ResNet of Johnson et al. (CycleGAN)."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from pix2pix.nn.blocks import ResnetBlock, build_norm, build_upsample_conv, conv_bias


def generator_stride(generator: nn.Module) -> int:
    """What `generator`'s input sides must be multiples of: the `stride` every generator here sets,
    read with the type that nn.Module's attribute lookup (Tensor | Module, to a type checker) loses."""
    stride = generator.stride
    assert isinstance(stride, int), f"{type(generator).__name__}.stride = {stride!r}"
    return stride


def check_divisible(x: Tensor, stride: int) -> None:
    height, width = x.shape[-2:]
    if height % stride or width % stride:
        raise ValueError(f"input size {height}x{width} (HxW) is not divisible by the generator's stride {stride}")


class UNetGenerator(nn.Module):
    """Encoder-decoder with skips between mirrored levels (paper appendix 6.1.1, official UnetGenerator).

    Written flat rather than as the official recursion of UnetSkipConnectionBlocks; the maths and the
    parameters are the same (`pix2pix.nn.official` maps the official names onto these).
    Each of the `num_downs` levels halves H and W, so inputs must be multiples of `stride` = 2**num_downs.
    `skips=False` is the paper's encoder-decoder (section 4.3): every decoder level sees only the level
    below it, so the decoder's input widths halve; all else is the same.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        num_downs: int,
        base_channels: int = 64,
        norm: str = "batch",
        dropout: bool = True,
        upsample: str = "transpose",
        skips: bool = True,
    ) -> None:
        super().__init__()
        if num_downs < 5:
            raise ValueError(f"num_downs={num_downs} is too small for the U-Net; expected at least 5")
        self.stride = 2**num_downs
        self.skip_connections = skips
        bias = conv_bias(norm)
        innermost = num_downs - 1
        # output channels of encoder level k: ngf, 2ngf, 4ngf, then 8ngf down to the bottleneck
        widths = [base_channels * min(2**k, 8) for k in range(num_downs)]

        self.encoder = nn.ModuleList()
        for k in range(num_downs):
            conv = nn.Conv2d(in_channels if k == 0 else widths[k - 1], widths[k], 4, stride=2, padding=1, bias=bias)
            if k == 0:  # the raw input: no activation before, no norm after
                self.encoder.append(nn.Sequential(conv))
            elif k == innermost:  # the bottleneck: no norm, so a 1x1 map is not normalised away
                self.encoder.append(nn.Sequential(nn.LeakyReLU(0.2), conv))
            else:
                self.encoder.append(nn.Sequential(nn.LeakyReLU(0.2), conv, build_norm(norm, widths[k])))

        # decoder[j] mirrors encoder level k = innermost - j; every level but the innermost also takes
        # its skip, doubling its input channels
        self.decoder = nn.ModuleList()
        for k in reversed(range(num_downs)):
            in_width = widths[k] if k == innermost or not skips else 2 * widths[k]
            if k == 0:
                up = build_upsample_conv(in_width, out_channels, upsample=upsample, bias=True)
                self.decoder.append(nn.Sequential(nn.ReLU(), up, nn.Tanh()))
                continue
            up = build_upsample_conv(in_width, widths[k - 1], upsample=upsample, bias=bias)
            layers = [nn.ReLU(), up, build_norm(norm, widths[k - 1])]
            # as official: dropout only on the num_downs - 5 non-innermost 8ngf levels (3 for unet_256),
            # the source of the paper's noise z
            if dropout and 4 <= k < innermost:
                layers.append(nn.Dropout(0.5))
            self.decoder.append(nn.Sequential(*layers))

    def forward(self, x: Tensor) -> Tensor:
        check_divisible(x, self.stride)
        skips = []
        for down in self.encoder[:-1]:
            x = down(x)
            # The official in-place LeakyReLU overwrites this tensor, so its skips are activated; the
            # decoder's ReLU makes that irrelevant: relu(leaky_relu(x)) = relu(x).
            skips.append(x)
        x = self.decoder[0](self.encoder[-1](x))  # bottleneck and back: (B, 8ngf, H/2**(n-1), W/2**(n-1))
        for up, skip in zip(self.decoder[1:], reversed(skips), strict=True):
            x = up(torch.cat([skip, x], 1) if self.skip_connections else x)  # skip first, as official
        return x


class ResNetGenerator(nn.Module):
    """Two stride-2 convs, `n_blocks` residual blocks at 4ngf, two upsamplings (official ResnetGenerator).

    `model` keeps the official flat layer order, so official checkpoint keys map one to one.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        n_blocks: int,
        base_channels: int = 64,
        norm: str = "batch",
        dropout: bool = True,
        upsample: str = "transpose",
    ) -> None:
        super().__init__()
        if n_blocks < 0:
            raise ValueError(f"n_blocks={n_blocks} must be non-negative")
        self.stride = 4
        bias = conv_bias(norm)
        ngf = base_channels
        layers: list[nn.Module] = [
            nn.ReflectionPad2d(3),
            nn.Conv2d(in_channels, ngf, 7, bias=bias),
            build_norm(norm, ngf),
            nn.ReLU(),
        ]
        for mult in (1, 2):
            layers += [
                nn.Conv2d(ngf * mult, ngf * mult * 2, 3, stride=2, padding=1, bias=bias),
                build_norm(norm, ngf * mult * 2),
                nn.ReLU(),
            ]
        layers += [ResnetBlock(4 * ngf, norm, dropout) for _ in range(n_blocks)]
        for mult in (4, 2):
            layers += [
                build_upsample_conv(ngf * mult, ngf * mult // 2, upsample=upsample, bias=bias, kernel_size=3),
                build_norm(norm, ngf * mult // 2),
                nn.ReLU(),
            ]
        layers += [nn.ReflectionPad2d(3), nn.Conv2d(ngf, out_channels, 7), nn.Tanh()]
        self.model = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        check_divisible(x, self.stride)
        return self.model(x)
