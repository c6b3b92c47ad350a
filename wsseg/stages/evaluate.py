"""Stage ``evaluate``: predictions and classifier scores on held-out cases -> ``metrics.json``."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
from rich import box
from rich.table import Table

from wsseg import distributed
from wsseg.artefacts import read_artefact
from wsseg.config import Params
from wsseg.metrics import auroc, case_dice, summary
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


def _segmentation(params: Params, ws: Workspace, data, rows: np.ndarray) -> tuple[dict, dict, dict]:
    index = np.flatnonzero(rows)
    cases = data["case_id"][index]
    truth_fib = [data["fibrosis_original"][i] for i in index]
    with_fibrosis = {c for c, mask in zip(cases, truth_fib) if mask.any()}
    fibrosis: dict = {}
    myocardium: dict = {}
    per_case: dict = {}
    for supervision in params.segmentation.supervisions:
        pred = read_artefact(params, ws, "predictions", supervision)
        scores = case_dice([pred["fibrosis_masks"][i] for i in index], truth_fib, cases)
        flagged = {c for i, c in zip(index, cases) if pred["fibrosis_masks"][i].any()}
        free = set(cases) - with_fibrosis
        fibrosis[supervision] = {
            "dice": summary(scores[c] for c in scores if c in with_fibrosis),
            "fibrosis_free_cases": len(free),
            "fibrosis_free_flagged": len(free & flagged),
        }
        per_case[f"fibrosis_{supervision}"] = scores
        if not myocardium:
            myo = case_dice(
                [pred["myocardium_masks"][i] for i in index], [data["myocardium_original"][i] for i in index], cases
            )
            myocardium = {"dice": summary(myo.values())}
            per_case["myocardium"] = myo
    return fibrosis, myocardium, per_case


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
    cases, and slice/stack AUROC, over the ``evaluate.splits`` cases that have labels.

    The summary goes to ``metrics.json`` (a DVC metric), each case's Dice to ``metrics_per_case.json``.
    """
    data = read_artefact(params, ws, "dataset")
    in_splits = np.isin(data["split"], params.evaluate.splits)
    fibrosis, myocardium, per_case = _segmentation(params, ws, data, in_splits & data["has_mask"])
    metrics = {
        "splits": params.evaluate.splits,
        "n_cases": int(len(np.unique(data["case_id"][in_splits & data["has_mask"]]))),
        "myocardium": myocardium,
        "fibrosis": fibrosis,
        "classification": _classification(params, ws, data, in_splits),
    }
    ws.metrics.parent.mkdir(parents=True, exist_ok=True)
    metrics = _json_safe(metrics)
    ws.metrics.write_text(json.dumps(metrics, indent=2))
    ws.per_case_metrics.write_text(json.dumps(per_case, indent=2))
    return ws.metrics


def format_figure(value: float | None) -> str:
    """A metric to three decimals; ``n/a`` where it is undefined (``None`` in metrics.json)."""
    return "n/a" if value is None else f"{value:.3f}"


def metrics_table(metrics: dict) -> Table:
    """The paper's Tables 1 and 2 in one terminal table."""
    table = Table(
        box=box.SIMPLE_HEAD,
        title=f"wsseg evaluation on {', '.join(metrics['splits'])} ({metrics['n_cases']} labelled cases)",
    )
    for column in ("segmentation", "Dice ± std", "cases", "flagged", "AUC slice", "AUC stack"):
        table.add_column(column)
    table.caption = "flagged: fibrosis-free cases with fibrosis predicted; AUC: AUROC"
    if metrics["myocardium"]:
        d = metrics["myocardium"]["dice"]
        table.add_row("myocardium", f"{format_figure(d['mean'])}±{format_figure(d['std'])}", str(d["n"]), "", "", "")
    for supervision, result in metrics["fibrosis"].items():
        d = result["dice"]
        auc = metrics["classification"].get(supervision, {})
        table.add_row(
            f"fibrosis ({supervision})",
            f"{format_figure(d['mean'])}±{format_figure(d['std'])}",
            str(d["n"]),
            f"{result['fibrosis_free_flagged']}/{result['fibrosis_free_cases']}",
            format_figure(auc.get("slice_auroc")),
            format_figure(auc.get("stack_auroc")),
        )
    return table
