"""DRN-D-22 backbone (Yu, Koltun, Funkhouser 2017, "Dilated residual networks"), output stride 4.

Layout of the reference ``drn_d_22`` (BasicBlock, ``layers = [1, 1, 2, 2, 2, 2, 1, 1]``, arch "D"):

======  ===============================  ======  ========
layer   content                          stride  dilation
======  ===============================  ======  ========
0       7x7 conv, BN, ReLU               1       1
1       3x3 conv, BN, ReLU               1       1
2       3x3 conv, BN, ReLU               2       1
3       2 residual BasicBlocks           2       1
4       2 residual BasicBlocks           **1**   1
5       2 residual BasicBlocks           1       2
6       2 residual BasicBlocks           1       4
7       3x3 conv, BN, ReLU (no residual) 1       2
8       3x3 conv, BN, ReLU (no residual) 1       1
======  ===============================  ======  ========

The only change from the reference is the stride of layer 4 (2 -> 1), so the output is at 1/4 of
the input resolution (56x56 for a 224x224 input). No pretraining; BatchNorm throughout.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from torch import Tensor, nn

DEFAULT_CHANNELS: tuple[int, ...] = (16, 32, 64, 128, 128, 128, 128, 128)
"""The reference scripts' narrowed DRN-D-22 channels, one per layer 1..8 (layer 0 uses the first)."""


def conv3x3(in_channels: int, out_channels: int, stride: int = 1, dilation: int = 1) -> nn.Conv2d:
    """3x3 convolution without bias whose padding keeps the size (up to the stride)."""
    return nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=dilation, dilation=dilation, bias=False)


def conv_bn_relu(
    in_channels: int, out_channels: int, kernel_size: int = 3, stride: int = 1, dilation: int = 1
) -> nn.Sequential:
    """A plain (non-residual) DRN-D conv layer: conv, BatchNorm, ReLU."""
    padding = dilation * (kernel_size // 2)
    return nn.Sequential(
        nn.Conv2d(
            in_channels, out_channels, kernel_size, stride=stride, padding=padding, dilation=dilation, bias=False
        ),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
    )


class BasicBlock(nn.Module):
    """Residual block of two 3x3 convs (ResNet BasicBlock with per-conv dilation)."""

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1, dilation: tuple[int, int] = (1, 1)):
        super().__init__()
        self.conv1 = conv3x3(in_channels, out_channels, stride, dilation[0])
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = conv3x3(out_channels, out_channels, 1, dilation[1])
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.downsample: nn.Module | None = None
        if stride != 1 or in_channels != out_channels:
            self.downsample = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False), nn.BatchNorm2d(out_channels)
            )

    def forward(self, x: Tensor) -> Tensor:
        residual = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + residual)


def residual_layer(
    in_channels: int, out_channels: int, blocks: int, stride: int = 1, dilation: int = 1, new_level: bool = True
) -> nn.Sequential:
    """``blocks`` BasicBlocks; the first one changes channels/stride (reference ``_make_layer``)."""
    first = (1, 1) if dilation == 1 else (dilation // 2 if new_level else dilation, dilation)
    layers = [BasicBlock(in_channels, out_channels, stride, first)]
    layers += [BasicBlock(out_channels, out_channels, 1, (dilation, dilation)) for _ in range(blocks - 1)]
    return nn.Sequential(*layers)


class DRND22(nn.Module):
    """DRN-D-22 feature extractor with output stride 4: ``(N, C_in, H, W) -> (N, channels[-1], H/4, W/4)``.

    ``channels`` gives the width of layers 1..8 (layer 0, the 7x7 stem, uses ``channels[0]``).
    For the output to be exactly 1/4 of the input, H and W must be divisible by 4.
    """

    def __init__(self, in_channels: int = 2, channels: Sequence[int] = DEFAULT_CHANNELS):
        super().__init__()
        channels = tuple(int(c) for c in channels)
        if len(channels) != 8 or min(channels) < 1:
            raise ValueError(f"DRN-D-22 needs 8 positive channel widths, got {channels}")
        self.channels = channels
        self.out_channels = channels[7]
        c = channels
        self.layer0 = conv_bn_relu(in_channels, c[0], kernel_size=7)
        self.layer1 = conv_bn_relu(c[0], c[0])
        self.layer2 = conv_bn_relu(c[0], c[1], stride=2)
        self.layer3 = residual_layer(c[1], c[2], 2, stride=2)
        self.layer4 = residual_layer(c[2], c[3], 2, stride=1)  # reference: stride 2
        self.layer5 = residual_layer(c[3], c[4], 2, dilation=2, new_level=False)
        self.layer6 = residual_layer(c[4], c[5], 2, dilation=4, new_level=False)
        self.layer7 = conv_bn_relu(c[5], c[6], dilation=2)
        self.layer8 = conv_bn_relu(c[6], c[7], dilation=1)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """The reference initialisation: He-normal (fan-out) convs, BatchNorm weight 1 and bias 0."""
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                n = m.kernel_size[0] * m.kernel_size[1] * m.out_channels
                nn.init.normal_(m.weight, 0.0, math.sqrt(2.0 / n))
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, x: Tensor) -> Tensor:
        for i in range(9):
            x = getattr(self, f"layer{i}")(x)
        return x


def drn_d_22(in_channels: int = 2, channels: Sequence[int] = DEFAULT_CHANNELS) -> DRND22:
    """Build the output-stride-4 DRN-D-22 backbone (no pretrained weights)."""
    return DRND22(in_channels, channels)
