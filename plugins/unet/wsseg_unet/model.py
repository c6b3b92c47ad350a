"""2D U-Net: encoder-decoder with skip connections; a sigmoid output, or a softmax over several classes."""

import torch
from torch import nn


def conv_block(in_channels: int, out_channels: int) -> nn.Sequential:
    """Two (3x3 conv, BatchNorm, ReLU) layers."""
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
        nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
    )


class UNet(nn.Module):
    """U-Net with ``depth`` levels; inputs need sides divisible by ``2 ** (depth - 1)``.

    ``out_channels`` 1 gives one sigmoid probability; more give a softmax over that many classes.
    """

    def __init__(self, in_channels: int, base_channels: int = 16, depth: int = 4, out_channels: int = 1):
        super().__init__()
        widths = [base_channels * 2**level for level in range(depth)]
        self.down = nn.ModuleList()
        previous = in_channels
        for width in widths:
            self.down.append(conv_block(previous, width))
            previous = width
        self.pool = nn.MaxPool2d(2)
        self.upsample = nn.ModuleList(nn.ConvTranspose2d(w * 2, w, 2, stride=2) for w in reversed(widths[:-1]))
        self.up = nn.ModuleList(conv_block(w * 2, w) for w in reversed(widths[:-1]))
        self.head = nn.Conv2d(widths[0], out_channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Probabilities ``(N, out_channels, H, W)`` for inputs ``(N, C, H, W)``."""
        skips = []
        for level, block in enumerate(self.down):
            if level > 0:
                x = self.pool(x)
            x = block(x)
            skips.append(x)
        for upsample, block, skip in zip(self.upsample, self.up, reversed(skips[:-1])):
            x = block(torch.cat([upsample(x), skip], dim=1))
        logits = self.head(x)
        return torch.sigmoid(logits) if logits.shape[1] == 1 else torch.softmax(logits, dim=1)
