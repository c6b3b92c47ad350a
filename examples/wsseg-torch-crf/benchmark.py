"""torch-crf against pydensecrf on the same inputs: pixel agreement and speed.

Both CRFs get the same probability maps: wsseg-otsu-crf's CAM -> probability -> Multi-Otsu steps on
positive slices, either of synthetic phantoms with a CAM made from their scar (default) or of a
pipeline run (``--workdir data``: the train split's slice-level CAMs, as ``wsseg pseudo-label`` sees them).

    python examples/wsseg-torch-crf/benchmark.py [--slices 100] [--w1 0] [--workdir data --params params.yaml]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from scipy.ndimage import gaussian_filter

from wsseg.data.synthetic import SyntheticConfig, phantom_case
from wsseg_otsu_crf import cam_to_probability, dense_crf, otsu_suppress
from wsseg_torch_crf import mean_field_crf

MYOCARDIUM_THRESHOLD = 0.5  # params.yaml's pseudo_label.config.myocardium_threshold


def synthetic_inputs(n_slices: int, size: int = 64, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Positive phantom slices with a noisy, blurred CAM of their scar on a 4x coarser grid."""
    rng = np.random.default_rng(seed)
    config = SyntheticConfig(image_size=size)
    images, myocardium, cams = [], [], []
    while len(images) < n_slices:
        stack, labels = phantom_case(rng, config, fibrosis=True)
        for image, label in zip(stack, labels):
            if (label == 3).any() and len(images) < n_slices:
                fine = (
                    gaussian_filter((label == 3) * 1.0 + (label >= 2) * 0.3, 2.0)
                    + rng.normal(0, 0.05, label.shape)
                    - 0.15
                )
                images.append(image)
                myocardium.append((label >= 2).astype(np.float32))
                cams.append(fine.reshape(size // 4, 4, size // 4, 4).mean(axis=(1, 3)) * (label >= 2)[::4, ::4])
    return np.array(images), np.array(myocardium), np.array(cams)


def pipeline_inputs(workdir: str, params_path: str, n_slices: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The positive train slices of a pipeline run: ROI images, myocardium and slice-level CAMs."""
    from wsseg.artefacts import read_roi_data
    from wsseg.config import load_params
    from wsseg.data.cache import read_cache
    from wsseg.stages.cams import weak_labels
    from wsseg.workspace import Workspace

    params, ws = load_params(params_path), Workspace(__import__("pathlib").Path(workdir))
    roi = read_roi_data(params, ws)
    rows = np.flatnonzero((roi.dataset["split"] == "train") & (weak_labels(roi, "slice") == 1))[:n_slices]
    return roi.images[rows], roi.myocardium[rows], read_cache(ws.cams("slice"))["cams"][rows]


def timed(function, repeats: int = 3) -> tuple[object, float]:
    """The result of ``function()`` and its best wall time of ``repeats`` runs."""
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        result = function()
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - start)
    return result, best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--slices", type=int, default=100)
    parser.add_argument("--w1", type=float, default=0.0, help="appearance kernel weight (0 = the paper's setting)")
    parser.add_argument("--workdir", help="a pipeline run's folder (default: synthetic phantoms)")
    parser.add_argument("--params", default="params.yaml")
    args = parser.parse_args()
    torch.set_num_threads(max(1, torch.get_num_threads()))

    images, myocardium, cams = (
        pipeline_inputs(args.workdir, args.params, args.slices) if args.workdir else synthetic_inputs(args.slices)
    )
    probs = np.array(
        [
            otsu_suppress(cam_to_probability(c, i.shape, m >= MYOCARDIUM_THRESHOLD), i)
            for c, i, m in zip(cams, images, myocardium)
        ]
    )
    settings = {"w1": args.w1, "w2": 1.0, "theta_gamma": 3.0, "theta_alpha": 80.0, "theta_beta": 13.0, "iterations": 5}
    reference, t_ref = timed(lambda: np.array([dense_crf(p, i, **settings) for p, i in zip(probs, images)]))
    p_t, i_t = torch.from_numpy(probs), torch.from_numpy(images.astype(np.float32))
    per_slice, t_slice = timed(lambda: np.array([mean_field_crf(p, i, **settings).numpy() for p, i in zip(p_t, i_t)]))
    batched, t_batch = timed(lambda: mean_field_crf(p_t, i_t, **settings).numpy())
    assert np.array_equal(per_slice, batched)

    unrefined = probs >= 0.5
    changed = (reference != unrefined) | (batched != unrefined)
    dice = 2 * (reference & batched).sum() / max(reference.sum() + batched.sum(), 1)
    print(
        f"{len(probs)} slices of {probs.shape[1]}x{probs.shape[2]} "
        f"({'pipeline ' + args.workdir if args.workdir else 'synthetic'}), w1={args.w1}"
    )
    print(f"pixel agreement with pydensecrf: {(reference == batched).mean():.4%}  (foreground Dice {dice:.4f})")
    print(
        f"on the {changed.sum()} pixels either CRF changes from p >= 0.5: "
        f"{(reference == batched)[changed].mean():.2%} agree"
    )
    print(f"slices identical: {np.mean([np.array_equal(a, b) for a, b in zip(reference, batched)]):.2%}")
    print(f"pydensecrf          {1000 * t_ref / len(probs):8.2f} ms/slice")
    print(f"torch cpu, 1 slice  {1000 * t_slice / len(probs):8.2f} ms/slice  speed ratio {t_ref / t_slice:.2f}x")
    print(f"torch cpu, batched  {1000 * t_batch / len(probs):8.2f} ms/slice  speed ratio {t_ref / t_batch:.2f}x")
    if torch.cuda.is_available():
        p_c, i_c = p_t.cuda(), i_t.cuda()
        mean_field_crf(p_c, i_c, **settings)  # warm-up
        _, t_cuda_slice = timed(lambda: [mean_field_crf(p, i, **settings) for p, i in zip(p_c, i_c)])
        on_gpu, t_cuda = timed(lambda: mean_field_crf(p_c, i_c, **settings))
        print(
            f"torch cuda, 1 slice {1000 * t_cuda_slice / len(probs):8.2f} ms/slice  "
            f"speed ratio {t_ref / t_cuda_slice:.2f}x"
        )
        print(
            f"torch cuda, batched {1000 * t_cuda / len(probs):8.2f} ms/slice  speed ratio {t_ref / t_cuda:.2f}x  "
            f"(agreement with cpu {(on_gpu.cpu().numpy() == batched).mean():.4%})"
        )


if __name__ == "__main__":
    main()
