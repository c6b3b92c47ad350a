"""Seconds per epoch and a learning check at the default config.

    python plugins/drn-attention/benchmarks/bench_epoch.py [--device cpu] [--channels 16,32,...] [--epochs N]

Data (``--source``): ``wsseg`` = 50 training and 25 validation stacks (6-10 slices) from the pipeline's
phantom generator, cropped around the myocardium to 64x64 as the pipeline does; ``simple`` = the ring
phantoms of ``phantoms.py``, 50 x 8 training and 25 x 8 validation slices. Slice level trains on slice
labels, stack level on stack labels of the same slices.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))
from phantoms import phantom_set, stack_level, wsseg_phantom_set  # noqa: E402

from wsseg.metrics import auroc  # noqa: E402
from wsseg.training import Monitor  # noqa: E402
from wsseg_drn_attention import DRNAttentionCAM  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--device", default="cpu")
    p.add_argument("--channels", default=None)
    p.add_argument("--epochs", type=int, default=None)
    p.add_argument("--levels", default="slice,stack")
    p.add_argument(
        "--source",
        choices=["wsseg", "simple"],
        default="wsseg",
        help="wsseg.data.synthetic phantoms (cropped) or the simple ring phantoms here",
    )
    p.add_argument("--lr", type=float, default=None)
    p.add_argument("--no-attention", action="store_true")
    p.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's choice)")
    a = p.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    cfg: dict = {}
    if a.channels:
        cfg["channels"] = tuple(int(c) for c in a.channels.split(","))
    if a.epochs:
        cfg["epochs"] = a.epochs
    if a.lr:
        cfg["lr"] = a.lr
    if a.no_attention:
        cfg["attention"] = False
    if a.source == "wsseg":
        train, val = wsseg_phantom_set(50, seed=1), wsseg_phantom_set(25, seed=2)
    else:
        train, val = phantom_set(50, 8, seed=1), phantom_set(25, 8, seed=2)
    print(
        f"torch {torch.__version__}, threads {torch.get_num_threads()}, train slices {len(train.images)}, "
        f"positive slices {train.labels.mean():.2f}"
    )
    for level in a.levels.split(","):
        tr = train if level == "slice" else stack_level(train)
        va = val if level == "slice" else stack_level(val)
        gen = DRNAttentionCAM(cfg, device=a.device, seed=0)
        print(level, gen.config.model_dump())
        mon = Monitor(f"bench-{level}")
        t0 = time.perf_counter()
        gen.fit(tr, level, val=va, monitor=mon)
        dt = time.perf_counter() - t0
        out = gen.generate(va)
        tr_out = gen.generate(tr)
        stack_y = np.array([va.labels[i].max() for i in va.stacks()])
        print(
            f"{level}: {gen.config.epochs} epochs in {dt:.1f}s = {dt / gen.config.epochs:.2f}s/epoch (incl. validation)"
        )
        print("  val_auroc per epoch:", " ".join(f"{h.get('val_auroc', float('nan')):.3f}" for h in gen.history))
        print("  loss per epoch:", " ".join(f"{h['loss']:.3f}" for h in gen.history))
        print(
            f"  final val slice AUROC {auroc(out.slice_scores, val.labels):.3f}, "
            f"stack AUROC {auroc(out.stack_scores, stack_y):.3f}, "
            f"train slice AUROC {auroc(tr_out.slice_scores, train.labels):.3f}"
        )
        # where does the positive CAM mass sit on true-scar slices? (fraction of positive mass on bright ring pixels)
        pos = np.flatnonzero(val.labels == 1)
        cams = out.cams[pos]
        bright = val.images[pos].reshape(len(pos), 16, 4, 16, 4).mean((2, 4)) > 0.45
        mass = np.clip(cams, 0, None)
        frac = (mass * bright).sum() / max(mass.sum(), 1e-12)
        print(f"  fraction of positive restricted-CAM mass on bright pixels (positive val slices): {frac:.2f}")


if __name__ == "__main__":
    main()
