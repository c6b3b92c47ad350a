"""The ``otsu-crf`` pseudo-labeler: step 3 of the method (docs/method.md) as a ``PseudoLabeler``."""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from wsseg.interfaces import PseudoLabeler
from wsseg_otsu_crf.config import OtsuCRFConfig
from wsseg_otsu_crf.crf import dense_crf
from wsseg_otsu_crf.otsu import otsu_suppress
from wsseg_otsu_crf.probability import cam_to_probability


class OtsuCRFLabeler(PseudoLabeler):
    """CAM -> probabilities in [0.5, 1] -> Multi-Otsu suppression -> DenseCRF -> binary mask.

    The CAM arrives restricted to the myocardium on its own coarse grid; bilinear resizing spreads it
    into the bright blood pool next to the wall. ``myocardium_threshold`` restricts it again on the
    image grid before Otsu and the CRF (off by default, as in the paper).
    """

    api_version = 1

    Config: ClassVar[type[OtsuCRFConfig]] = OtsuCRFConfig
    config: OtsuCRFConfig

    def label(self, cam: np.ndarray, image: np.ndarray, myocardium: np.ndarray, weak_label: bool) -> np.ndarray:
        """Binary ``(H, W)`` pseudo-label; all ``False`` for a negative ``weak_label``."""
        if image.ndim != 2 or myocardium.shape != image.shape:
            raise ValueError(f"image and myocardium must both be (H, W); got {image.shape} and {myocardium.shape}")
        if not weak_label:
            return np.zeros(image.shape, dtype=bool)
        cfg = self.config
        mask = None if cfg.myocardium_threshold is None else myocardium >= cfg.myocardium_threshold
        prob = cam_to_probability(cam, image.shape, mask)
        if cfg.otsu:
            prob = otsu_suppress(prob, image, cfg.otsu_classes)
        if not cfg.crf:
            return prob >= cfg.threshold
        return self.refine(prob, image)

    def refine(self, probability: np.ndarray, image: np.ndarray) -> np.ndarray:
        """The CRF step: probabilities ``(H, W)`` in [0, 1] and the image -> binary mask (pydensecrf)."""
        return dense_crf(probability, image, **self.config.crf_kwargs())
