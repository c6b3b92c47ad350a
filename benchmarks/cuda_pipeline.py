"""Device check: the pipeline's training and inference stages on CUDA, beside the same run on the CPU.

    python benchmarks/cuda_pipeline.py [--cases 24] [--epochs 10]

Runs synth -> ingest -> train-myo -> predict-myo -> train-cam (slice, stack) -> predict-cam ->
pseudo-label -> train-seg (pixel, slice) -> predict -> evaluate with ``device="cuda"`` and then
``device="cpu"`` on the same seeded phantoms, and prints each stage's seconds (a CUDA/CPU ratio) and
the metrics of both runs. Meant for a GPU machine that has PyTorch but not the whole install: it
uses the test-only ``cam-threshold`` pseudo-labeler (no pydensecrf) and keeps training curves in
memory (no DVCLive).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

import torch

from wsseg.config import validate_params
from wsseg.pipeline import planned_steps, run_stage
from wsseg.workspace import Workspace


def stages(params, ws: Workspace, device: str) -> list[tuple[str, Callable[[], object]]]:
    """Every step of ``wsseg run-all`` for ``params`` up to ``evaluate``, as (name, thunk)."""
    steps = [(stage, key) for stage, key in planned_steps(params) if stage.command != "report"]
    return [
        (stage.command + stage.option(key), partial(run_stage, stage, params, ws, key, device)) for stage, key in steps
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=24, help="weakly-labelled train cases")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--devices", default="cuda,cpu", help="comma-separated devices to compare")
    args = parser.parse_args()
    params = validate_params(
        {
            "data": {"synthetic": {"n_train_weak": args.cases, "n_train_pixel": 6, "n_val": 4, "n_test": 4}},
            "myocardium": {"config": {"epochs": args.epochs, "base_channels": 8}},
            "cam": {"config": {"epochs": args.epochs}},
            "pseudo_label": {"plugin": "cam-threshold"},
            "segmentation": {"supervisions": ["pixel", "slice"], "config": {"epochs": args.epochs, "base_channels": 8}},
        }
    )
    Workspace.curves = lambda self, name: None  # no DVCLive on the device machine: curves stay in memory
    print(f"torch {torch.__version__}, CUDA available: {torch.cuda.is_available()}")
    seconds, metrics = {}, {}
    devices = args.devices.split(",")
    for device in devices:
        ws = Workspace(Path(tempfile.mkdtemp()) / device)
        for name, step in stages(params, ws, device):
            began = time.perf_counter()
            result = step()
            seconds[device, name] = time.perf_counter() - began
        metrics[device] = result
    print(
        f"{'stage':<20}" + "".join(f"{d + ' s':>10}" for d in devices) + (f"{'ratio':>8}" if len(devices) == 2 else "")
    )
    for name, _ in stages(params, Workspace(), "cpu"):
        times = [seconds[d, name] for d in devices]
        ratio = f"{times[1] / times[0]:8.2f}" if len(times) == 2 else ""
        print(f"{name:<20}" + "".join(f"{t:10.2f}" for t in times) + ratio)
    for device, result in metrics.items():
        summary = {
            "myocardium_dice": result["myocardium"]["dice"]["mean"],
            **{f"fibrosis_dice_{s}": r["dice"]["mean"] for s, r in result["fibrosis"].items()},
            **{f"auroc_{level}": r["slice_auroc"] for level, r in result["classification"].items()},
        }
        print(device, json.dumps({k: round(v, 3) if v is not None else None for k, v in summary.items()}))


if __name__ == "__main__":
    main()
