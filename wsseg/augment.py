"""Training-time augmentation shared by the plugins: the 8 flips/rotations of the square.

Codes ``0..7``: ``code % 4`` quarter turns, then a horizontal flip when ``code >= 4``. All channels
of a sample (image, myocardium, target...) get the same transform, so stack inputs and targets
along ``C`` first. Non-square inputs only get the shape-keeping codes (0, 2, 4, 6).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor


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
