"""Stage ``report``: one Markdown page with the metrics tables and the figures people look at first."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.colors import ListedColormap  # noqa: E402

from wsseg import distributed  # noqa: E402
from wsseg.artefacts import read_artefact  # noqa: E402
from wsseg.checkpoint import read_checkpoint  # noqa: E402
from wsseg.config import Params  # noqa: E402
from wsseg.data.cache import read_cache  # noqa: E402
from wsseg.data.geometry import crop  # noqa: E402
from wsseg.data.roi import roi_images  # noqa: E402
from wsseg.reference import REFERENCES  # noqa: E402
from wsseg.stages.evaluate import format_burden, format_figure  # noqa: E402
from wsseg.workspace import Workspace  # noqa: E402

FIBROSIS_COLOUR = ListedColormap(["orangered"])


def example_slices(data, splits: Sequence[str], count: int) -> list[int]:
    """The slice with most fibrosis of each of the first ``count`` labelled held-out cases with fibrosis."""
    rows = np.flatnonzero(np.isin(data["split"], splits) & data["has_mask"])
    chosen = []
    for case in dict.fromkeys(data["case_id"][rows]):
        case_rows = rows[data["case_id"][rows] == case]
        amounts = data["fibrosis_mask"][case_rows].reshape(len(case_rows), -1).sum(axis=1)
        if amounts.max() > 0:
            chosen.append(int(case_rows[amounts.argmax()]))
        if len(chosen) == count:
            break
    return chosen


def _overlay(ax, image, myocardium, fibrosis, title: str) -> None:
    ax.imshow(image, cmap="gray", vmin=0, vmax=1)
    if myocardium is not None and myocardium.any():
        ax.contour(myocardium, levels=[0.5], colors="lime", linewidths=0.8)
    ax.imshow(np.ma.masked_where(fibrosis < 0.5, fibrosis), cmap=FIBROSIS_COLOUR, alpha=0.6, vmin=0, vmax=1)
    ax.set_title(title, fontsize=8)
    ax.axis("off")


def overlay_figure(params: Params, ws: Workspace, data, rows: list[int], path: Path) -> Path | None:
    """Image, myocardium contour and fibrosis for ground truth and each supervision, on example slices."""
    if not rows:
        return None
    predictions = {s: read_cache(ws.predictions(s)) for s in params.segmentation.supervisions}
    size = params.data.roi_size
    boxes = next(iter(predictions.values()))["boxes"][rows]
    images = roi_images(data["images"][rows], boxes, params)
    truth_myo = crop(data["myocardium_mask"][rows].astype(np.float32), boxes, size)
    truth_fib = crop(data["fibrosis_mask"][rows].astype(np.float32), boxes, size)
    columns = ["ground truth", *predictions]
    fig, axes = plt.subplots(len(rows), len(columns), figsize=(2.2 * len(columns), 2.2 * len(rows)), squeeze=False)
    for r, i in enumerate(rows):
        _overlay(
            axes[r, 0],
            images[r],
            truth_myo[r],
            truth_fib[r],
            f"{data['case_id'][i]} slice {data['slice_index'][i]}: truth",
        )
        for c, (supervision, pred) in enumerate(predictions.items(), start=1):
            fib = pred["fibrosis_roi"][i].astype(np.float32) > params.segmentation.threshold_for(supervision)
            _overlay(axes[r, c], images[r], truth_myo[r], fib.astype(np.float32), f"{supervision}-level")
    fig.suptitle("Fibrosis (orange) inside the true myocardium contour (green), ROI crops", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def cam_figure(
    params: Params, ws: Workspace, data, rows: list[int], path: Path, sources: dict[str, Path] | None = None
) -> Path | None:
    """Restricted CAMs next to the image and true fibrosis, on example slices.

    ``sources`` maps a column title to a CAM cache; by default, one column per trained CAM level.
    """
    sources = sources or {level: ws.cams(level) for level in params.cam.levels}
    sources = {title: cache for title, cache in sources.items() if cache.exists()}
    if not rows or not sources:
        return None
    boxes = read_cache(ws.myocardium)["boxes"][rows]
    images = roi_images(data["images"][rows], boxes, params)
    truth = crop(data["fibrosis_mask"][rows].astype(np.float32), boxes, params.data.roi_size)
    cams = {title: read_cache(cache) for title, cache in sources.items()}
    fig, axes = plt.subplots(len(rows), 1 + len(cams), figsize=(2.2 * (1 + len(cams)), 2.2 * len(rows)), squeeze=False)
    for r, i in enumerate(rows):
        _overlay(axes[r, 0], images[r], None, truth[r], f"{data['case_id'][i]}: image + true fibrosis")
        for c, (title, cache) in enumerate(cams.items(), start=1):
            axes[r, c].imshow(images[r], cmap="gray", vmin=0, vmax=1)
            cam = np.maximum(cache["cams"][i], 0)
            axes[r, c].imshow(
                cam, cmap="jet", alpha=0.5, extent=(-0.5, images.shape[2] - 0.5, images.shape[1] - 0.5, -0.5)
            )
            axes[r, c].set_title(f"{title} CAM, p={cache['slice_score'][i]:.2f}", fontsize=8)
            axes[r, c].axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def curves_figure(params: Params, ws: Workspace, path: Path) -> Path | None:
    """Training loss and validation figures of every trained model."""
    models = {"myocardium": ws.myocardium_model}
    models |= {f"cam-{level}": ws.cam_model(level) for level in params.cam.levels}
    models |= {f"fibrosis-{s}": ws.fibrosis_model(s) for s in params.segmentation.supervisions}
    histories = {name: read_checkpoint(p)["history"] for name, p in models.items() if p.exists()}
    if not histories:
        return None
    fig, axes = plt.subplots(1, len(histories), figsize=(2.8 * len(histories), 2.6), squeeze=False)
    for ax, (name, history) in zip(axes[0], histories.items()):
        for key in history[0] if history else {}:
            ax.plot([h[key] for h in history], label=key)
        ax.set_title(name, fontsize=9)
        ax.set_xlabel("epoch", fontsize=8)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def metrics_markdown(metrics: dict) -> str:
    """Tables 1 and 2 of the paper, filled with this run's figures."""
    lines = [
        "| Tissue | Supervision | Dice (mean ± std) | cases | fibrosis-free cases flagged | scar burden agreement |",
        "|---|---|---|---|---|---|",
    ]
    if metrics["myocardium"]:
        d = metrics["myocardium"]["dice"]
        lines.append(f"| Myocardium | pixel | {format_figure(d['mean'])} ± {format_figure(d['std'])} | {d['n']} | | |")
    rows = list(metrics["fibrosis"].items())
    rows += [(f"*{REFERENCES[name]}*", result) for name, result in metrics.get("label_free", {}).items()]
    for supervision, result in rows:
        d = result["dice"]
        flagged = f"{result['fibrosis_free_flagged']}/{result['fibrosis_free_cases']}"
        lines.append(
            f"| Fibrosis | {supervision} | {format_figure(d['mean'])} ± {format_figure(d['std'])} "
            f"| {d['n']} | {flagged} | {format_burden(result['burden'])} |"
        )
    lines += ["", "| Classifier | AUROC per slice | AUROC per stack | slices | stacks |", "|---|---|---|---|---|"]
    for level, result in metrics["classification"].items():
        lines.append(
            f"| {level}-level | {format_figure(result['slice_auroc'])} | {format_figure(result['stack_auroc'])} "
            f"| {result['n_slices']} | {result['n_stacks']} |"
        )
    return "\n".join(lines)


