"""Stages ``train-cam`` and ``cams``: weak-label classifiers and their class activation maps."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from wsseg.checkpoint import load_plugin, resume_path, save_plugin
from wsseg.config import Params
from wsseg.data.cache import write_cache
from wsseg.errors import DataError
from wsseg.interfaces import Level, WeakSet
from wsseg.registry import get_plugin
from wsseg.stages.cases import map_cases
from wsseg.stages.myocardium import RoiData, read_roi_data
from wsseg.training import Monitor, seed_everything
from wsseg.workspace import Workspace, lineage


def weak_labels(roi: RoiData, level: Level) -> np.ndarray:
    """Each slice's weak label at ``level`` (its slice label, or its stack's label); -1 where unknown."""
    return roi.dataset["slice_label" if level == "slice" else "stack_label"].astype(np.int64)


def weak_set(roi: RoiData, rows: np.ndarray, level: Level | None = None) -> WeakSet:
    """The slices selected by ``rows`` as a :class:`WeakSet` (with labels when ``level`` is given)."""
    labels = weak_labels(roi, level)[rows] if level else None
    return WeakSet(roi.images[rows], roi.myocardium[rows], roi.stack_ids()[rows], labels)


def _labelled(roi: RoiData, level: Level, split: str) -> np.ndarray:
    return (roi.dataset["split"] == split) & (weak_labels(roi, level) >= 0)


def train_cam(params: Params, ws: Workspace, level: Level, device: str) -> Path:
    """Train the CAM generator on the train split's weak labels at ``level``."""
    seed_everything(params.seed)
    roi = read_roi_data(params, ws)
    train, val = _labelled(roi, level, "train"), _labelled(roi, level, "val")
    labels = weak_labels(roi, level)[train]
    if not (labels == 1).any() or not (labels == 0).any():
        raise DataError(f"the train split has no {'positive' if not (labels == 1).any() else 'negative'} {level} label to learn from")
    generator = get_plugin("cam_generator", params.cam.plugin)(params.plugin_config("cam"), device=device, seed=params.seed)
    monitor = Monitor(f"cam-{level}", ws.curves(f"cam-{level}"), resume=resume_path(ws.cam_model(level)), config=lineage(params, "cams", level))
    generator.fit(weak_set(roi, train, level), level, val=weak_set(roi, val, level) if val.any() else None, monitor=monitor)
    return save_plugin(
        ws.cam_model(level), generator, kind="cam_generator", name=params.cam.plugin, config_hash=lineage(params, "cams", level), history=monitor.history
    )


def load_cam_model(params: Params, ws: Workspace, level: Level, device: str):
    return load_plugin(ws.cam_model(level), device=device, expected_config=lineage(params, "cams", level), rerun=f"wsseg train-cam --level {level}")


def generate_cams(params: Params, ws: Workspace, level: Level, device: str) -> Path:
    """CAMs and classifier scores for every slice; each slice also gets its stack's score.

    Case by case (:func:`~wsseg.stages.cases.map_cases`): torchrun processes share the cases out.
    """
    roi = read_roi_data(params, ws)
    model = load_cam_model(params, ws, level, device)

    def generate_case(rows: np.ndarray) -> dict:
        output = model.generate(weak_set(roi, rows))
        stack_score = np.full(len(rows), output.stack_scores[0], np.float32)
        return {"cams": output.cams.astype(np.float32), "slice_score": output.slice_scores.astype(np.float32), "stack_score": stack_score}

    cams = map_cases(roi.dataset["case_id"], generate_case, f"CAMs ({level})")
    return write_cache(ws.cams(level), cams, config=lineage(params, "cams", level), level=level)
