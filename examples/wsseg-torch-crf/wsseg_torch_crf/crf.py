"""Two-class fully connected CRF (Krähenbühl & Koltun 2011), mean-field inference in PyTorch.

It follows pydensecrf's ``DenseCRF2D`` as wsseg-otsu-crf configures it (unary ``-log p`` clipped
at 1e-5, Potts compatibility, symmetric kernel normalisation, ``Q = softmax(-unary)`` then
``iterations`` updates ``Q = softmax(-unary + sum_m w_m norm * K_m (norm * Q))``) but filters with
the exact kernels where pydensecrf approximates them on a permutohedral lattice:

- smoothness: Gaussian of width ``theta_gamma`` pixels, separable convolution truncated at 4 widths;
- appearance: ``exp(-|p_i - p_j|^2 / 2 theta_alpha^2 - 3 |I_i - I_j|^2 / 2 theta_beta^2)``, dense
  (grey levels 0..255; the 3 is pydensecrf's RGB distance of a grey image), slice by slice.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

CLIP = 1e-5
"""Probabilities are clipped to at least this before the log, as in wsseg-otsu-crf."""
CHUNK = 1024
"""Rows of the dense appearance kernel computed at once."""
KEEP = 2**26
"""The appearance kernel is kept between iterations up to this many entries (256 MB: 90x90 pixels)."""


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


def _appearance(features: Tensor) -> Callable[[Tensor], Tensor]:
    """Filtering ``(L, N)`` values with the dense appearance kernel of one slice's ``features`` ``(N, D)``.

    The kernel is computed in row chunks, once, and kept when it has at most ``KEEP`` entries.
    """
    starts = range(0, len(features), CHUNK)

    def rows(start: int) -> Tensor:
        return torch.exp(-0.5 * torch.cdist(features[start : start + CHUNK], features).pow(2))  # (chunk, N)

    kept = [rows(start) for start in starts] if len(features) ** 2 <= KEEP else None
    return lambda values: torch.cat(
        [values @ (kept[i] if kept else rows(start)).T for i, start in enumerate(starts)], dim=1
    )


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
    if w1 > 0 and image is None:
        raise ValueError("the appearance kernel (w1 > 0) needs the image")
    if w1 > 0 and b > 1:  # one appearance kernel per slice: keep one in memory at a time
        settings = dict(
            iterations=iterations, w1=w1, w2=w2, theta_gamma=theta_gamma, theta_alpha=theta_alpha, theta_beta=theta_beta
        )
        return torch.stack([mean_field_crf(p[k], image[k], **settings) for k in range(b)])
    unary = -torch.log(torch.stack([1 - p, p], dim=1).clamp(CLIP, 1.0))  # (B, 2, H, W)
    kernels = []
    if w2 > 0:
        kernels.append((w2, lambda v: _gaussian(v, theta_gamma)))
    if w1 > 0:
        grey = image.reshape(h * w, 1).to(p).clamp(0, 1).mul(255).round()
        yy, xx = torch.meshgrid(torch.arange(h, device=p.device), torch.arange(w, device=p.device), indexing="ij")
        position = torch.stack([yy, xx], dim=-1).reshape(h * w, 2).to(p)
        appearance = _appearance(torch.cat([position / theta_alpha, grey * math.sqrt(3) / theta_beta], dim=1))
        kernels.append((w1, lambda v: appearance(v.reshape(-1, h * w)).reshape(v.shape)))
    norms = [torch.rsqrt(apply(torch.ones_like(p[:, None])) + 1e-20) for _, apply in kernels]
    q = torch.softmax(-unary, dim=1)
    for _ in range(iterations):
        message = sum(weight * norm * apply(norm * q) for (weight, apply), norm in zip(kernels, norms))
        q = torch.softmax(-unary + message, dim=1)
    mask = q[:, 1] > q[:, 0]
    return mask[0] if single else mask
