"""Stage ``train-seg``: the fibrosis segmenter, on real masks (pixel) or pseudo-labels (slice, stack)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from wsseg.checkpoint import load_plugin, resume_path, save_plugin
from wsseg.config import Params, Supervision
from wsseg.data.cache import read_cache
from wsseg.registry import get_plugin
from wsseg.stages.myocardium import RoiData, read_roi_data
from wsseg.training import Monitor, seed_everything
from wsseg.workspace import Workspace, lineage


def fibrosis_inputs(images: np.ndarray, myocardium: np.ndarray, params: Params, supervision: Supervision) -> np.ndarray:
    """Network input ``(N, C, R, R)``: the image, plus the myocardium for the levels in ``segmentation.myocardium_channel``."""
    channels = [images, myocardium] if supervision in params.segmentation.myocardium_channel else [images]
    return np.stack(channels, axis=1).astype(np.float32)


def _training_set(params: Params, ws: Workspace, roi: RoiData, supervision: Supervision) -> tuple[np.ndarray, np.ndarray]:
    if supervision == "pixel":
        rows = np.flatnonzero(roi.dataset["has_mask"] & (roi.dataset["split"] == "train"))
        return rows, roi.fibrosis_masks(params.data.roi_size)[rows]
    pseudo = read_cache(
        ws.pseudo_labels(supervision), expected_config=lineage(params, "pseudo_labels", supervision), rerun=f"wsseg pseudo-label --level {supervision}"
    )
    return pseudo["index"], pseudo["masks"].astype(np.float32)


def train_fibrosis(params: Params, ws: Workspace, supervision: Supervision, device: str) -> Path:
    """Train the fibrosis segmenter at one supervision level; validate on the val split's real masks."""
    seed_everything(params.seed)
    roi = read_roi_data(params, ws)
    rows, targets = _training_set(params, ws, roi, supervision)
    inputs = fibrosis_inputs(roi.images, roi.myocardium, params, supervision)
    val = np.flatnonzero(roi.dataset["has_mask"] & (roi.dataset["split"] == "val"))
    segmenter = get_plugin("segmenter", params.segmentation.plugin)(params.plugin_config("segmentation", supervision), device=device, seed=params.seed)
    monitor = Monitor(
        f"fibrosis-{supervision}",
        ws.curves(f"fibrosis-{supervision}"),
        resume=resume_path(ws.fibrosis_model(supervision)),
        config=lineage(params, "fibrosis", supervision),
    )
    segmenter.fit(
        inputs[rows],
        targets,
        val_inputs=inputs[val] if val.size else None,
        val_targets=roi.fibrosis_masks(params.data.roi_size)[val] if val.size else None,
        monitor=monitor,
    )
    return save_plugin(
        ws.fibrosis_model(supervision),
        segmenter,
        kind="segmenter",
        name=params.segmentation.plugin,
        config_hash=lineage(params, "fibrosis", supervision),
        history=monitor.history,
    )


def load_fibrosis_model(params: Params, ws: Workspace, supervision: Supervision, device: str):
    return load_plugin(
        ws.fibrosis_model(supervision),
        device=device,
        expected_config=lineage(params, "fibrosis", supervision),
        rerun=f"wsseg train-seg --supervision {supervision}",
    )
