"""Layers shared by the generators and discriminators, and the weight initialisation.

Conventions follow the official pix2pix code (junyanz/pytorch-CycleGAN-and-pix2pix, models/networks.py)
so that its maths is reproduced and its checkpoints load.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

NORMS = ("batch", "instance", "none")
UPSAMPLES = ("transpose", "resize-conv")


def build_norm(norm: str, channels: int) -> nn.Module:
    if norm == "batch":
        return nn.BatchNorm2d(channels)
    if norm == "instance":
        # official convention: no affine parameters and no running statistics, so the layer normalises
        # each image with its own statistics in training and evaluation alike
        return nn.InstanceNorm2d(channels, affine=False, track_running_stats=False)
    if norm == "none":
        return nn.Identity()
    raise ValueError(f"unknown norm {norm!r}; expected one of {NORMS}")


def conv_bias(norm: str) -> bool:
    """Whether a conv followed by a `norm` layer carries a bias."""
    if norm not in NORMS:
        raise ValueError(f"unknown norm {norm!r}; expected one of {NORMS}")
    # Official rule: batch norm has its own shift, so no bias before it. Instance norm (without affine)
    # subtracts the mean too, but the official code keeps the bias there; we follow so that parameter
    # counts and checkpoints match. Without a norm the official code also drops the bias, which leaves
    # the conv with no shift at all; we keep it (so official norm="none" checkpoints do not load).
    return norm != "batch"


def build_upsample_conv(
    in_channels: int, out_channels: int, *, upsample: str, bias: bool, kernel_size: int = 4
) -> nn.Module:
    """A layer that doubles H and W.

    "transpose": the paper's ConvTranspose2d with `kernel_size` 4 (U-Net) or 3 (ResNet).
    "resize-conv": nearest-neighbour upsampling then a 3x3 conv (Odena et al., 2016), which avoids the
    checkerboard artefacts of overlapping transposed-conv kernels; `kernel_size` does not apply.
    """
    if upsample == "transpose":
        if kernel_size not in (3, 4):
            raise ValueError(f"transposed-conv kernel_size {kernel_size} cannot double the size; expected 3 or 4")
        return UpConvTranspose2d(in_channels, out_channels, kernel_size, bias=bias)
    if upsample == "resize-conv":
        return nn.Sequential(
            nn.Upsample(scale_factor=2, mode="nearest"),
            nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=bias),
        )
    raise ValueError(f"unknown upsample {upsample!r}; expected one of {UPSAMPLES}")


class UpConvTranspose2d(nn.ConvTranspose2d):
    """The stride-2 transposed convolution that doubles H and W, as `nn.ConvTranspose2d` computes it.

    A subclass with the same parameters, so checkpoints, official weights, `init_weights` and batch-norm
    folding treat it as the layer it is. Only how it runs differs: in training on a CPU, inputs of at most
    `MATMUL_MAX_PIXELS` pixels (the U-Net's deepest levels) run as one matrix product and a col2im
    (`F.fold`) instead of oneDNN's transposed kernels, which are slow there; a training iteration gets 4-9%
    faster (docs/performance.md). Inference sees no gain, and exports (traced) keep the standard
    operator.
    """

    MATMUL_MAX_PIXELS = 64

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, *, bias: bool) -> None:
        # output = 2H + kernel_size - 4 + output_padding with stride 2 and padding 1, so k4 needs no
        # output padding and k3 needs 1
        super().__init__(
            in_channels, out_channels, kernel_size, stride=2, padding=1, output_padding=4 - kernel_size, bias=bias
        )

    def forward(self, x: Tensor, output_size: list[int] | None = None) -> Tensor:
        batch, _, height, width = x.shape
        as_matmul = (
            x.device.type == "cpu"
            and torch.is_grad_enabled()
            and not torch.jit.is_tracing()
            and height * width <= self.MATMUL_MAX_PIXELS
            and output_size is None
        )
        if not as_matmul:
            return super().forward(x, output_size)
        # column (o, ky, kx) of input pixel (i, j) is what that pixel adds to output pixel
        # (2i - 1 + ky, 2j - 1 + kx) of channel o; fold sums the overlapping windows
        columns = torch.matmul(self.weight.flatten(1).t(), x.reshape(batch, self.in_channels, height * width))
        y = F.fold(
            columns, (2 * height, 2 * width), self.kernel_size, padding=_as_pair(self.padding), stride=self.stride
        )
        return y if self.bias is None else y + self.bias.view(1, -1, 1, 1)


def with_plain_transposes(module: nn.Module) -> nn.Module:
    """`module` with every `UpConvTranspose2d` replaced in place by a plain `nn.ConvTranspose2d` holding
    the same weights: the reference the benchmark and the equivalence tests compare with."""
    for name, child in module.named_children():
        if isinstance(child, UpConvTranspose2d):
            plain = nn.ConvTranspose2d(
                child.in_channels,
                child.out_channels,
                _as_pair(child.kernel_size),
                stride=_as_pair(child.stride),
                padding=_as_pair(child.padding),
                output_padding=_as_pair(child.output_padding),
                bias=child.bias is not None,
            )
            plain.load_state_dict(child.state_dict())
            module.add_module(name, plain.to(child.weight.device))
        else:
            with_plain_transposes(child)
    return module


def _as_pair(setting: str | tuple[int, ...]) -> tuple[int, int]:
    """A 2-d convolution's (height, width) setting. nn.Conv* type theirs as tuples of any length, and
    padding also as "same"/"valid", which the layers here never use."""
    assert not isinstance(setting, str), f"padding {setting!r}"
    height, width = setting
    return height, width


class ResnetBlock(nn.Module):
    """x + F(x), F = two 3x3 convs with reflect padding (official ResnetBlock, same submodule names)."""

    def __init__(self, channels: int, norm: str, dropout: bool) -> None:
        super().__init__()
        bias = conv_bias(norm)
        layers: list[nn.Module] = [
            nn.ReflectionPad2d(1),
            nn.Conv2d(channels, channels, 3, bias=bias),
            build_norm(norm, channels),
            nn.ReLU(),
        ]
        if dropout:
            layers.append(nn.Dropout(0.5))
        layers += [nn.ReflectionPad2d(1), nn.Conv2d(channels, channels, 3, bias=bias), build_norm(norm, channels)]
        self.conv_block = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return x + self.conv_block(x)


def init_weights(module: nn.Module, gain: float = 0.02) -> nn.Module:
    """Official "normal" init: conv weights N(0, gain), batch-norm scales N(1, gain), biases 0."""
    for layer in module.modules():
        if isinstance(layer, nn.Conv2d | nn.ConvTranspose2d):
            nn.init.normal_(layer.weight, 0.0, gain)
            if layer.bias is not None:
                nn.init.zeros_(layer.bias)
        elif isinstance(layer, nn.BatchNorm2d):
            nn.init.normal_(layer.weight, 1.0, gain)
            nn.init.zeros_(layer.bias)
    return module
