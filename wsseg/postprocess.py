"""Fibrosis post-processing at prediction: the slice classifier's gates, a minimum lesion size and a minimum
case burden."""

from __future__ import annotations

import numpy as np
from skimage.measure import label

from wsseg.burden import scar_burden

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

    A case's burden is :func:`~wsseg.burden.scar_burden`'s fibrosis share of its myocardium over all
    its slices; ``thresholds`` are the fibrosis and the myocardium probability thresholds,
    ``myocardium`` ``(N, H, W)`` the myocardium probabilities.
    """
    if min_percent <= 0:
        return fibrosis
    scar, wall = fibrosis > thresholds[0], myocardium >= thresholds[1]
    kept = np.ones(len(fibrosis), bool)
    for case in np.unique(case_ids):
        rows = case_ids == case
        kept[rows] = (scar_burden(wall[rows], scar[rows], None).fibrosis_percent or 0.0) >= min_percent
    return np.where(kept[:, None, None], fibrosis, 0).astype(np.float32)
