"""Fibrosis post-processing at prediction: the slice classifier's gates and a minimum lesion size."""

from __future__ import annotations

import numpy as np
from skimage.measure import label

__all__ = ["drop_small_lesions", "gate"]


def gate(fibrosis: np.ndarray, slice_scores: np.ndarray, case_ids: np.ndarray | None = None) -> np.ndarray:
    """``fibrosis`` ``(N, H, W)`` kept on the slices the classifier scores above 0.5, zero on the others.

    With ``case_ids`` the decision is the case's: its every slice is kept when any of them scores above 0.5.
    """
    flagged = np.asarray(slice_scores) > 0.5
    if case_ids is not None:
        inverse = np.unique(case_ids, return_inverse=True)[1]
        flagged = np.bincount(inverse, weights=flagged)[inverse] > 0
    return np.where(flagged[:, None, None], fibrosis, 0).astype(np.float32)


def drop_small_lesions(fibrosis: np.ndarray, threshold: float, min_pixels: int) -> np.ndarray:
    """``fibrosis`` ``(N, H, W)`` with every lesion (8-connected region above ``threshold``) of fewer than
    ``min_pixels`` pixels set to zero."""
    if min_pixels <= 1:
        return fibrosis
    kept = fibrosis.copy()
    for probability in kept:
        lesions = label(probability > threshold, connectivity=2)
        small = np.flatnonzero(np.bincount(lesions.ravel()) < min_pixels)
        probability[np.isin(lesions, small[small > 0])] = 0
    return kept
