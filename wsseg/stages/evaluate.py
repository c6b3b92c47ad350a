"""Stage ``evaluate``: predictions and classifier scores on held-out cases -> ``metrics.json``."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from rich import box
from rich.table import Table

from wsseg import distributed
from wsseg.artefacts import read_artefact
from wsseg.burden import burden_agreement, scar_burden
from wsseg.config import Params
from wsseg.data.geometry import paste
from wsseg.metrics import auroc, case_dice, summary
from wsseg.reference import REFERENCES, label_free
from wsseg.workspace import Workspace


def _classification(params: Params, ws: Workspace, data, rows: np.ndarray) -> dict:
    results = {}
    for level in params.cam.levels:
        cams = read_artefact(params, ws, "cams", level)
        slices = rows & (data["slice_label"] >= 0)
        _, first = np.unique(data["case_id"], return_index=True)
        stacks = np.intersect1d(first, np.flatnonzero(rows & (data["stack_label"] >= 0)))
        results[level] = {
            "slice_auroc": auroc(cams["slice_score"][slices], data["slice_label"][slices]),
            "stack_auroc": auroc(cams["stack_score"][stacks], data["stack_label"][stacks]),
            "n_slices": int(slices.sum()),
            "n_stacks": int(stacks.size),
        }
    return results


@dataclass
class _Truth:
    """The labelled slices being scored: their cases and true masks on each slice's original grid."""

    cases: np.ndarray
    myocardium: list[np.ndarray]
    fibrosis: list[np.ndarray]


def _fibrosis_figures(fibrosis: list[np.ndarray], myocardium: list[np.ndarray], truth: _Truth) -> tuple[dict, dict]:
    """Fibrosis Dice over the cases with fibrosis, the fibrosis-free cases flagged and the scar burden's
    agreement with the truth; and each case's Dice."""
    cases = list(truth.cases)
    with_fibrosis = {c for c, mask in zip(cases, truth.fibrosis) if mask.any()}
    free = set(cases) - with_fibrosis
    flagged = {c for mask, c in zip(fibrosis, cases) if mask.any()}
    scores = case_dice(fibrosis, truth.fibrosis, cases)
    figures = {
        "dice": summary(scores[c] for c in scores if c in with_fibrosis),
        "fibrosis_free_cases": len(free),
        "fibrosis_free_flagged": len(free & flagged),
        "burden": _burden_agreement(fibrosis, myocardium, truth),
    }
    return figures, scores


def _burden_agreement(fibrosis: list[np.ndarray], myocardium: list[np.ndarray], truth: _Truth) -> dict:
    """Each case's fibrosis share of the myocardium (:func:`~wsseg.burden.scar_burden`) against the true share."""
    shares = []
    for case in dict.fromkeys(truth.cases):
        rows = np.flatnonzero(truth.cases == case)
        predicted = scar_burden([myocardium[i] for i in rows], [fibrosis[i] for i in rows], None)
        true = scar_burden([truth.myocardium[i] for i in rows], [truth.fibrosis[i] for i in rows], None)
        shares.append((predicted.fibrosis_percent or 0.0, true.fibrosis_percent or 0.0))
    return burden_agreement(*zip(*shares))


def _truth(data, rows: np.ndarray) -> _Truth:
    index = np.flatnonzero(rows)
    return _Truth(
        data["case_id"][index],
        [data["myocardium_original"][i] for i in index],
        [data["fibrosis_original"][i] for i in index],
    )


def _segmentation(params: Params, ws: Workspace, data, rows: np.ndarray) -> tuple[dict, dict, dict]:
    index, truth = np.flatnonzero(rows), _truth(data, rows)
    fibrosis: dict = {}
    myocardium: dict = {}
    per_case: dict = {}
    for supervision in params.segmentation.supervisions:
        pred = read_artefact(params, ws, "predictions", supervision)
        walls = [pred["myocardium_masks"][i] for i in index]
        fibrosis[supervision], per_case[f"fibrosis_{supervision}"] = _fibrosis_figures(
            [pred["fibrosis_masks"][i] for i in index], walls, truth
        )
        if not myocardium:
            myo = case_dice(walls, truth.myocardium, list(truth.cases))
            myocardium = {"dice": summary(myo.values())}
            per_case["myocardium"] = myo
    return fibrosis, myocardium, per_case


