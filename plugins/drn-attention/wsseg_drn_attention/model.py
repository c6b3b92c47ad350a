"""CAMNet: DRN-D-22 backbone -> non-local attention -> 1x1 head = CAM, with myocardium-restricted pooling.

Input ``(N, 2, H, W)``: channel 0 the LGE image, channel 1 the myocardium probability (also the source
of the pooling mask). Output CAM ``(N, 1, H/4, W/4)``, unbounded.

Slice and stack level share one network. The stack model of the paper replaces every kxk kernel by a
kxkx1 kernel; here the slices of all stacks are instead folded into the batch dimension. The two are
mathematically identical:

- ``Conv3d`` with kernel ``(1, k, k)`` on ``(B, C, D, H, W)`` applies the same 2D kernel to each depth
  plane independently, which is ``Conv2d`` with that kernel on ``(B*D, C, H, W)``;
- ``BatchNorm3d`` normalises each channel over ``(B, D, H, W)``, the same elements ``BatchNorm2d``
  sees on ``(B*D, C, H, W)`` (train-mode statistics) and the same affine map in eval mode;
- ReLU, residual sums and 1x1 convs are pointwise; the attention runs per slice.

Folding avoids zero-padding stacks to a common depth: variable-depth stacks are concatenated and a
stack index per slice (``groups``) tells the pooling which slices form one stack. In eval mode no
slice's CAM depends on any other slice.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from wsseg.training import in_bfloat16
from wsseg_drn_attention.attention import NonLocalAttention
from wsseg_drn_attention.drn import DEFAULT_CHANNELS, DRND22
from wsseg_drn_attention.pooling import Divisor, MyocardiumRestrictedPool, restrict, restricted_average

MYOCARDIUM_CHANNEL = 1
"""Index of the myocardium probability channel in the network input."""


class CAMNet(nn.Module):
    """Fibrosis classifier whose last layer is a class activation map."""

    def __init__(
        self,
        in_channels: int = 2,
        channels: Sequence[int] = DEFAULT_CHANNELS,
        attention: bool = True,
        attention_reduction: int = 8,
        pool_divisor: Divisor = "all",
        myo_threshold: float = 0.4,
        myo_dilation: int = 3,
    ):
        super().__init__()
        self.backbone = DRND22(in_channels, channels)
        c = self.backbone.out_channels
        self.attention: nn.Module = NonLocalAttention(c, attention_reduction) if attention else nn.Identity()
        self.head = nn.Conv2d(c, 1, 1)
        self.pool = MyocardiumRestrictedPool(myo_threshold, myo_dilation, pool_divisor)
        self.bfloat16 = False

    def compute_in_bfloat16(self) -> CAMNet:
        """Run the backbone, attention and head in bfloat16, channels last (for devices that do so
        natively); the CAM and everything pooled from it stay float32."""
        self.bfloat16 = True
        return self.to(memory_format=torch.channels_last)

    def features(self, x: Tensor) -> Tensor:
        """The attention block's output ``(N, C', H/4, W/4)``, which the 1x1 head turns into the CAM."""
        if x.dim() != 4 or x.shape[-2] % 4 or x.shape[-1] % 4:
            raise ValueError(f"CAMNet wants (N, C, H, W) with H and W divisible by 4, got {tuple(x.shape)}")
        return self.attention(self.backbone(x))

    def forward(self, x: Tensor) -> Tensor:
        """CAM ``(N, 1, H/4, W/4)``, float32, of ``x`` ``(N, C, H, W)``; H and W must be divisible by 4."""
        return in_bfloat16(self._cam, x) if self.bfloat16 else self._cam(x)

    def _cam(self, x: Tensor) -> Tensor:
        return self.head(self.features(x))

    def pooling_mask(self, x: Tensor, size: tuple[int, int]) -> Tensor:
        """The myocardium pooling mask (float 0/1) of input ``x`` on a ``size`` grid: ``(N, 1, *size)``."""
        return self.pool.mask(x[:, MYOCARDIUM_CHANNEL : MYOCARDIUM_CHANNEL + 1], size)

    def cam_and_mask(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """The raw CAM and the pooling mask (float 0/1), both ``(N, 1, H/4, W/4)``."""
        cam = self(x)
        return cam, self.pooling_mask(x, tuple(cam.shape[-2:])).to(cam.dtype)

    def restricted_cam(self, x: Tensor) -> Tensor:
        """The CAM with every pixel outside the pooling mask set to 0: ``(N, 1, H/4, W/4)``."""
        return restrict(*self.cam_and_mask(x))

    def slice_logits(self, x: Tensor) -> Tensor:
        """One logit per slice ``(N,)``: restricted average of each slice's CAM."""
        cam, mask = self.cam_and_mask(x)
        return restricted_average(cam, mask, self.pool.divisor)

    def stack_logits(self, x: Tensor, groups: Tensor, num_groups: int | None = None) -> Tensor:
        """One logit per stack ``(S,)``: restricted average over all slices of each stack.

        ``x`` holds the slices of all stacks folded into the batch ``(sum of depths, C, H, W)``;
        ``groups`` ``(N,)`` gives each slice's stack index in ``[0, S)`` (equivalent to a 3D model
        with kxkx1 kernels, see the module docstring).
        """
        cam, mask = self.cam_and_mask(x)
        return restricted_average(cam, mask, self.pool.divisor, groups, num_groups)


def cam_net(channels: Sequence[int] = DEFAULT_CHANNELS, **kwargs) -> CAMNet:
    """Build a :class:`CAMNet` for 2-channel (image, myocardium) input."""
    return CAMNet(2, channels, **kwargs)


__all__ = ["MYOCARDIUM_CHANNEL", "CAMNet", "cam_net"]
