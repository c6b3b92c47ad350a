"""The training loop shared by every plugin: device choice, seeding, progress and curves."""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from torch import nn


def resolve_device(device: str = "auto") -> torch.device:
    """``auto`` picks CUDA when it is there, the CPU otherwise; ``cuda`` without a GPU is an error."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError("device 'cuda' was asked for, but PyTorch sees no CUDA GPU (use --device auto or cpu)")
    return torch.device(device)


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and PyTorch, and ask PyTorch for deterministic kernels."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True, warn_only=True)


def progress_bar(transient: bool = False) -> Progress:
    """The rich progress bar used on every long loop: description, bar, count, elapsed, ETA."""
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TextColumn("{task.fields[status]}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        transient=transient,
    )


def track(items: Iterable, description: str, total: int | None = None) -> Iterator:
    """Iterate over ``items`` behind a progress bar with an ETA."""
    total = total if total is not None else len(items)  # type: ignore[arg-type]
    with progress_bar() as progress:
        task = progress.add_task(description, total=total, status="")
        for item in items:
            yield item
            progress.advance(task)


class Monitor:
    """Progress bar and training curves (DVCLive) for one model's training.

    ``curves_dir=None`` keeps curves in memory only (``history``), as tests want.
    """

    def __init__(self, name: str, curves_dir: str | Path | None = None):
        self.name = name
        self.history: list[dict[str, float]] = []
        self._live = None
        if curves_dir is not None:
            from dvclive import Live

            self._live = Live(str(curves_dir), save_dvc_exp=False, dvcyaml=None, report=None)

    def epochs(self, n: int) -> Iterator[int]:
        """Yield epoch numbers ``0..n-1`` behind a progress bar that shows the last metrics."""
        with progress_bar() as progress:
            self._progress = progress
            self._task = progress.add_task(f"train {self.name}", total=n, status="")
            for epoch in range(n):
                yield epoch
                progress.advance(self._task)
        if self._live is not None:
            self._live.end()

    def log(self, **metrics: float) -> None:
        """Record one epoch's metrics (loss, validation scores...)."""
        self.history.append(dict(metrics))
        if getattr(self, "_progress", None) is not None:
            self._progress.update(self._task, status=" ".join(f"{k}={v:.4f}" for k, v in metrics.items()))
        if self._live is not None:
            for key, value in metrics.items():
                self._live.log_metric(key, float(value))
            self._live.next_step()


def train_loop(
    model: nn.Module,
    batches: Callable[[np.random.Generator], Iterable[Any]],
    loss: Callable[[nn.Module, Any], torch.Tensor],
    *,
    epochs: int,
    lr: float,
    seed: int = 0,
    monitor: Monitor | None = None,
    validate: Callable[[nn.Module], dict[str, float]] | None = None,
) -> list[dict[str, float]]:
    """Train ``model`` with Adam for ``epochs`` epochs.

    ``batches(rng)`` yields one epoch of batches (shuffled with ``rng``); ``loss(model, batch)``
    returns the scalar loss of one batch (moving the batch to the model's device is its job).
    ``validate(model)`` is called in eval mode after each epoch and its figures are logged.
    """
    monitor = monitor or Monitor(type(model).__name__)
    rng = np.random.default_rng(seed)
    optimiser = torch.optim.Adam(model.parameters(), lr=lr)
    for _ in monitor.epochs(epochs):
        model.train()
        total, count = 0.0, 0
        for batch in batches(rng):
            optimiser.zero_grad()
            value = loss(model, batch)
            value.backward()
            optimiser.step()
            total += float(value.detach())
            count += 1
        metrics = {"loss": total / max(count, 1)}
        if validate is not None:
            model.eval()
            with torch.no_grad():
                metrics.update(validate(model))
        monitor.log(**metrics)
    model.eval()
    return monitor.history


def minibatches(n: int, batch_size: int, rng: np.random.Generator, shuffle: bool = True) -> Iterator[np.ndarray]:
    """Index arrays of one epoch over ``n`` items."""
    order = rng.permutation(n) if shuffle else np.arange(n)
    for start in range(0, n, batch_size):
        yield order[start : start + batch_size]
