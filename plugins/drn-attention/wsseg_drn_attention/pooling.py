"""Myocardium-restricted global average pooling of a CAM.

The myocardium probability map is dilated (``dilation x dilation`` max-pool, stride 1), downsampled to
the CAM grid by area averaging, and thresholded (``> threshold``, reference 0.4) into a mask. CAM
pixels outside the mask are set to zero (the *restricted* CAM) and the result is averaged:

- ``divisor="all"`` divides by every CAM pixel (the reference scripts' choice), so a small
  myocardium gives a logit closer to 0;
- ``divisor="myocardium"`` divides by the mask area (a true mean over the myocardium; an empty
  mask gives logit 0).

With ``groups`` (an index in ``[0, S)`` per slice) the average runs over all slices of each group
at once: one logit per stack, for stacks of any depth, without padding.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

Divisor = Literal["all", "myocardium"]


def myocardium_mask(myocardium: Tensor, size: tuple[int, int], threshold: float = 0.4, dilation: int = 3) -> Tensor:
    """Binary (float 0/1) mask ``(N, 1, *size)`` from myocardium probabilities ``(N, 1, H, W)`` or ``(N, H, W)``."""
    if myocardium.dim() == 3:
        myocardium = myocardium.unsqueeze(1)
    m = myocardium.float()
    if dilation > 1:
        m = F.max_pool2d(m, dilation, stride=1, padding=dilation // 2)
    if tuple(m.shape[-2:]) != tuple(size):
        m = F.interpolate(m, size=size, mode="area")
    return (m > threshold).to(m.dtype)


def restrict(cam: Tensor, mask: Tensor) -> Tensor:
    """The restricted CAM: ``cam`` where ``mask`` is set, exactly 0 elsewhere (even for inf/nan)."""
    return torch.where(mask > 0, cam, torch.zeros((), dtype=cam.dtype, device=cam.device))


def restricted_average(
    cam: Tensor,
    mask: Tensor,
    divisor: Divisor = "all",
    groups: Tensor | None = None,
    num_groups: int | None = None,
) -> Tensor:
    """Average of the restricted CAM: ``(N,)`` logits, or ``(S,)`` with ``groups`` (``(N,)`` ints in ``[0, S)``)."""
    if divisor not in ("all", "myocardium"):
        raise ValueError(f"divisor must be 'all' or 'myocardium', got {divisor!r}")
    restricted = restrict(cam, mask)
    sums = restricted.flatten(1).sum(1)
    if divisor == "all":
        counts = torch.full_like(sums, float(restricted[0].numel()))
    else:
        counts = (mask > 0).flatten(1).sum(1).to(sums.dtype)
    if groups is not None:
        if num_groups is None:
            num_groups = int(groups.max()) + 1 if groups.numel() else 0
        # a one-hot matrix product instead of index_add_: deterministic on CUDA as well
        onehot = F.one_hot(groups.long().to(sums.device), num_groups).to(sums.dtype).T  # (S, N)
        sums, counts = onehot @ sums, onehot @ counts
    return sums / counts.clamp(min=1.0)


def myocardium_restricted_pool(
    cam: Tensor,
    myocardium: Tensor,
    *,
    threshold: float = 0.4,
    dilation: int = 3,
    divisor: Divisor = "all",
    groups: Tensor | None = None,
    num_groups: int | None = None,
) -> tuple[Tensor, Tensor]:
    """Logits and restricted CAM for ``cam`` ``(N, 1, h, w)`` and myocardium probabilities on the input grid.

    Returns ``(logits, restricted_cam)``: logits ``(N,)`` (or ``(S,)`` with ``groups``), restricted CAM
    ``(N, 1, h, w)`` (what entered the average).
    """
    mask = myocardium_mask(myocardium, tuple(cam.shape[-2:]), threshold, dilation).to(cam.dtype)
    return restricted_average(cam, mask, divisor, groups, num_groups), restrict(cam, mask)


class MyocardiumRestrictedPool(nn.Module):
    """Module form of :func:`myocardium_restricted_pool` (no parameters)."""

    def __init__(self, threshold: float = 0.4, dilation: int = 3, divisor: Divisor = "all"):
        super().__init__()
        if divisor not in ("all", "myocardium"):
            raise ValueError(f"divisor must be 'all' or 'myocardium', got {divisor!r}")
        if dilation < 1 or dilation % 2 == 0:
            raise ValueError(f"dilation must be a positive odd kernel size, got {dilation}")
        self.threshold = float(threshold)
        self.dilation = int(dilation)
        self.divisor: Divisor = divisor

    def mask(self, myocardium: Tensor, size: tuple[int, int]) -> Tensor:
        return myocardium_mask(myocardium, size, self.threshold, self.dilation)

    def forward(
        self, cam: Tensor, myocardium: Tensor, groups: Tensor | None = None, num_groups: int | None = None
    ) -> tuple[Tensor, Tensor]:
        return myocardium_restricted_pool(
            cam,
            myocardium,
            threshold=self.threshold,
            dilation=self.dilation,
            divisor=self.divisor,
            groups=groups,
            num_groups=num_groups,
        )

    def extra_repr(self) -> str:
        return f"threshold={self.threshold}, dilation={self.dilation}, divisor={self.divisor!r}"
