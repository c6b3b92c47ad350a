"""Soft Dice loss, as in the reference scripts."""

import torch
from torch import nn


def dice_loss(probabilities: torch.Tensor, targets: torch.Tensor, smooth: float = 1.0) -> torch.Tensor:
    """``1 - (2 sum(p t) + s) / (sum p^2 + sum t^2 + s)`` over the whole batch."""
    p, t = probabilities.flatten(), targets.flatten().to(probabilities.dtype)
    return 1 - (2 * (p * t).sum() + smooth) / ((p * p).sum() + (t * t).sum() + smooth)


class DiceLoss(nn.Module):
    """Module form of :func:`dice_loss`."""

    def __init__(self, smooth: float = 1.0):
        super().__init__()
        self.smooth = smooth

    def forward(self, probabilities: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return dice_loss(probabilities, targets, self.smooth)
