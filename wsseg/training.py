"""The training loop shared by every plugin: device choice, seeding, progress, curves and resuming."""

from __future__ import annotations

import random
import re
import warnings
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from wsseg import distributed
from wsseg.atomic import atomic_path
from wsseg.errors import ConfigError, excerpt
from wsseg.hashing import config_hash
from wsseg.progress import progress_bar

__all__ = [
    "Monitor",
    "in_bfloat16",
    "minibatches",
    "native_bfloat16",
    "resolve_device",
    "seed_everything",
    "train_loop",
]


def resolve_device(device: str = "auto") -> torch.device:
    """``auto`` picks CUDA when it is there, the CPU otherwise; ``cuda`` without a GPU, or another name, is an error."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if not re.fullmatch(r"cpu|cuda(:[0-9]{1,3})?", device):
        raise ValueError(f"--device: expected auto, cpu, cuda or cuda:N, got {excerpt(device)}")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError("device 'cuda' was asked for, but PyTorch sees no CUDA GPU (use --device auto or cpu)")
    return torch.device(device)


def native_bfloat16(device: torch.device | str) -> bool:
    """Whether ``device`` computes in bfloat16 natively: a CUDA GPU that supports it, or a CPU with AMX
    or AVX512-BF16. Elsewhere (e.g. an AVX2-only CPU) bfloat16 is emulated and far slower than float32."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    checks = ("_is_amx_tile_supported", "_is_avx512_bf16_supported")  # private, so looked up with a fallback
    return device.type == "cpu" and any(getattr(torch.cpu, check, lambda: False)() for check in checks)


