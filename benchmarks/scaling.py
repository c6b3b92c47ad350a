"""Training throughput of the fibrosis U-Net on 1 and 2 torchrun processes (DDP), and their ratio.

    python benchmarks/scaling.py [--epochs 3] [--batch-size 16] [--workdir data/scaling]

It writes the synthetic phantoms once (the default params' ``data.synthetic``), then trains the
``unet`` segmenter plugin on every train slice (image + myocardium in, fibrosis mask out, 64x64
crops) with the same global batch on 1 and on 2 processes, and prints slices per second. On the
CPU the cores are split between the processes (``OMP_NUM_THREADS`` = cores / processes), so the
ratio says what DDP gains over intra-op threads on the same machine. With CUDA it runs one
process per GPU (1, then 2 when there are two).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch


def worker(args: argparse.Namespace) -> None:
    """One torchrun process: train for ``args.epochs`` epochs; rank 0 prints a JSON line."""
    from wsseg import distributed
    from wsseg.artefacts import read_artefact
    from wsseg.config import load_params
    from wsseg.data.geometry import crop
    from wsseg.registry import get_plugin
    from wsseg.training import Monitor, resolve_device, seed_everything
    from wsseg.workspace import Workspace

    device = distributed.setup(str(resolve_device("auto")))
    params = load_params(Path(args.workdir) / "params.yaml")
    data = read_artefact(params, Workspace(Path(args.workdir)), "dataset")
    train = data["split"] == "train"
    boxes = np.tile([32.0, 32.0, 96.0, 96.0], (int(train.sum()), 1))  # a fixed 64x64 crop: no myocardium model needed
    images = crop(data["images"][train], boxes, 64)
    myocardium = crop(data["myocardium_mask"][train].astype(np.float32), boxes, 64)
    fibrosis = crop(data["fibrosis_mask"][train].astype(np.float32), boxes, 64)
    config = {"epochs": args.epochs, "batch_size": args.batch_size, "base_channels": 8, "depth": 4}
    segmenter = get_plugin("segmenter", "unet")(config, device=device, seed=0)
    seed_everything(0)
    start = time.perf_counter()
    segmenter.fit(np.stack([images, myocardium], axis=1), fibrosis, monitor=Monitor("scaling"))
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    if distributed.is_main():
        slices = args.epochs * len(images)
        figures = {
            "processes": distributed.world_size(),
            "device": device.split(":")[0],
            "slices": len(images),
            "seconds": seconds,
        }
        print(json.dumps(figures | {"slices_per_s": slices / seconds}))


def prepare(workdir: Path) -> None:
    """Phantoms and dataset cache with the default params (skipped when already there)."""
    from wsseg.config import validate_params
    from wsseg.stages.ingest import ingest, synth
    from wsseg.workspace import Workspace

    params_path = workdir / "params.yaml"
    if (workdir / "cache" / "dataset.h5").exists():
        return
    workdir.mkdir(parents=True, exist_ok=True)
    params_path.write_text("{}\n")
    params, ws = validate_params({}), Workspace(workdir)
    synth(params, ws)
    ingest(params, ws)


def run(processes: int, args: argparse.Namespace) -> dict:
    cores = os.cpu_count() or 1
    env = {**os.environ, "OMP_NUM_THREADS": str(max(1, cores // processes))}
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        f"--nproc-per-node={processes}",
        __file__,
        "--worker",
    ]
    command += ["--epochs", str(args.epochs), "--batch-size", str(args.batch_size), "--workdir", str(args.workdir)]
    result = subprocess.run(command, env=env, capture_output=True, text=True)
    if result.returncode:
        sys.exit(f"{processes} process(es) failed:\n{result.stderr[-3000:]}")
    return json.loads([line for line in result.stdout.splitlines() if line.startswith("{")][-1]) | {
        "threads": env["OMP_NUM_THREADS"]
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument(
        "--batch-size", type=int, default=16, help="global batch (every process count trains on the same batches)"
    )
    parser.add_argument("--workdir", type=Path, default=Path("data/scaling"))
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args)
        return
    prepare(args.workdir)
    counts = [1, 2] if not torch.cuda.is_available() or torch.cuda.device_count() >= 2 else [1]
    results = [run(n, args) for n in counts]
    print(f"{results[0]['slices']} train slices, {args.epochs} epochs, global batch {args.batch_size}")
    print(f"{'processes':>9} {'device':>6} {'threads':>7} {'seconds':>8} {'slices/s':>9}")
    for r in results:
        print(f"{r['processes']:>9} {r['device']:>6} {r['threads']:>7} {r['seconds']:>8.1f} {r['slices_per_s']:>9.1f}")
    if len(results) == 2:
        print(
            f"throughput ratio, 2 processes / 1 process: {results[1]['slices_per_s'] / results[0]['slices_per_s']:.2f}"
        )
    else:
        print("one GPU only: no 2-process figure")


if __name__ == "__main__":
    main()
