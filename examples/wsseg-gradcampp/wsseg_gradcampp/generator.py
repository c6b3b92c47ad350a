"""The ``gradcam-pp`` CAM generator: drn-attention's classifier, explained with Grad-CAM++."""

from __future__ import annotations

from typing import ClassVar

import numpy as np
import torch
from pydantic import Field

from wsseg.interfaces import CAMOutput, PluginConfig, WeakSet
from wsseg_drn_attention import DRNAttentionCAM, DRNAttentionConfig
from wsseg_drn_attention.pooling import restricted_average
from wsseg_gradcampp.gradcampp import grad_cam_plus_plus


class GradCAMPlusPlusConfig(DRNAttentionConfig):
    """drn-attention's options (same classifier, same training) plus where the map is kept."""

    restrict: bool = Field(True, description="zero the map outside the myocardium pooling mask, as drn-attention's CAM")


class GradCAMPlusPlus(DRNAttentionCAM):
    """Training, scores and checkpoints of ``drn-attention``; the maps are Grad-CAM++ of the slice logit.

    The features are the attention block's output (the input of the 1x1 CAM head), so the maps
    lie on the same 1/4-resolution grid. Both levels explain each slice's own pooled logit.
    """

    Config: ClassVar[type[PluginConfig]] = GradCAMPlusPlusConfig
    config: GradCAMPlusPlusConfig

    def generate(self, data: WeakSet) -> CAMOutput:
        output = super().generate(data)  # scores, and the "needs a trained model" check
        return CAMOutput(cams=self.saliency(data), slice_scores=output.slice_scores, stack_scores=output.stack_scores)

    def saliency(self, data: WeakSet) -> np.ndarray:
        """Grad-CAM++ maps ``(N, H/4, W/4)`` float32 of each slice's logit."""
        x = self.network_inputs(data)
        model = self.model.eval()
        maps = [np.zeros((0, x.shape[2] // 4, x.shape[3] // 4), np.float32)]
        for start in range(0, len(x), self.config.batch_size):
            xb = x[start : start + self.config.batch_size].to(self.device)
            with torch.no_grad():
                features = model.features(xb)
            features.requires_grad_(True)
            cam = model.head(features)
            mask = model.pooling_mask(xb, tuple(cam.shape[-2:])).to(cam.dtype)
            logits = restricted_average(cam, mask, self.config.pool_divisor)
            (grads,) = torch.autograd.grad(logits.sum(), features)  # slices are independent in eval mode
            saliency = grad_cam_plus_plus(features.detach(), grads)
            if self.config.restrict:
                saliency = saliency * mask[:, 0]
            maps.append(saliency.cpu().numpy().astype(np.float32))
        return np.concatenate(maps)