def in_bfloat16(forward: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    """``forward(x)`` under bfloat16 autocast with ``x`` channels last; the result in float32."""
    with torch.autocast(x.device.type, dtype=torch.bfloat16):
        return forward(x.contiguous(memory_format=torch.channels_last)).float()


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and PyTorch, and ask PyTorch for deterministic kernels."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True, warn_only=True)


class Monitor:
    """Progress bar, training curves (DVCLive) and resume checkpoint for one model's training.

    ``curves_dir=None`` keeps curves in memory only (``history``), as tests want. With ``resume``
    (a file path), :func:`train_loop` saves a checkpoint there after every epoch and resumes from
    it when it was made by the same ``config`` (a hash of whatever the training depends on).
    Under torchrun only rank 0 shows progress and writes curves and checkpoints.
    """

    def __init__(
        self, name: str, curves_dir: str | Path | None = None, *, resume: str | Path | None = None, config: str = ""
    ):
        self.name = name
        self.curves_dir = Path(curves_dir) if curves_dir is not None else None
        self.resume = Path(resume) if resume is not None else None
        self.config = config
        self.history: list[dict[str, float]] = []
        self._live = None
        if curves_dir is not None and distributed.is_main():
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

    def retraining(self, round_: int) -> Monitor:
        """A monitor for training the same model again (a self-training round): its curves beside these,
        in ``<curves>-round<k>``, and no resume checkpoint (a killed round starts again)."""
        return self._sibling(f"round{round_}", f"round {round_}")

    def member(self, k: int) -> Monitor:
        """A monitor for member ``k`` (from 1) of an ensemble: its curves in ``<curves>-member<k>``, and no
        resume checkpoint (a killed member starts again)."""
        return self._sibling(f"member{k}", f"member {k}")

    def _sibling(self, suffix: str, label: str) -> Monitor:
        curves = self.curves_dir.with_name(f"{self.curves_dir.name}-{suffix}") if self.curves_dir else None
        return Monitor(f"{self.name} ({label})", curves, config=self.config)

    def log(self, **metrics: float) -> None:
        """Record one epoch's metrics (loss, validation scores...)."""
        self.history.append(dict(metrics))
        if getattr(self, "_progress", None) is not None:
            self._progress.update(self._task, status=" ".join(f"{k}={v:.4f}" for k, v in metrics.items()))
        if self._live is not None:
            for key, value in metrics.items():
                self._live.log_metric(key, float(value))
            self._live.next_step()


def _resume_state(monitor: Monitor, fingerprint: str) -> dict | None:
    """The monitor's resume checkpoint if it exists, is readable and belongs to this training."""
    if monitor.resume is None or not monitor.resume.exists():
        return None
    try:
        state = torch.load(monitor.resume, map_location="cpu", weights_only=True)
    except Exception:  # an unreadable resume file only costs the epochs it held
        state = None
    if not isinstance(state, dict) or state.get("fingerprint") != fingerprint:
        warnings.warn(
            f"{monitor.resume} is from another configuration or unreadable: training {monitor.name} from the start",
            stacklevel=2,
        )
        return None
    return state


def _numpy_state() -> tuple:
    """NumPy's global RNG state with its key array as a list, so the checkpoint loads with ``weights_only``."""
    name, keys, *rest = np.random.get_state(legacy=True)
    return (name, np.asarray(keys).tolist(), *rest)


def _save_resume(
    monitor: Monitor,
    fingerprint: str,
    epoch: int,
    model: nn.Module,
    optimiser: torch.optim.Optimizer,
    scheduler,
    rng: np.random.Generator,
    best: dict | None,
) -> None:
    """Everything needed to continue after ``epoch`` exactly as if never stopped, written atomically."""
    state = {
        "fingerprint": fingerprint,
        "epochs_done": epoch + 1,
        "history": monitor.history,
        "model": model.state_dict(),
        "optimiser": optimiser.state_dict(),
        "scheduler": scheduler.state_dict() if scheduler is not None else None,
        "best": best,
        "rng": rng.bit_generator.state,
        "torch_rng": torch.get_rng_state(),
        "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "numpy_rng": _numpy_state(),
        "python_rng": random.getstate(),
    }
    assert monitor.resume is not None
    with atomic_path(monitor.resume) as tmp:
        torch.save(state, tmp)


def _restore(
    state: dict,
    monitor: Monitor,
    model: nn.Module,
    optimiser: torch.optim.Optimizer,
    scheduler,
    rng: np.random.Generator,
) -> int:
    """Load a resume checkpoint into the training objects and replay its curves; the epochs done."""
    model.load_state_dict(state["model"])
    optimiser.load_state_dict(state["optimiser"])
    if scheduler is not None:
        scheduler.load_state_dict(state["scheduler"])
    rng.bit_generator.state = state["rng"]
    torch.set_rng_state(state["torch_rng"])
    if state["cuda_rng"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda_rng"])
    name, keys, *rest = state["numpy_rng"]
    np.random.set_state((name, np.array(keys, dtype=np.uint32), *rest))
    random.setstate(state["python_rng"])
    for metrics in state["history"]:
        monitor.log(**metrics)
    return state["epochs_done"]


class _Loss(nn.Module):
    """``loss(model, batch)`` as a module's forward, so that DistributedDataParallel sees every step."""

    def __init__(self, model: nn.Module, loss: Callable[[nn.Module, Any], torch.Tensor]):
        super().__init__()
        self.model, self.loss = model, loss

    def forward(self, batch: Any) -> torch.Tensor:
        return self.loss(self.model, batch)


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
    cosine: bool = False,
    select: str | None = None,
) -> list[dict[str, float]]:
    """Train ``model`` with Adam for ``epochs`` epochs.

    ``batches(rng)`` yields one epoch of batches (shuffled with ``rng``); ``loss(model, batch)``
    returns the scalar loss of one batch (moving the batch to the model's device is its job).
    ``validate(model)`` is called in eval mode after each epoch and its figures are logged.
    ``cosine`` anneals the learning rate to 0 over the epochs; ``select`` names a figure of
    ``validate`` (higher is better) whose best epoch's weights the model ends with.
    When ``monitor.resume`` is set, a killed training picks up after its last finished epoch and
    ends, on the CPU, with exactly the weights of an uninterrupted one.

    Under torchrun the loss runs in DistributedDataParallel (gradients averaged over processes);
    ``batches`` should then yield each process's :func:`~wsseg.distributed.local_share` of the
    global batches. Rank 0 validates and broadcasts the figures; the logged loss is the mean over
    all processes.
    """
    monitor = monitor or Monitor(type(model).__name__)
    rng = np.random.default_rng(seed)
    optimiser = torch.optim.Adam(model.parameters(), lr=lr)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimiser, T_max=epochs) if cosine else None
    shapes = [(key, tuple(value.shape)) for key, value in model.state_dict().items()]
    fingerprint = config_hash(monitor.config, lr, seed, epochs, shapes, cosine, select)
    state = _resume_state(monitor, fingerprint)
    done = _restore(state, monitor, model, optimiser, scheduler, rng) if state is not None else 0
    best = state["best"] if state is not None else None  # {"epoch", "score", "weights"} of the selected epoch
    step = distributed.parallel(_Loss(model, loss), next(model.parameters()).device)
    for epoch in monitor.epochs(epochs):
        if epoch < done:
            continue
        model.train()
        total, count = 0.0, 0.0
        for batch in batches(rng):
            optimiser.zero_grad()
            value = step(batch)
            value.backward()
            optimiser.step()
            total += float(value.detach())
            count += 1.0
        if scheduler is not None:
            scheduler.step()
        total, count = distributed.sum_over_processes([total, count])
        metrics = {"loss": total / max(count, 1)}
        if validate is not None:
            model.eval()
            with torch.no_grad():
                figures = distributed.broadcast(validate(model) if distributed.is_main() else None)
            metrics.update(figures or {})
        monitor.log(**metrics)
        if select is not None and (best is None or metrics[select] > best["score"]):
            best = {
                "epoch": epoch,
                "score": metrics[select],
                "weights": {k: v.detach().clone() for k, v in model.state_dict().items()},
            }
        if monitor.resume is not None and distributed.is_main():
            _save_resume(monitor, fingerprint, epoch, model, optimiser, scheduler, rng, best)
    if best is not None:
        model.load_state_dict(best["weights"])
    model.eval()
    return monitor.history