def _label_free(params: Params, ws: Workspace, data, rows: np.ndarray) -> tuple[dict, dict]:
    """The :mod:`wsseg.reference` rows: Otsu inside the predicted myocardium, ungated and gated by the
    slice classifier (when ``cam.levels`` has ``slice``), on each slice's original grid."""
    index, truth = np.flatnonzero(rows), _truth(data, rows)
    wall = read_artefact(params, ws, "myocardium")["probability"][index] > params.myocardium.threshold
    scores = read_artefact(params, ws, "cams", "slice")["slice_score"][index] if "slice" in params.cam.levels else None
    grids = [
        (view, (int(height), int(width)))
        for view, (height, width) in zip(data["view"][index], data["original_shape"][index])
    ]

    def original(masks: np.ndarray) -> list[np.ndarray]:
        return [
            paste(mask[None].astype(np.float32), np.array([view]), shape)[0] > 0.5
            for mask, (view, shape) in zip(masks, grids)
        ]

    walls = original(wall)
    figures, per_case = {}, {}
    for name, masks in label_free(data["images"][index], wall, scores).items():
        figures[name], per_case[f"fibrosis_{name}"] = _fibrosis_figures(original(masks), walls, truth)
    return figures, per_case


def _json_safe(value):
    """``value`` with NaN (undefined figures, e.g. AUROC without both classes) as ``None``."""
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


@distributed.on_main
def evaluate(params: Params, ws: Workspace) -> Path:
    """Myocardium Dice, fibrosis Dice per supervision (cases with fibrosis), fibrosis on fibrosis-free
    cases, scar burden agreement, and slice/stack AUROC, over the ``evaluate.splits`` cases that have
    labels; beside the levels, the same fibrosis figures for the label-free references
    (:mod:`wsseg.reference`).

    The summary goes to ``metrics.json`` (a DVC metric), each case's Dice to ``metrics_per_case.json``.
    """
    data = read_artefact(params, ws, "dataset")
    in_splits = np.isin(data["split"], params.evaluate.splits)
    labelled = in_splits & data["has_mask"]
    fibrosis, myocardium, per_case = _segmentation(params, ws, data, labelled)
    references, reference_cases = _label_free(params, ws, data, labelled)
    metrics = {
        "splits": params.evaluate.splits,
        "n_cases": int(len(np.unique(data["case_id"][in_splits & data["has_mask"]]))),
        "myocardium": myocardium,
        "fibrosis": fibrosis,
        "label_free": references,
        "classification": _classification(params, ws, data, in_splits),
    }
    ws.metrics.parent.mkdir(parents=True, exist_ok=True)
    metrics = _json_safe(metrics)
    ws.metrics.write_text(json.dumps(metrics, indent=2))
    ws.per_case_metrics.write_text(json.dumps(per_case | reference_cases, indent=2))
    return ws.metrics


def format_figure(value: float | None) -> str:
    """A metric to three decimals; ``n/a`` where it is undefined (``None`` in metrics.json)."""
    return "n/a" if value is None else f"{value:.3f}"


def format_burden(burden: dict) -> str:
    """The burden agreement as ``3.2 pp, 0.81`` (mean absolute difference, correlation)."""
    r = "n/a" if burden["pearson_r"] is None else f"{burden['pearson_r']:.2f}"
    return f"{burden['mean_abs_diff_pp']:.1f} pp, {r}"


def metrics_table(metrics: dict) -> Table:
    """The paper's Tables 1 and 2 in one terminal table."""
    table = Table(
        box=box.SIMPLE_HEAD,
        title=f"wsseg evaluation on {', '.join(metrics['splits'])} ({metrics['n_cases']} labelled cases)",
    )
    table.add_column("tissue", min_width=10)
    for column in ("Dice ± std", "cases", "flagged", "burden", "AUC slice/stack"):
        table.add_column(column, no_wrap=True)  # figures stay whole; the names wrap in a narrow terminal
    table.caption = (
        "flagged: fibrosis-free cases with fibrosis predicted. burden: each case's fibrosis share of the "
        "myocardium against the true one, mean absolute difference and correlation. AUC: AUROC."
    )
    if metrics["myocardium"]:
        d = metrics["myocardium"]["dice"]
        table.add_row(
            "myocardium", f"{format_figure(d['mean'])}±{format_figure(d['std'])}", str(d["n"]), end_section=True
        )
    auc = metrics["classification"]
    rows = [(f"fibrosis ({s})", result, auc.get(s, {})) for s, result in metrics["fibrosis"].items()]
    rows += [(f"[italic]{REFERENCES[n]}[/italic]", result, {}) for n, result in metrics.get("label_free", {}).items()]
    for label, result, aucs in rows:
        d = result["dice"]
        table.add_row(
            label,
            f"{format_figure(d['mean'])}±{format_figure(d['std'])}",
            str(d["n"]),
            f"{result['fibrosis_free_flagged']}/{result['fibrosis_free_cases']}",
            format_burden(result["burden"]),
            f"{format_figure(aucs.get('slice_auroc'))}/{format_figure(aucs.get('stack_auroc'))}" if aucs else "",
        )
    return table
