"""Two-class fully connected CRF (Krähenbühl & Koltun) over a fibrosis probability map."""

from __future__ import annotations

import numpy as np
import pydensecrf.densecrf as dcrf
from pydensecrf.utils import unary_from_softmax

CLIP = 1e-5
"""Probabilities are clipped to at least this before the log, so the unary stays finite."""


def dense_crf(
    prob: np.ndarray,
    image: np.ndarray,
    *,
    iterations: int = 5,
    w1: float = 0.0,
    w2: float = 1.0,
    theta_gamma: float = 3.0,
    theta_alpha: float = 80.0,
    theta_beta: float = 13.0,
) -> np.ndarray:
    """Refine ``prob`` (foreground probability, ``(H, W)``) into a ``bool`` mask with DenseCRF.

    Unary: ``-log`` of ``[1 - prob, prob]`` (clipped at :data:`CLIP`). Pairwise: a Gaussian
    smoothness kernel (width ``theta_gamma`` px, weight ``w2``) and, only when ``w1 > 0``, a
    bilateral appearance kernel (widths ``theta_alpha`` px and ``theta_beta`` grey levels of the
    ``[0, 1]`` image scaled to 0..255, weight ``w1``). ``iterations`` mean-field steps, then argmax.
    The paper's setting is the default: ``w1 = 0, w2 = 1, theta_gamma = 3``, 5 iterations.
    """
    if prob.shape != image.shape or prob.ndim != 2:
        raise ValueError(f"prob and image must be the same (H, W); got {prob.shape} and {image.shape}")
    height, width = prob.shape
    p = np.asarray(prob, dtype=np.float64)
    crf = dcrf.DenseCRF2D(width, height, 2)
    crf.setUnaryEnergy(np.ascontiguousarray(unary_from_softmax(np.stack([1.0 - p, p]), clip=CLIP)))
    if w2 > 0:
        crf.addPairwiseGaussian(sxy=theta_gamma, compat=w2)
    if w1 > 0:
        grey = np.round(np.clip(image, 0.0, 1.0) * 255.0).astype(np.uint8)
        rgb = np.ascontiguousarray(np.repeat(grey[:, :, None], 3, axis=2))
        crf.addPairwiseBilateral(sxy=theta_alpha, srgb=theta_beta, rgbim=rgb, compat=w1)
    q = np.asarray(crf.inference(iterations)).reshape(2, height, width)
    return q[1] > q[0]
