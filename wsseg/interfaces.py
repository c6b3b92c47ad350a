"""The plugin contract: three interfaces (CAM generators, pseudo-labelers, segmenters) and what they share.

Every array crossing these interfaces is a NumPy array on the CPU:

- images are ``float32`` in ``[0, 1]``, shape ``(N, H, W)`` (one row per slice);
- myocardium maps are ``float32`` probabilities in ``[0, 1]`` on the same grid;
- masks are ``bool`` (or ``{0, 1}``) on the same grid.

Rules every plugin keeps (docs/plugins.md explains them at length):

- **Versioned.** A plugin class sets ``api_version`` to the :data:`API_VERSION` it was written
  for; the registry refuses a class written for another version.
- **Only what it is handed.** A method reads what the interface gives it and nothing else: no
  files of its own, no pixel fibrosis labels in a CAM generator.
- **Seeded.** Same config, same ``self.seed``, same inputs and device: same outputs. Seed every
  random source from ``self.seed``.
- **One case at a time.** The stages call ``generate``, ``label`` and ``predict`` for one case (one
  stack) at a time, so a case's output must not depend on the other cases of a call.
- **Several processes.** Under torchrun, training runs in every process;
  :func:`wsseg.training.train_loop` wraps the model in DistributedDataParallel, and a plugin's
  batches yield :func:`wsseg.distributed.local_share` of each global batch, after drawing the
  batch's random numbers.
- **Saved as data.** ``state_dict`` holds tensors and plain values only: model files are read
  with ``torch.load(weights_only=True)``, which refuses anything else.

Plugins choose their own device for the work in between (``self.device``).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Literal, Protocol

import numpy as np
from pydantic import BaseModel, ConfigDict

if TYPE_CHECKING:
    import torch

__all__ = [
    "API_VERSION",
    "CAMGenerator",
    "CAMOutput",
    "Level",
    "Monitor",
    "Plugin",
    "PluginConfig",
    "PseudoLabeler",
    "Segmenter",
    "WeakSet",
]

API_VERSION = 1
"""The version of this contract. Set ``api_version = API_VERSION`` on a plugin class written for it."""

Level = Literal["slice", "stack"]
"""Strength of a weak label: one per slice, or one per stack (case)."""


class Monitor(Protocol):
    """What ``fit`` may call on the monitor it is given (the stages pass :class:`wsseg.training.Monitor`).

    Call :meth:`epochs` once for the epoch loop and :meth:`log` once per epoch; the figures become
    the training curves of the report. ``fit`` may also be given ``None``: then log nothing, or
    build a ``wsseg.training.Monitor`` of your own. :func:`wsseg.training.train_loop` does both.
    """

    name: str
    history: list[dict[str, float]]

    def epochs(self, n: int) -> Iterator[int]:
        """Yield ``0..n-1`` behind a progress bar."""
        ...

    def log(self, **metrics: float) -> None:
        """Record one epoch's figures (``loss``, ``val_dice``, ``val_auroc``...)."""
        ...


class PluginConfig(BaseModel):
    """Base of every plugin's configuration: unknown keys and non-finite numbers are errors.

    Give every field a default (a plugin must run with ``config: {}``), bounds and a description.
    """

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


class Plugin(ABC):  # noqa: B024 (abstract: the three interfaces below add the abstract methods)
    """What all plugins share: a validated config, a device and a seed.

    Override ``__init__`` only to add state, calling ``super().__init__`` first.
    """

    Config: ClassVar[type[PluginConfig]] = PluginConfig
    api_version: ClassVar[int | None] = None
    """The :data:`API_VERSION` the class was written for; the registry refuses any other."""

    def __init__(self, config: PluginConfig | dict | None = None, *, device: str | torch.device = "cpu", seed: int = 0):
        import torch  # here rather than at the top: reading params and the registry does not load torch

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
            raise ValueError(
                f"images and myocardium must both be (N, H, W); got {self.images.shape} and {self.myocardium.shape}"
            )
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
    """A pixel classifier trained on binary masks (myocardium or fibrosis).

    A stage may also pass class maps ``0..K`` whose class ``K`` is the one to segment and ``1..K-1`` are
    context (``myocardium.additions.cavity_class``: background, cavity, wall); a segmenter that only
    learns binary masks should raise ``ValueError`` for them.
    """

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
        """Train on ``inputs`` ``(N, C, H, W)`` float32 and ``targets`` ``(N, H, W)`` in {0, 1} (or ``0..K``)."""

    @abstractmethod
    def predict(self, inputs: np.ndarray) -> np.ndarray:
        """Probabilities ``(N, H, W)`` float32 in [0, 1] of the mask (or of class ``K``) for ``inputs``."""

    @abstractmethod
    def state_dict(self) -> dict[str, Any]:
        """Everything needed to rebuild the trained segmenter (tensors and plain values)."""

    @abstractmethod
    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a segmenter saved with :meth:`state_dict`."""
