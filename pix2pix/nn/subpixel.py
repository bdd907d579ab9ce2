"""The stride-2, kernel-4 transposed convolution computed as four interleaved 2x2 convolutions.

With stride 2 and padding 1, output row 2i + a (a = 0 or 1) sees only input rows i - 1 + a and i + a,
through kernel rows 3 - a and 1 - a: each of the four output phases (a, b) is a plain 2x2 convolution of
the input (the "sub-pixel" form). All four run as one Conv2d with 4x the output channels over the input
padded by 1, and the phases are interleaved into the 2H x 2W output. Same maths and the same FLOPs as
`nn.ConvTranspose2d`, but it goes through the forward-convolution kernels, which CPUs run faster.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class SubpixelConvTranspose2d(nn.ConvTranspose2d):
    """Drop-in for `nn.ConvTranspose2d(in, out, 4, stride=2, padding=1)`.

    A subclass with the same `weight` (in, out, 4, 4) and `bias` parameters, so checkpoints, official
    weights and `init_weights` treat it as the layer it replaces; only `forward` differs.
    """

    def __init__(self, in_channels: int, out_channels: int, bias: bool = True) -> None:
        super().__init__(in_channels, out_channels, 4, stride=2, padding=1, bias=bias)

    def forward(self, x: Tensor, output_size: list[int] | None = None) -> Tensor:
        if output_size is not None:
            raise ValueError("SubpixelConvTranspose2d always doubles H and W; output_size is not supported")
        batch, _, height, width = x.shape
        out_channels = self.out_channels
        # kernel row 3 - a - 2r feeds phase a from window row r; flipped, that is row a + 2r, so the
        # flipped kernel viewed as (in, out, r, a, s, b) holds every phase's 2x2 kernel
        phase_kernels = self.weight.flip(2, 3).reshape(-1, out_channels, 2, 2, 2, 2)
        phase_kernels = phase_kernels.permute(3, 5, 1, 0, 2, 4).reshape(
            4 * out_channels, -1, 2, 2
        )  # (a b out, in, r, s)
        bias = self.bias.repeat(4) if self.bias is not None else None
        y = F.conv2d(F.pad(x, (1, 1, 1, 1)), phase_kernels, bias)  # (B, 4 out, H + 1, W + 1)
        y = y.view(batch, 2, 2, out_channels, height + 1, width + 1)
        # phase (a, b) at input position (i, j) is window (i + a, j + b) of the padded input
        phases = [y[:, a, b, :, a : a + height, b : b + width] for a in (0, 1) for b in (0, 1)]
        y = torch.stack(phases, dim=-1).view(batch, out_channels, height, width, 2, 2)  # (..., a, b)
        return y.permute(0, 1, 2, 4, 3, 5).reshape(batch, out_channels, 2 * height, 2 * width)
