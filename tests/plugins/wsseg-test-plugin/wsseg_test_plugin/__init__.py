"""A minimal third-party pseudo-labeler, installed only for the test suite."""

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import Field

from wsseg import PluginConfig, PseudoLabeler


class CAMThresholdConfig(PluginConfig):
    fraction: float = Field(0.5, gt=0, lt=1, description="keep pixels above this fraction of the CAM's max")


class CAMThresholdLabeler(PseudoLabeler):
    """Pseudo-label = bilinear-resized CAM above a fraction of its maximum."""

    api_version = 1

    Config = CAMThresholdConfig

    def label(self, cam, image, myocardium, weak_label):
        if not weak_label or cam.max() <= 0:
            return np.zeros(image.shape, bool)
        resized = F.interpolate(
            torch.from_numpy(cam[None, None].astype(np.float32)), size=image.shape, mode="bilinear"
        )[0, 0].numpy()
        return resized > self.config.fraction * resized.max()
