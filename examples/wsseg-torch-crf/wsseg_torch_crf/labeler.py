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
        device = resolve_device(self.config.device)
        probability_t = torch.from_numpy(probability).to(device)
        image_t = torch.from_numpy(np.asarray(image, np.float32)).to(device)
        return mean_field_crf(probability_t, image_t, **self.config.crf_kwargs()).cpu().numpy()
