"""A case's slices side by side: each slice with the ones below and above it (2.5D network input)."""

from __future__ import annotations

import numpy as np

__all__ = ["with_neighbours"]


def with_neighbours(slices: np.ndarray, case_ids: np.ndarray) -> np.ndarray:
    """``(N, H, W)`` slices, each case's in order, as ``(N, 3, H, W)``: the slice, the one below, the one
    above in its case (at a stack's ends the slice itself)."""
    rows = np.arange(len(slices))
    below, above = rows.copy(), rows.copy()
    same = case_ids[1:] == case_ids[:-1]  # row i + 1 continues row i's case
    below[1:] = np.where(same, rows[:-1], rows[1:])
    above[:-1] = np.where(same, rows[1:], rows[:-1])
    return np.stack([slices, slices[below], slices[above]], axis=1)
