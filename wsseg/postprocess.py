"""Fibrosis post-processing at prediction: the slice classifier's gates, a minimum lesion size and a minimum
case burden."""

from __future__ import annotations

import numpy as np
from skimage.measure import label

__all__ = ["clear_low_burden", "drop_small_lesions", "gate"]


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


def clear_low_burden(
    fibrosis: np.ndarray,
    myocardium: np.ndarray,
    case_ids: np.ndarray,
    thresholds: tuple[float, float],
    min_percent: float,
) -> np.ndarray:
    """``fibrosis`` ``(N, H, W)`` set to zero in every case whose scar burden is under ``min_percent``.

    A case's burden is its fibrosis pixels as a share of its myocardium pixels, scar included (as
    :mod:`wsseg.burden` counts it), over all its slices; ``thresholds`` are the fibrosis and the
    myocardium probability thresholds, ``myocardium`` ``(N, H, W)`` the myocardium probabilities.
    """
    if min_percent <= 0:
        return fibrosis
    scar = fibrosis > thresholds[0]
    wall = scar | (myocardium >= thresholds[1])
    inverse = np.unique(case_ids, return_inverse=True)[1]
    scar_pixels = np.bincount(inverse, weights=scar.reshape(len(scar), -1).sum(1))
    wall_pixels = np.bincount(inverse, weights=wall.reshape(len(wall), -1).sum(1))
    kept = 100 * scar_pixels >= min_percent * np.maximum(wall_pixels, 1)
    return np.where(kept[inverse][:, None, None], fibrosis, 0).astype(np.float32)
