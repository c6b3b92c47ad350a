"""Soft Dice loss, as in the reference scripts, and the bright-wall weighting of cross-entropy."""

import numpy as np
import torch
from torch import nn

from wsseg.augment import enclosed


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


def bright_wall(images: torch.Tensor, walls: torch.Tensor) -> torch.Tensor:
    """Wall pixels brighter than halfway from the wall's median to its cavity's median, per sample.

    ``images`` and ``walls`` are ``(N, H, W)``; a wall is ``> 0.5``, its cavity what the wall encloses.
    In LGE that is scar, or wall that looks like it: where a wall model loses the wall to the bright
    blood pool. A sample whose wall encloses no cavity has none.
    """
    out = np.zeros(walls.shape, bool)
    for i, (image, wall) in enumerate(zip(images.float().cpu().numpy(), walls.float().cpu().numpy() > 0.5)):
        cavity = enclosed(wall)
        if wall.any() and cavity.any():
            healthy, blood = np.median(image[wall]), np.median(image[cavity])
            out[i] = wall & (image > (healthy + blood) / 2) if blood > healthy else False
    return torch.from_numpy(out)
