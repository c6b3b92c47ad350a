"""Multi-Otsu suppression of dark (healthy myocardium) pixels."""

from __future__ import annotations

import numpy as np
from skimage.exposure import histogram
from skimage.filters import threshold_multiotsu

NBINS = 256
"""Histogram bins for the Multi-Otsu search (the scikit-image default)."""


def otsu_suppress(prob: np.ndarray, image: np.ndarray, classes: int = 3) -> np.ndarray:
    """Zero the probability of pixels darker than the lowest Multi-Otsu threshold.

    The thresholds split the image intensities of the pixels with ``prob > 0`` into ``classes``
    classes (a 256-bin histogram over their range). On LGE MRI healthy myocardium is dark, so
    the darkest class is removed. When those intensities fill fewer than ``classes`` histogram
    bins (e.g. a constant image) no thresholds exist and ``prob`` is returned unchanged.
    Returns a new array; ``prob`` is not modified.
    """
    if prob.shape != image.shape:
        raise ValueError(f"prob and image shapes differ: {prob.shape} vs {image.shape}")
    values = np.asarray(image, dtype=np.float64)[prob > 0]
    if values.size == 0:
        return prob.copy()
    hist, centers = histogram(values, nbins=NBINS)
    if np.count_nonzero(hist) < classes:
        return prob.copy()
    lowest = threshold_multiotsu(hist=(hist, centers), classes=classes)[0]
    return np.where(image < lowest, 0, prob).astype(prob.dtype)
