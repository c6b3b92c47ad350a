"""The ``torch-crf`` pseudo-labeler: otsu-crf's steps, the CRF in PyTorch on the chosen device."""

from __future__ import annotations

from typing import ClassVar, Literal

import numpy as np
import torch
from pydantic import Field
from wsseg.interfaces import PseudoLabeler
from wsseg.training import resolve_device
from wsseg_otsu_crf import OtsuCRFConfig, cam_to_probability, otsu_suppress

from wsseg_torch_crf.crf import mean_field_crf


class TorchCRFConfig(OtsuCRFConfig):
    """otsu-crf's options (same meaning, same defaults) plus the device of the CRF."""

    device: Literal["auto", "cpu", "cuda"] = Field("auto", description="where the CRF runs; auto = CUDA when present")


class TorchCRFLabeler(PseudoLabeler):
    """CAM -> probabilities in [0.5, 1] -> Multi-Otsu suppression -> mean-field CRF (PyTorch) -> mask.

    The first two steps are wsseg-otsu-crf's own functions, so the two labelers differ only in the CRF.
    """

    Config: ClassVar[type[TorchCRFConfig]] = TorchCRFConfig
    config: TorchCRFConfig

    def label(self, cam: np.ndarray, image: np.ndarray, myocardium: np.ndarray, weak_label: bool) -> np.ndarray:
        """Binary ``(H, W)`` pseudo-label; all ``False`` for a negative ``weak_label``."""
        if not weak_label:
            return np.zeros(image.shape, dtype=bool)
        cfg = self.config
        mask = None if cfg.myocardium_threshold is None else myocardium >= cfg.myocardium_threshold
        prob = cam_to_probability(cam, image.shape, mask)
        if cfg.otsu:
            prob = otsu_suppress(prob, image, cfg.otsu_classes)
        if not cfg.crf:
            return prob >= cfg.threshold
        device = resolve_device(cfg.device)
        refined = mean_field_crf(
            torch.from_numpy(prob).to(device),
            torch.from_numpy(np.asarray(image, np.float32)).to(device),
            iterations=cfg.crf_iterations,
            w1=cfg.w1,
            w2=cfg.w2,
            theta_gamma=cfg.theta_gamma,
            theta_alpha=cfg.theta_alpha,
            theta_beta=cfg.theta_beta,
        )
        return refined.cpu().numpy()
