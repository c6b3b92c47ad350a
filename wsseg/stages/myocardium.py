"""Stages ``train-myo`` and ``predict-myo``: the myocardium segmenter and each case's region of interest."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from wsseg.artefacts import load_model, read_artefact, train_model, write_artefact
from wsseg.augment import segment
from wsseg.config import Params
from wsseg.data.roi import case_boxes
from wsseg.stages.cases import map_cases
from wsseg.workspace import Workspace


def train_myocardium(params: Params, ws: Workspace, device: str) -> Path:
    """Train the myocardium segmenter on the train slices with a drawn myocardium (validated on the val split's).

    Those are the pixel-labelled slices, and with ``myocardium.additions.myocardium_only_masks`` also the
    slices with a myocardium-only mask.
    """
    data = read_artefact(params, ws, "dataset")
    drawn = data["has_myocardium"] if params.myocardium.additions.myocardium_only_masks else data["has_mask"]
    train = drawn & (data["split"] == "train")
    val = data["has_mask"] & (data["split"] == "val")
    images, masks = data["images"][:, None], data["myocardium_mask"].astype(np.float32)

    def fit(segmenter, monitor) -> None:
        segmenter.fit(
            images[train],
            masks[train],
            val_inputs=images[val] if val.any() else None,
            val_targets=masks[val] if val.any() else None,
            monitor=monitor,
        )

    return train_model(params, ws, "myocardium_model", None, device, fit)


def predict_myocardium(params: Params, ws: Workspace, device: str) -> Path:
    """Myocardium probabilities for every slice, and the ROI box of each slice's case.

    Case by case (:func:`~wsseg.stages.cases.map_cases`): torchrun processes share the cases out.
    """
    data = read_artefact(params, ws, "dataset")
    model = load_model(params, ws, "myocardium_model", None, device)

    def predict_case(rows: np.ndarray) -> dict:
        probability = segment(model, data["images"][rows, None], params.myocardium.additions.flips).astype(np.float32)
        return {"probability": probability, "boxes": case_boxes(probability, data["case_id"][rows], params)}

    return write_artefact(
        params, ws, "myocardium", None, map_cases(data["case_id"], predict_case, "predict myocardium")
    )
