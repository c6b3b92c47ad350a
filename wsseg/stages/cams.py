"""Stages ``train-cam`` and ``predict-cam``: weak-label classifiers and their class activation maps."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from wsseg.artefacts import load_model, read_roi_data, train_model, write_artefact
from wsseg.augment import explain
from wsseg.config import Params
from wsseg.data.roi import RoiData
from wsseg.errors import DataError
from wsseg.interfaces import Level, WeakSet
from wsseg.stages.cases import map_cases
from wsseg.workspace import Workspace


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
    roi = read_roi_data(params, ws)
    train, val = _labelled(roi, level, "train"), _labelled(roi, level, "val")
    labels = weak_labels(roi, level)[train]
    if not (labels == 1).any() or not (labels == 0).any():
        raise DataError(
            f"the train split has no {'negative' if (labels == 1).any() else 'positive'} {level} label to learn from"
        )

    def fit(generator, monitor) -> None:
        generator.fit(
            weak_set(roi, train, level), level, val=weak_set(roi, val, level) if val.any() else None, monitor=monitor
        )

    return train_model(params, ws, "cam_model", level, device, fit)


def predict_cams(params: Params, ws: Workspace, level: Level, device: str) -> Path:
    """CAMs and classifier scores for every slice; each slice also gets its stack's score.

    Case by case (:func:`~wsseg.stages.cases.map_cases`): torchrun processes share the cases out.
    """
    roi = read_roi_data(params, ws)
    model = load_model(params, ws, "cam_model", level, device)

    def generate_case(rows: np.ndarray) -> dict:
        output = explain(model, weak_set(roi, rows), params.cam.additions.flips, params.cam.additions.scales)
        stack_score = np.full(len(rows), output.stack_scores[0], np.float32)
        return {
            "cams": output.cams.astype(np.float32),
            "slice_score": output.slice_scores.astype(np.float32),
            "stack_score": stack_score,
        }

    cams = map_cases(roi.dataset["case_id"], generate_case, f"CAMs ({level})")
    return write_artefact(params, ws, "cams", level, cams, level=level)
