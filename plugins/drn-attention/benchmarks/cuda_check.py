"""Device check: train on CUDA, compare with the CPU, time epochs.

    python plugins/drn-attention/benchmarks/cuda_check.py

1. fit at slice and stack level on ``cuda`` (default config, 3 epochs, 400 phantom slices of 64x64),
   with ``torch.use_deterministic_algorithms(True, warn_only=True)`` as ``wsseg.training.seed_everything``
   sets it, and report warnings;
2. load each CUDA-trained state into a CPU generator and compare ``generate`` outputs;
3. eval-mode slice independence on CUDA (perturb one slice, others unchanged);
4. seconds per epoch on the GPU.
"""

from __future__ import annotations

import sys
import time
import warnings
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))
from phantoms import phantom_set, stack_level  # noqa: E402

from wsseg.interfaces import WeakSet  # noqa: E402
from wsseg.metrics import auroc  # noqa: E402
from wsseg.training import Monitor  # noqa: E402
from wsseg_drn_attention import DRNAttentionCAM  # noqa: E402


def main() -> int:
    assert torch.cuda.is_available(), "no CUDA"
    print(torch.__version__, torch.cuda.get_device_name(0))
    torch.use_deterministic_algorithms(True, warn_only=True)
    train = phantom_set(50, 8, seed=1)
    val = phantom_set(25, 8, seed=2)
    ok = True
    for level in ("slice", "stack"):
        tr = train if level == "slice" else stack_level(train)
        va = val if level == "slice" else stack_level(val)
        gen = DRNAttentionCAM({"epochs": 3}, device="cuda", seed=0)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            torch.cuda.synchronize()
            t0 = time.perf_counter()
            gen.fit(tr, level, val=va, monitor=Monitor(f"cuda-{level}"))
            torch.cuda.synchronize()
            dt = (time.perf_counter() - t0) / 3
            out = gen.generate(va)
        for w in {str(w.message)[:200] for w in caught}:
            print("  WARNING:", w)
        print(
            f"{level}: {dt:.2f} s/epoch on GPU (incl. validation); "
            f"val_auroc {[round(h['val_auroc'], 3) for h in gen.history]}"
        )
        cpu = DRNAttentionCAM({"epochs": 3}, device="cpu")
        cpu.load_state_dict(gen.state_dict())
        ref = cpu.generate(va)
        # cuDNN convolutions use TF32 on Hopper by default (about 1e-3 relative precision): compare with
        # TF32 on (the default) loosely and with TF32 off tightly.
        for tf32 in (True, False):
            torch.backends.cudnn.allow_tf32 = tf32
            torch.backends.cuda.matmul.allow_tf32 = tf32
            cur = gen.generate(va)
            for field in ("cams", "slice_scores", "stack_scores"):
                a, b = getattr(cur, field), getattr(ref, field)
                diff = float(np.abs(a - b).max())
                rel = diff / max(float(np.abs(b).max()), 1e-12)
                print(
                    f"  tf32={tf32} cuda vs cpu {field}: shape {a.shape} dtype {a.dtype} max|diff| {diff:.2e} "
                    f"(relative to max|cpu| {rel:.2e})"
                )
                ok &= a.shape == b.shape and a.dtype == np.float32 and rel < (2e-2 if tf32 else 1e-4)
        torch.backends.cudnn.allow_tf32 = True
        images = va.images.copy()
        images[3] = np.random.default_rng(0).random(images[3].shape, dtype=np.float32)
        again = gen.generate(WeakSet(images, va.myocardium, va.stack_ids, va.labels)).cams
        others = np.arange(len(images)) != 3
        diff = float(np.abs(again[others] - out.cams[others]).max())
        print(
            f"  perturb slice 3 -> max|diff| on other slices {diff:.2e}; "
            f"slice 3 changed: {not np.allclose(again[3], out.cams[3])}"
        )
        ok &= diff <= 1e-6
        stack_y = [va.labels[i].max() for i in va.stacks()]
        print(
            f"  val slice AUROC {auroc(out.slice_scores, val.labels):.3f}, "
            f"stack AUROC {auroc(out.stack_scores, stack_y):.3f}"
        )
    print("CUDA CHECK", "OK" if ok else "FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
