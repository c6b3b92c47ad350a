"""Augmentation shared by the plugins and stages.

Two geometric families: the 8 flips/rotations of the square (exact, no resampling), and random
affine warps (any rotation angle, scaling, shifts; bilinear, via kornia). At test time,
:func:`flip_averaged` averages a prediction over the image's flips. All channels of a sample
(image, myocardium, target...) get the same transform, so stack inputs and targets along ``C``
first. One intensity transform, :func:`random_gamma`, changes the image channel only. Randomness
comes from a NumPy generator, so a seed reproduces an epoch exactly.

Dihedral codes ``0..7``: ``code % 4`` quarter turns, then a horizontal flip when ``code >= 4``.
Non-square inputs only get the shape-keeping codes (0, 2, 4, 6).
"""

from __future__ import annotations

from collections.abc import Callable

import kornia.enhance as KE
import kornia.geometry.transform as KT
import numpy as np
import torch
from torch import Tensor

from wsseg.interfaces import Segmenter

__all__ = [
    "FLIPS",
    "dihedral",
    "flip_averaged",
    "random_affine",
    "random_dihedral",
    "random_dihedral_codes",
    "random_gamma",
    "segment",
]


def dihedral(x: Tensor, code: int) -> Tensor:
    """Apply dihedral transform ``code`` (0..7) to the last two dims of ``x``."""
    if not 0 <= code < 8:
        raise ValueError(f"dihedral code must be in 0..7, got {code}")
    out = torch.rot90(x, code % 4, dims=(-2, -1)) if code % 4 else x
    return out.flip(-1) if code >= 4 else out


def random_dihedral_codes(n: int, rng: np.random.Generator, square: bool = True) -> np.ndarray:
    """``n`` random codes; only shape-keeping ones when ``square`` is false."""
    return rng.integers(0, 8, size=n) if square else rng.choice(np.array([0, 2, 4, 6]), size=n)


def random_dihedral(x: Tensor, codes: np.ndarray) -> Tensor:
    """Transform sample ``i`` of ``x`` ``(N, C, H, W)`` by ``codes[i]``."""
    codes = np.asarray(codes)
    if len(codes) != len(x):
        raise ValueError("one code per sample is needed")
    out = x.clone()
    for code in np.unique(codes):
        if code:
            index = torch.as_tensor(np.flatnonzero(codes == code), device=x.device)
            out[index] = dihedral(x[index], int(code))
    return out


def random_affine(
    x: Tensor, rng: np.random.Generator, degrees: float = 180.0, scale: float = 0.15, shift: float = 0.05
) -> Tensor:
    """Warp each sample of ``x`` ``(N, C, H, W)`` by a random rotation (uniform in +-``degrees``),
    isotropic scaling (uniform in ``1 +- scale``) and shift (uniform in +-``shift`` of the side)
    about the image centre; bilinear, zeros outside.
    """
    n, _, height, width = x.shape
    angle = torch.as_tensor(rng.uniform(-degrees, degrees, n), dtype=x.dtype)
    factor = torch.as_tensor(rng.uniform(1 - scale, 1 + scale, n), dtype=x.dtype)
    offset = torch.as_tensor(rng.uniform(-shift, shift, (n, 2)) * (width, height), dtype=x.dtype)
    centre = torch.tensor([[(width - 1) / 2, (height - 1) / 2]], dtype=x.dtype).expand(n, 2)
    matrix = KT.get_rotation_matrix2d(centre, angle, factor[:, None].expand(n, 2))
    matrix[:, :, 2] += offset
    return KT.warp_affine(
        x, matrix.to(x.device), (height, width), mode="bilinear", padding_mode="zeros", align_corners=True
    )


def random_gamma(x: Tensor, rng: np.random.Generator, strength: float, channel: int = 0) -> Tensor:
    """Raise ``channel`` of each sample of ``x`` ``(N, C, H, W)``, intensities in 0..1, to a random
    power ``exp(u)``, ``u`` uniform in +-``strength``: contrast changes that keep 0, 1 and the order."""
    exponent = torch.as_tensor(np.exp(rng.uniform(-strength, strength, len(x))), dtype=x.dtype, device=x.device)
    out = x.clone()
    out[:, channel] = KE.adjust_gamma(x[:, channel].clamp(0, 1), exponent)  # clamped first: no NaN below 0
    return out


FLIPS = (0, 2, 4, 6)  # identity, half turn, horizontal flip, vertical flip: shape-keeping, each its own inverse


def flip_averaged(predict: Callable[[np.ndarray], np.ndarray], inputs: np.ndarray) -> np.ndarray:
    """Test-time flips: the mean of ``predict`` ``(N, C, H, W) -> (N, H, W)`` over ``inputs`` and its
    three flips, each prediction flipped back."""
    x = torch.tensor(inputs)  # copies, here and below: torch warns on read-only arrays
    total = np.zeros((len(inputs), *inputs.shape[2:]), np.float32)
    for code in FLIPS:
        total += dihedral(torch.tensor(predict(dihedral(x, code).numpy())), code).numpy()
    return total / len(FLIPS)


def segment(segmenter: Segmenter, inputs: np.ndarray, flips: bool) -> np.ndarray:
    """``segmenter.predict(inputs)``, averaged over the test-time flips when ``flips``."""
    return flip_averaged(segmenter.predict, inputs) if flips else segmenter.predict(inputs)
