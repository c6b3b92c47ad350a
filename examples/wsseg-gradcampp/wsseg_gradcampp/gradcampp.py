"""Grad-CAM++ saliency from feature maps and the gradient of a class score."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def grad_cam_plus_plus(features: Tensor, grads: Tensor) -> Tensor:
    """Grad-CAM++ map ``(N, h, w)`` of ``features`` ``(N, C, h, w)`` given ``grads`` = d score / d features.

    With the exponential of the score as the class output, the higher derivatives are powers of
    the first (Chattopadhyay et al. 2018, eq. 19):
    ``alpha = g^2 / (2 g^2 + sum_ab(A_ab) g^3)``, channel weight ``w = sum_ij alpha_ij relu(g_ij)``,
    map ``relu(sum_k w_k A_k)``. Where the denominator is 0, alpha is 0.
    """
    g2, g3 = grads.pow(2), grads.pow(3)
    denominator = 2 * g2 + features.sum(dim=(2, 3), keepdim=True) * g3
    alpha = torch.where(denominator != 0, g2 / torch.where(denominator != 0, denominator, 1.0), 0.0)
    weights = (alpha * F.relu(grads)).sum(dim=(2, 3), keepdim=True)
    return F.relu((weights * features).sum(dim=1))
