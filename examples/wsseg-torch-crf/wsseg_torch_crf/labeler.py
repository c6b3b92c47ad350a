"""The ``torch-crf`` pseudo-labeler: otsu-crf's steps, the CRF in PyTorch on the chosen device."""

from __future__ import annotations

from typing import ClassVar, Literal

import numpy as np
import torch
from pydantic import Field
from wsseg.training import resolve_device
from wsseg_otsu_crf import OtsuCRFConfig, OtsuCRFLabeler

from wsseg_torch_crf.crf import mean_field_crf


class TorchCRFConfig(OtsuCRFConfig):
    """otsu-crf's options (same meaning, same defaults) plus the device of the CRF."""

    device: Literal["auto", "cpu", "cuda"] = Field("auto", description="where the CRF runs; auto = CUDA when present")


class TorchCRFLabeler(OtsuCRFLabeler):
    """CAM -> probabilities in [0.5, 1] -> Multi-Otsu suppression -> mean-field CRF (PyTorch) -> mask.

    Everything but the CRF is wsseg-otsu-crf's own labeler, so the two differ only in :meth:`refine`.
    """

    Config: ClassVar[type[TorchCRFConfig]] = TorchCRFConfig
    config: TorchCRFConfig

    def refine(self, probability: np.ndarray, image: np.ndarray) -> np.ndarray:
        """The CRF step in PyTorch, on ``config.device``."""
        cfg = self.config
        device = resolve_device(cfg.device)
        refined = mean_field_crf(
            torch.from_numpy(probability).to(device),
            torch.from_numpy(np.asarray(image, np.float32)).to(device),
            iterations=cfg.crf_iterations,
            w1=cfg.w1,
            w2=cfg.w2,
            theta_gamma=cfg.theta_gamma,
            theta_alpha=cfg.theta_alpha,
            theta_beta=cfg.theta_beta,
        )
        return refined.cpu().numpy()
