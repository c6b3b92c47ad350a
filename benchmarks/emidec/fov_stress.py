"""Field-of-view stress test: the val cases re-rendered as other sites' images look, myocardium Dice per zoom.

Each val slice (and its label) is re-rendered at a zoom factor: above 1, a window of side
``256 / zoom`` around the case's heart is cropped and resized back to 256 (a tighter field of
view, upsampled); below 1, the slice is shrunk by the factor and padded back to 256 with zeros (a
wider one). The benchmark's myocardium models then predict the re-rendered slices exactly as
``wsseg predict`` would, and the myocardium Dice per case is computed on the re-rendered grid.
Run after ``bash benchmarks/emidec/run.sh`` (or its myocardium stages)::

    python benchmarks/emidec/fov_stress.py [--zooms 0.5 0.75 1 1.5 2 2.5] [--params P] [--workdir W]

``WSSEG_SEED=1`` reads the seed-1 benchmark (and sets the seed of ``--params``). A last row renders
each slice as a site with a tight field of view might send it (the heart filling 80% of a 128 px
image, softer contrast). Writes ``<workdir>/fov_stress.json`` and the plot
``<workdir>/fov-stress.png``, and prints a markdown table.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from myocardium_quality import pooled_dice  # noqa: E402  (benchmarks/emidec/, beside this script)
from seeded_run import PARAMS, WORKDIR, seeded_params  # noqa: E402

from wsseg.artefacts import read_artefact  # noqa: E402
from wsseg.data.geometry import paste, resize  # noqa: E402
from wsseg.data.readers import MYOCARDIUM_LABELS, SliceRecord, load_image, load_label, read_folder  # noqa: E402
from wsseg.metrics import summary  # noqa: E402
from wsseg.stages.ingest import prepare_image, slice_view  # noqa: E402
from wsseg.stages.myocardium import MyocardiumFinder  # noqa: E402
from wsseg.workspace import Workspace  # noqa: E402


def rerender(image: np.ndarray, centre: tuple[float, float], zoom: float, nearest: bool) -> np.ndarray:
    """``image`` as a scanner with ``zoom`` times the magnification (heart at ``centre``) would show it."""
    side = image.shape[0]
    if zoom >= 1:
        window = side / zoom
        y0 = int(round(np.clip(centre[0] - window / 2, 0, side - window)))
        x0 = int(round(np.clip(centre[1] - window / 2, 0, side - window)))
        w = int(round(window))
        return resize(image[None, y0 : y0 + w, x0 : x0 + w], (side, side), nearest=nearest)[0]
    small = max(1, int(round(side * zoom)))
    out = np.zeros_like(image, dtype=np.float32)
    start = (side - small) // 2
    out[start : start + small, start : start + small] = resize(image[None], (small, small), nearest=nearest)[0]
    return out


def other_site(image: np.ndarray, box: tuple[float, float, float], nearest: bool) -> np.ndarray:
    """``image`` as a site with a tight field of view might send it: the heart filling 80% of a 128 px
    image (upsampled), with a compressed, softer contrast (images only)."""
    cy, cx, side = box
    window = int(round(side / 0.8))
    y0, x0 = int(round(cy - window / 2)), int(round(cx - window / 2))
    padded = np.pad(image, window)
    region = padded[y0 + window : y0 + 2 * window, x0 + window : x0 + 2 * window]
    out = resize(region[None].astype(np.float32), (128, 128), nearest=nearest)[0]
    if nearest:
        return out
    scaled = np.clip(out / max(float(image.max()), 1e-6), 0, 1)
    return (0.3 + 0.45 * scaled**0.8) * 255


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--zooms", type=float, nargs="+", default=[0.5, 0.75, 1.0, 1.5, 2.0, 2.5])
    parser.add_argument("--params", type=Path, default=PARAMS, help="params file (seed from WSSEG_SEED, if set)")
    parser.add_argument("--workdir", type=Path, default=WORKDIR, help="the benchmark run (default: WSSEG_SEED's)")
    args = parser.parse_args()
    params = seeded_params(args.params)
    ws = Workspace(args.workdir)
    read_artefact(params, ws, "dataset")  # the benchmark's caches must be current
    finder = MyocardiumFinder.load(params, ws, "cpu")
    records = [r for r in read_folder(params.data.source) if r.split == "val" and r.pixel_labels]
    cases: dict[str, list[SliceRecord]] = {}
    for record in records:
        cases.setdefault(record.case_id, []).append(record)
    results: dict[str, dict] = {}
    renderings = {
        f"{zoom:g}": lambda image, box, nearest, z=zoom: rerender(image, box[:2], z, nearest) for zoom in args.zooms
    }
    renderings["other site"] = other_site
    for name, render in renderings.items():
        scores = {}
        for case, slices in cases.items():
            images = [load_image(r) for r in slices]
            labels = [np.isin(load_label(r), MYOCARDIUM_LABELS).astype(np.float32) for r in slices]
            ys, xs = np.nonzero(np.any(labels, axis=0))
            box = ((ys.min() + ys.max() + 1) / 2, (xs.min() + xs.max() + 1) / 2, max(np.ptp(ys), np.ptp(xs)) + 1.0)
            raws = [render(image, box, False) for image in images]
            truth = [render(label, box, True) > 0.5 for label in labels]
            views = [slice_view(raw.shape, params, None) for raw in raws]
            grid = np.stack([prepare_image(raw, view, params) for raw, view in zip(raws, views)])
            probability, _ = finder(grid, np.array([case] * len(raws)))
            predicted = [
                paste(probability[i : i + 1], np.array([view]), raw.shape)[0] > params.myocardium.threshold
                for i, (raw, view) in enumerate(zip(raws, views))
            ]
            scores[case] = pooled_dice(predicted, truth)
        results[name] = {"dice": summary(scores.values()), "per_case": scores}
        print(f"{name}: myocardium Dice {results[name]['dice']['mean']:.3f}", flush=True)
    (args.workdir / "fov_stress.json").write_text(json.dumps(results, indent=2))
    print(markdown_table(results))
    print(f"figure: {plot(results, args.workdir / 'fov-stress.png')}")


def markdown_table(results: dict) -> str:
    reference = results.get("1", {}).get("dice", {}).get("mean")
    lines = ["| zoom | myocardium Dice (mean ± std over 10 val cases) | against 1x |", "|---|---|---|"]
    for name, result in results.items():
        d = result["dice"]
        delta = f"{d['mean'] - reference:+.3f}" if reference is not None else ""
        lines.append(f"| {name + 'x' if name[0].isdigit() else name} | {d['mean']:.3f} ± {d['std']:.3f} | {delta} |")
    return "\n".join(lines)


def plot(results: dict, path: Path) -> Path:
    names = [name for name in results if name[0].isdigit()]
    zooms = [float(name) for name in names]
    means = np.array([results[name]["dice"]["mean"] for name in names])
    stds = np.array([results[name]["dice"]["std"] for name in names])
    figure, axis = plt.subplots(figsize=(5, 3.2))
    axis.errorbar(zooms, means, yerr=stds, marker="o", capsize=3)
    if "1" in results:
        axis.axhspan(
            results["1"]["dice"]["mean"] - 0.05, results["1"]["dice"]["mean"] + 0.05, alpha=0.15, label="1x ± 0.05"
        )
        axis.legend(loc="lower right")
    if "other site" in results:
        axis.axhline(results["other site"]["dice"]["mean"], color="grey", linestyle=":", label="other-site look")
        axis.legend(loc="lower right")
    axis.set_xscale("log")
    axis.minorticks_off()
    axis.set_xticks(zooms, [f"{z:g}x" for z in zooms])
    axis.set_xlabel("zoom (field of view 1/zoom of EMIDEC's)")
    axis.set_ylabel("myocardium Dice, val")
    axis.set_ylim(0, 1)
    axis.set_title("Field-of-view stress test (EMIDEC val)")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    return path


if __name__ == "__main__":
    main()
