"""Two-class fully connected CRF (Krähenbühl & Koltun 2011), mean-field inference in PyTorch.

It follows pydensecrf's ``DenseCRF2D`` as wsseg-otsu-crf configures it (unary ``-log p`` clipped
at 1e-5, Potts compatibility, symmetric kernel normalisation, ``Q = softmax(-unary)`` then
``iterations`` updates ``Q = softmax(-unary + sum_m w_m norm * K_m (norm * Q))``) but filters with
the exact kernels where pydensecrf approximates them on a permutohedral lattice:

- smoothness: Gaussian of width ``theta_gamma`` pixels, separable convolution truncated at 4 widths;
- appearance: ``exp(-|p_i - p_j|^2 / 2 theta_alpha^2 - 3 |I_i - I_j|^2 / 2 theta_beta^2)``, dense
  (grey levels 0..255; the 3 is pydensecrf's RGB distance of a grey image), in row chunks.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

CLIP = 1e-5
"""Probabilities are clipped to at least this before the log, as in wsseg-otsu-crf."""
CHUNK = 1024
"""Rows of the dense appearance kernel computed at once (memory: CHUNK x H*W floats per slice)."""


def _gaussian(values: Tensor, theta: float) -> Tensor:
    """Filter ``values`` ``(B, L, H, W)`` with a unit-peak Gaussian of width ``theta`` (zero outside the image)."""
    radius = max(1, math.ceil(4 * theta))
    x = torch.arange(-radius, radius + 1, dtype=values.dtype, device=values.device)
    kernel = torch.exp(-(x**2) / (2 * theta**2))
    channels = values.shape[1]
    rows = kernel.view(1, 1, -1, 1).expand(channels, 1, -1, 1)
    cols = kernel.view(1, 1, 1, -1).expand(channels, 1, 1, -1)
    values = F.conv2d(values, rows, padding=(radius, 0), groups=channels)
    return F.conv2d(values, cols, padding=(0, radius), groups=channels)


def _bilateral(values: Tensor, features: Tensor) -> Tensor:
    """Dense appearance filtering of ``values`` ``(B, L, N)`` with ``features`` ``(B, N, D)``."""
    out = []
    for start in range(0, features.shape[1], CHUNK):
        kernel = torch.exp(-0.5 * torch.cdist(features[:, start : start + CHUNK], features).pow(2))  # (B, chunk, N)
        out.append(torch.einsum("bcn,bln->blc", kernel, values))
    return torch.cat(out, dim=2)


def mean_field_crf(
    prob: Tensor,
    image: Tensor | None = None,
    *,
    iterations: int = 5,
    w1: float = 0.0,
    w2: float = 1.0,
    theta_gamma: float = 3.0,
    theta_alpha: float = 80.0,
    theta_beta: float = 13.0,
) -> Tensor:
    """Refine foreground probabilities ``prob`` ``(H, W)`` or ``(B, H, W)`` into a ``bool`` mask.

    ``image`` (same shape, in [0, 1]) is needed only when ``w1 > 0``. Works on ``prob``'s device;
    the defaults are the paper's (smoothness kernel only, 5 iterations).
    """
    single = prob.dim() == 2
    p = (prob[None] if single else prob).float()
    b, h, w = p.shape
    unary = -torch.log(torch.stack([1 - p, p], dim=1).clamp(CLIP, 1.0))  # (B, 2, H, W)
    kernels = []
    if w2 > 0:
        kernels.append((w2, lambda v: _gaussian(v, theta_gamma)))
    if w1 > 0:
        if image is None:
            raise ValueError("the appearance kernel (w1 > 0) needs the image")
        grey = (image[None] if single else image).to(p).clamp(0, 1).mul(255).round().reshape(b, h * w, 1)
        yy, xx = torch.meshgrid(torch.arange(h, device=p.device), torch.arange(w, device=p.device), indexing="ij")
        position = torch.stack([yy, xx], dim=-1).reshape(1, h * w, 2).to(p).expand(b, -1, -1)
        features = torch.cat([position / theta_alpha, grey * math.sqrt(3) / theta_beta], dim=2)
        kernels.append((w1, lambda v: _bilateral(v.reshape(b, -1, h * w), features).reshape(v.shape)))
    norms = [torch.rsqrt(apply(torch.ones_like(p[:, None])) + 1e-20) for _, apply in kernels]
    q = torch.softmax(-unary, dim=1)
    for _ in range(iterations):
        message = sum(weight * norm * apply(norm * q) for (weight, apply), norm in zip(kernels, norms))
        q = torch.softmax(-unary + message, dim=1)
    mask = q[:, 1] > q[:, 0]
    return mask[0] if single else mask
