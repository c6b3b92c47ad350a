"""One wsseg command in several processes: torchrun's process group, data shards, rank-0 writes.

Under ``torchrun`` every process runs the same command. Training wraps the model in PyTorch's
DistributedDataParallel (:func:`wsseg.training.train_loop`) and gives each process its share of
every global batch (:func:`local_share`); inference stages split the cases between processes
(:func:`shard_cases`) and merge the outputs (:func:`gather_rows`), see :mod:`wsseg.stages.cases`;
files are written by rank 0 only (:func:`on_main`). Without torchrun every function here is the
single-process identity.
"""

from __future__ import annotations

import functools
import os
import subprocess
import sys
from collections.abc import Callable
from typing import Any, TypeVar

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

__all__ = [
    "active",
    "broadcast",
    "gather_rows",
    "is_main",
    "launched",
    "leave",
    "local_share",
    "on_main",
    "parallel",
    "rank",
    "relaunch",
    "setup",
    "shard_cases",
    "sum_over_processes",
    "world_size",
]

T = TypeVar("T")


def launched() -> bool:
    """Whether torchrun (or another launcher setting ``WORLD_SIZE``) started this process as one of several."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def setup(device: str) -> str:
    """Join the launcher's process group (NCCL on CUDA, gloo on the CPU); this process's device.

    On CUDA each process takes the GPU of its ``LOCAL_RANK``. Without a launcher nothing changes.
    """
    if not launched():
        return device
    if device.startswith("cuda"):
        device = f"cuda:{int(os.environ.get('LOCAL_RANK', '0'))}"
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.startswith("cuda") else "gloo")
    return device


def leave(code: int) -> None:
    """End a process that joined the group with exit ``code``: on success the processes meet, leave the
    group and exit at once; a process that did not join just returns.

    The hard exit skips the interpreter's teardown, where gloo's worker threads, destroyed in no set
    order, can abort a finished command ("terminate called without an active exception", SIGABRT).
    A failing process leaves without the meeting, which its peers may never reach.
    """
    if not dist.is_initialized():
        return
    if code == 0:
        dist.barrier()
    dist.destroy_process_group()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def active() -> bool:
    """Whether this process is one of several in an initialised process group."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def rank() -> int:
    return dist.get_rank() if active() else 0


def world_size() -> int:
    return dist.get_world_size() if active() else 1


def is_main() -> bool:
    """Rank 0: the process that writes files and prints."""
    return rank() == 0


_writing = False  # inside an on_main function on rank 0: nested ones run directly


def on_main(function: Callable[..., T]) -> Callable[..., T]:
    """Decorator: ``function`` runs on rank 0 only; every process waits and gets its result or its exception."""

    @functools.wraps(function)
    def wrapper(*args, **kwargs):
        global _writing
        if not active() or _writing:
            return function(*args, **kwargs)
        outcome = None
        if is_main():
            _writing = True
            try:
                outcome = (True, function(*args, **kwargs))
            except Exception as exc:  # handed to every process, so that all of them stop alike
                outcome = (False, exc)
            finally:
                _writing = False
        succeeded, value = broadcast(outcome)
        if not succeeded:
            raise value
        return value

    return wrapper


def shard_cases(case_ids: np.ndarray) -> np.ndarray:
    """Rows of this process's cases: the sorted cases dealt out in turn (case k to rank k mod N)."""
    inverse = np.unique(np.asarray(case_ids), return_inverse=True)[1]
    return np.flatnonzero(inverse % world_size() == rank())


def gather_rows(local: dict[str, Any], rows: np.ndarray, n: int) -> dict[str, Any]:
    """Merge each process's outputs for its ``rows`` into outputs for all ``n`` rows, on every process.

    Values are arrays or lists whose first axis follows ``rows``; the merged ones are in row order.
    """
    pieces: list[Any] = [(np.asarray(rows), local)]
    if active():
        pieces = [None] * world_size()
        dist.all_gather_object(pieces, (np.asarray(rows), local))
    pieces = [(piece_rows, piece) for piece_rows, piece in pieces if piece]
    merged: dict[str, Any] = {}
    for key in pieces[0][1] if pieces else ():
        first = pieces[0][1][key]
        if isinstance(first, list):
            merged[key] = [None] * n
            for piece_rows, piece in pieces:
                for row, item in zip(piece_rows, piece[key]):
                    merged[key][row] = item
        else:
            merged[key] = np.empty((n, *np.shape(first)[1:]), np.asarray(first).dtype)
            for piece_rows, piece in pieces:
                merged[key][piece_rows] = piece[key]
    return merged


def local_share(batch: T) -> T:
    """This process's rows of a global batch (rank, rank + N, ...): DistributedSampler at batch granularity.

    Every process draws the same global batches (same seed), so N processes together see exactly
    the batches of one process; ``None`` (no augmentation codes, say) stays ``None``.
    """
    if batch is None or not active():
        return batch
    return batch[rank() :: world_size()]  # type: ignore[index]


def parallel(module: nn.Module, device: torch.device) -> nn.Module:
    """``module`` in DistributedDataParallel with several processes (BatchNorm synchronised on CUDA); else itself."""
    if not active():
        return module
    if device.type == "cuda":
        module = nn.SyncBatchNorm.convert_sync_batchnorm(module)
        return nn.parallel.DistributedDataParallel(module, device_ids=[device])
    return nn.parallel.DistributedDataParallel(module)


def sum_over_processes(values: list[float]) -> list[float]:
    """Element-wise sum of ``values`` over all processes."""
    if not active():
        return values
    total = torch.tensor(values, dtype=torch.float64, device="cuda" if dist.get_backend() == "nccl" else "cpu")
    dist.all_reduce(total)
    return total.tolist()


def broadcast(value: T) -> T:
    """Rank 0's ``value`` on every process."""
    if not active():
        return value
    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def relaunch(nproc_per_node: int, nnodes: int, rdzv_endpoint: str) -> int:
    """Run this very ``wsseg`` command again on torchrun, ``nproc_per_node`` x ``nnodes`` processes; its exit code."""
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        f"--nproc-per-node={nproc_per_node}",
        f"--nnodes={nnodes}",
    ]
    command += ["--standalone"] if nnodes == 1 else ["--rdzv-backend=c10d", f"--rdzv-endpoint={rdzv_endpoint}"]
    return subprocess.call([*command, "-m", "wsseg", *sys.argv[1:]])
