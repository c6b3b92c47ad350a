"""Stage ``train-seg``: the fibrosis segmenter, on real masks (pixel) or pseudo-labels (slice, stack).

With ``segmentation.additions.mixed_supervision`` a weak level's U-Net learns from the true masks of
the pixel-labelled train slices and from the pseudo-labels of the others.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from wsseg.artefacts import read_artefact, read_roi_data, train_model
from wsseg.config import Params, Supervision
from wsseg.data.roi import RoiData
from wsseg.workspace import Workspace


def fibrosis_inputs(images: np.ndarray, myocardium: np.ndarray, params: Params, supervision: Supervision) -> np.ndarray:
    """Network input ``(N, C, R, R)``: the image, plus the myocardium where the level gets that channel."""
    channels = [images, myocardium] if params.segmentation.myocardium_channel(supervision) else [images]
    return np.stack(channels, axis=1).astype(np.float32)


def training_set(
    params: Params, ws: Workspace, roi: RoiData, supervision: Supervision
) -> tuple[np.ndarray, np.ndarray]:
    """The rows of the dataset a level's U-Net learns from, and their target masks on the ROI grid."""
    if supervision == "pixel":
        rows = np.flatnonzero(roi.dataset["has_mask"] & (roi.dataset["split"] == "train"))
        return rows, roi.fibrosis_masks(params.data.roi_size)[rows]
    pseudo = read_artefact(params, ws, "pseudo_labels", supervision)
    index, masks = pseudo["index"], pseudo["masks"].astype(np.float32)
    if supervision in params.segmentation.additions.mixed_supervision:  # true masks where they are drawn
        drawn = roi.dataset["has_mask"][index]
        masks[drawn] = roi.fibrosis_masks(params.data.roi_size)[index[drawn]]
    return index, masks


def train_fibrosis(params: Params, ws: Workspace, supervision: Supervision, device: str) -> Path:
    """Train the fibrosis segmenter at one supervision level; validate on the val split's real masks."""
    roi = read_roi_data(params, ws)
    rows, targets = training_set(params, ws, roi, supervision)
    inputs = fibrosis_inputs(roi.images, roi.myocardium, params, supervision)
    val = np.flatnonzero(roi.dataset["has_mask"] & (roi.dataset["split"] == "val"))

    def fit(segmenter, monitor) -> None:
        segmenter.fit(
            inputs[rows],
            targets,
            val_inputs=inputs[val] if val.size else None,
            val_targets=roi.fibrosis_masks(params.data.roi_size)[val] if val.size else None,
            monitor=monitor,
        )

    return train_model(params, ws, "fibrosis_model", supervision, device, fit)