def train_ensemble(
    build: Callable[[int], nn.Module], count: int, *, seed: int, monitor: Monitor | None = None, **train: Any
) -> tuple[list[nn.Module], list[dict[str, float]]]:
    """Train ``count`` networks with :func:`train_loop` (keywords ``train``): member ``k`` is ``build(s)``
    trained from seed ``s = seed + 1000 k``, its curves through ``monitor.member(k)`` (from 1).

    Returns the networks and the first one's history.
    """
    networks: list[nn.Module] = []
    history: list[dict[str, float]] = []
    for k in range(count):
        member_seed = seed + 1000 * k
        networks.append(build(member_seed))
        logged = train_loop(
            networks[-1], seed=member_seed, monitor=monitor.member(k) if monitor is not None and k else monitor, **train
        )
        if not k:
            history = logged
    return networks, history


def minibatches(n: int, batch_size: int, rng: np.random.Generator, shuffle: bool = True) -> Iterator[np.ndarray]:
    """Index arrays of one epoch's global batches over ``n`` items, the same in every process.

    Under torchrun a last batch with fewer items than processes is dropped (some process would
    have none), and ``batch_size`` must be at least the number of processes.
    """
    processes = distributed.world_size()
    if batch_size < processes:
        raise ConfigError(
            f"batch size {batch_size} is smaller than the {processes} processes: raise it to at least {processes}"
        )
    order = rng.permutation(n) if shuffle else np.arange(n)
    for start in range(0, n, batch_size):
        batch = order[start : start + batch_size]
        if len(batch) >= processes:
            yield batch
