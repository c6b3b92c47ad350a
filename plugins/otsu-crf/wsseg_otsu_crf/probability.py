"""Class activation map -> fibrosis probability map on the image grid."""

from __future__ import annotations

import numpy as np
from skimage.transform import resize


def cam_to_probability(cam: np.ndarray, shape: tuple[int, int], mask: np.ndarray | None = None) -> np.ndarray:
    """Resize ``cam`` bilinearly to ``shape`` and map its positive part to probabilities in [0.5, 1].

    With ``mask`` (bool, ``shape``), the resized CAM is zeroed outside it first.

    The resize is ``skimage.transform.resize(order=1, mode="edge", anti_aliasing=False)``, which
    equals ``torch.nn.functional.interpolate(mode="bilinear", align_corners=False)``. After a ReLU
    the CAM is divided by its maximum on this slice: ``p = 0.5 + cam / (2 max)`` where ``cam > 0``,
    else ``0``. So the returned ``float32`` map lies in {0} ∪ [0.5, 1] and is exactly 1 at the
    resized CAM's maximum; a CAM without positive values gives all zeros.
    """
    cam = np.asarray(cam, dtype=np.float64)
    if cam.ndim != 2:
        raise ValueError(f"cam must be 2D (h, w); got shape {cam.shape}")
    if not np.isfinite(cam).all():
        raise ValueError("cam holds NaN or infinite values")
    positive = np.maximum(resize(cam, shape, order=1, mode="edge", anti_aliasing=False), 0.0)
    if mask is not None:
        positive = np.where(mask, positive, 0.0)
    peak = positive.max()
    if peak <= 0.0:
        return np.zeros(shape, dtype=np.float32)
    return np.where(positive > 0.0, 0.5 + positive / (2.0 * peak), 0.0).astype(np.float32)
