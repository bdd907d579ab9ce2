"""Batch norm folded into the convolution before it, for deterministic (running-statistics) inference.

In eval mode BatchNorm is a fixed per-channel affine map, y = scale * x + shift, so it can be merged
into the preceding convolution's weights and bias: one layer less per level, and the same outputs to
float rounding. The U-Net, ResNet and PatchGAN all place the norm right after a conv in an
`nn.Sequential`, which is what this looks for.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

FOLDABLE = (nn.Conv2d, nn.ConvTranspose2d)


def fold_batch_norm(module: nn.Module) -> nn.Module:
    """A copy of `module` (in eval mode) with every conv -> BatchNorm2d pair merged into one conv."""
    norms = [m for m in module.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if any(norm.training or norm.running_mean is None for norm in norms):
        raise ValueError("batch norm can be folded only in eval mode with running statistics (norm_stats='running')")
    folded = copy.deepcopy(module)
    for sequential in [m for m in folded.modules() if isinstance(m, nn.Sequential)]:
        for index in range(1, len(sequential)):
            conv, norm = sequential[index - 1], sequential[index]
            if isinstance(conv, FOLDABLE) and isinstance(norm, nn.BatchNorm2d) and conv.groups == 1:
                merge_norm_into_conv(conv, norm)
                sequential[index] = nn.Identity()
    return folded


@torch.no_grad()
def merge_norm_into_conv(conv: nn.Conv2d | nn.ConvTranspose2d, norm: nn.BatchNorm2d) -> None:
    assert norm.running_mean is not None and norm.running_var is not None
    scale = torch.rsqrt(norm.running_var + norm.eps)
    if norm.affine:
        scale = scale * norm.weight
    shift = -norm.running_mean * scale + (norm.bias if norm.affine else 0.0)
    # output channels are dim 0 of a Conv2d weight (out, in, kh, kw), dim 1 of a transposed one (in, out, kh, kw)
    channel_shape = (-1, 1, 1, 1) if isinstance(conv, nn.Conv2d) else (1, -1, 1, 1)
    conv.weight.mul_(scale.view(channel_shape))
    bias = shift if conv.bias is None else conv.bias * scale + shift
    conv.bias = nn.Parameter(bias)