@distributed.on_main
def report(params: Params, ws: Workspace) -> Path:
    """Write ``report/report.md`` with the metrics tables and the overlay, CAM and curve figures."""
    metrics = json.loads(ws.metrics.read_text())
    ws.report.mkdir(parents=True, exist_ok=True)
    data = read_artefact(params, ws, "dataset")
    rows = example_slices(data, params.evaluate.splits, 4)
    figures = {
        "Segmentations": overlay_figure(params, ws, data, rows, ws.report / "overlays.png"),
        "Class activation maps": cam_figure(params, ws, data, rows, ws.report / "cams.png"),
        "Training curves": curves_figure(params, ws, ws.report / "curves.png"),
    }
    source = params.data.source
    text = [
        "# wsseg report",
        "",
        f"Data: `{source}`; evaluated on the {', '.join(metrics['splits'])} split(s), "
        f"{metrics['n_cases']} labelled cases. "
        "Fibrosis Dice is pooled per case over its slices and averaged over the cases with fibrosis. "
        "Scar burden agreement: each case's fibrosis share of the myocardium against the true share, as the mean "
        "absolute difference in percentage points (pp) and the correlation r over all scored cases. Rows in italics "
        "use no fibrosis label (label-free references).",
        "",
        metrics_markdown(metrics),
    ]
    for title, figure in figures.items():
        if figure is not None:
            text += ["", f"## {title}", "", f"![{title}]({figure.name})"]
    path = ws.report / "report.md"
    path.write_text("\n".join(text) + "\n")
    return path
