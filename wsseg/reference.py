"""Label-free references: fibrosis found without any fibrosis label, the bar a weak level must clear.

``otsu``: on each slice, the pixels of the predicted myocardium brighter than the wall's own Otsu
threshold (enhanced wall is scar). ``otsu_gated``: the same, only on the slices the slice classifier
scores above 0.5. Both use the myocardium model and, for the gate, the weakly trained classifier;
neither sees a fibrosis mask.
"""

from __future__ import annotations

import numpy as np
from skimage.filters import threshold_otsu

__all__ = ["REFERENCES", "label_free", "otsu_inside"]

REFERENCES = {"otsu": "label-free Otsu", "otsu_gated": "label-free Otsu, gated"}
"""The reference rows' names and how tables show them."""


def otsu_inside(image: np.ndarray, myocardium: np.ndarray) -> np.ndarray:
    """The pixels of ``myocardium`` (bool) brighter than the Otsu threshold of ``image`` inside it."""
    if myocardium.sum() < 2 or np.ptp(image[myocardium]) == 0:
        return np.zeros_like(myocardium, dtype=bool)
    return myocardium & (image > threshold_otsu(image[myocardium]))


def label_free(images: np.ndarray, myocardium: np.ndarray, scores: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """The reference masks ``(N, H, W)`` for ``images`` and their ``myocardium`` masks; ``otsu_gated``
    only when the slice classifier's ``scores`` ``(N,)`` are given."""
    otsu = np.stack([otsu_inside(image, wall) for image, wall in zip(images, myocardium)])
    masks = {"otsu": otsu}
    if scores is not None:
        masks["otsu_gated"] = otsu & (np.asarray(scores) > 0.5)[:, None, None]
    return masks
