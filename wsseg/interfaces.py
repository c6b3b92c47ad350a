"""The three plugin interfaces: CAM generators, pseudo-labelers and segmenters.

Every array crossing these interfaces is a NumPy array on the CPU:

- images are ``float32`` in ``[0, 1]``, shape ``(N, H, W)`` (one row per slice);
- myocardium maps are ``float32`` probabilities in ``[0, 1]`` on the same grid;
- masks are ``bool`` (or ``{0, 1}``) on the same grid.

Plugins choose their own device for the work in between (``self.device``).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Literal

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict

if TYPE_CHECKING:
    from wsseg.training import Monitor

Level = Literal["slice", "stack"]
"""Strength of a weak label: one per slice, or one per stack (case)."""


class PluginConfig(BaseModel):
    """Base of every plugin's configuration; unknown keys are errors."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


class Plugin(ABC):
    """What all plugins share: a validated config, a device and a seed."""

    Config: ClassVar[type[PluginConfig]] = PluginConfig

    def __init__(self, config: PluginConfig | dict | None = None, *, device: str | torch.device = "cpu", seed: int = 0):
        if config is None:
            config = self.Config()
        elif isinstance(config, dict):
            config = self.Config.model_validate(config)
        self.config = config
        self.device = torch.device(device)
        self.seed = seed


@dataclass
class WeakSet:
    """Slices with weak labels, as a CAM generator sees them.

    ``stack_ids`` groups slices into stacks: the slices of one stack are contiguous and in
    through-plane order. ``labels`` holds one weak label per slice; at stack level it is the
    stack's label repeated on each of its slices. It may be ``None`` when only inference is asked.
    """

    images: np.ndarray
    myocardium: np.ndarray
    stack_ids: np.ndarray
    labels: np.ndarray | None = None

    def __post_init__(self) -> None:
        n = len(self.images)
        if self.images.ndim != 3 or self.myocardium.shape != self.images.shape:
            raise ValueError(f"images and myocardium must both be (N, H, W); got {self.images.shape} and {self.myocardium.shape}")
        if self.stack_ids.shape != (n,) or (self.labels is not None and np.shape(self.labels) != (n,)):
            raise ValueError("stack_ids and labels need one entry per slice")

    def stacks(self) -> list[np.ndarray]:
        """Slice indices of each stack, in order of first appearance."""
        _, first = np.unique(self.stack_ids, return_index=True)
        order = self.stack_ids[np.sort(first)]
        return [np.flatnonzero(self.stack_ids == s) for s in order]


@dataclass
class CAMOutput:
    """What a CAM generator produces for a :class:`WeakSet`.

    ``cams``: ``(N, h, w)`` float32, unbounded, on the generator's own grid (often coarser than
    the images). ``slice_scores``: ``(N,)`` fibrosis probability per slice. ``stack_scores``: one
    probability per stack, in the order of :meth:`WeakSet.stacks`.
    """

    cams: np.ndarray
    slice_scores: np.ndarray
    stack_scores: np.ndarray


class CAMGenerator(Plugin):
    """Learns a fibrosis classifier from weak labels and explains it with class activation maps."""

    levels: ClassVar[tuple[Level, ...]] = ("slice", "stack")
    """The weak-label levels this generator can be trained on."""

    @abstractmethod
    def fit(self, train: WeakSet, level: Level, *, val: WeakSet | None = None, monitor: Monitor | None = None) -> None:
        """Train on ``train.labels`` (weak labels at ``level``). Never reads pixel fibrosis labels."""

    @abstractmethod
    def generate(self, data: WeakSet) -> CAMOutput:
        """CAMs and classification scores for every slice of ``data`` (its labels are ignored)."""

    @abstractmethod
    def state_dict(self) -> dict[str, Any]:
        """Everything needed to rebuild the trained generator (tensors and plain values)."""

    @abstractmethod
    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a generator saved with :meth:`state_dict`."""


class PseudoLabeler(Plugin):
    """Turns one slice's CAM into a binary pixel pseudo-label."""

    @abstractmethod
    def label(self, cam: np.ndarray, image: np.ndarray, myocardium: np.ndarray, weak_label: bool) -> np.ndarray:
        """Return a ``bool`` mask on the image grid ``(H, W)``.

        ``cam`` is ``(h, w)`` on the generator's grid; ``image`` and ``myocardium`` are ``(H, W)``.
        A negative ``weak_label`` must give an empty mask.
        """


class Segmenter(Plugin):
    """A pixel classifier trained on binary masks (myocardium or fibrosis)."""

    @abstractmethod
    def fit(
        self,
        inputs: np.ndarray,
        targets: np.ndarray,
        *,
        val_inputs: np.ndarray | None = None,
        val_targets: np.ndarray | None = None,
        monitor: Monitor | None = None,
    ) -> None:
        """Train on ``inputs`` ``(N, C, H, W)`` float32 and ``targets`` ``(N, H, W)`` in {0, 1}."""

    @abstractmethod
    def predict(self, inputs: np.ndarray) -> np.ndarray:
        """Probabilities ``(N, H, W)`` float32 in [0, 1] for ``inputs`` ``(N, C, H, W)``."""

    @abstractmethod
    def state_dict(self) -> dict[str, Any]:
        """Everything needed to rebuild the trained segmenter (tensors and plain values)."""

    @abstractmethod
    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a segmenter saved with :meth:`state_dict`."""
