"""Stage ``train-seg``: the fibrosis segmenter, on real masks (pixel) or pseudo-labels (slice, stack).

With ``segmentation.additions.mixed_supervision`` a weak level's U-Net learns from the true masks of
the pixel-labelled train slices and from the pseudo-labels of the others; with ``self_training`` it
is then trained again on its own predictions. With ``wall_scar_dropout`` some training slices' wall
channel loses the scar next to the cavity, as a predicted wall does at inference.
"""

from __future__ import annotations

from pathlib import Path
from typing import cast

import numpy as np
from scipy import ndimage

from wsseg.artefacts import read_artefact, read_roi_data, train_model
from wsseg.augment import segment
from wsseg.config import Params, Supervision
from wsseg.data.neighbours import with_neighbours
from wsseg.data.roi import RoiData
from wsseg.interfaces import Level, Segmenter
from wsseg.stages.cams import weak_labels
from wsseg.workspace import Workspace


def fibrosis_inputs(
    images: np.ndarray, myocardium: np.ndarray, case_ids: np.ndarray, params: Params, supervision: Supervision
) -> np.ndarray:
    """Network input ``(N, C, R, R)``: the image, then the myocardium where the level gets that channel, then
    the slices below and above in the case where it gets those (``images`` each case's, in order)."""
    channels = [images, myocardium] if params.segmentation.myocardium_channel(supervision) else [images]
    if supervision in params.segmentation.additions.neighbours:
        stacked = with_neighbours(images, case_ids)
        channels += [stacked[:, 1], stacked[:, 2]]  # below, above
    return np.stack(channels, axis=1).astype(np.float32)


DROPOUT_DEPTH = 4  # the deepest the scar dropped from the wall channel reaches, in ROI pixels


def drop_scar_from_wall(wall: np.ndarray, scar: np.ndarray, depth: int) -> np.ndarray:
    """``wall`` without the ``scar`` pixels reachable from the cavity within ``depth`` steps through scar:
    the wall a wall model predicts where bright scar meets the bright blood pool."""
    inside, removed = wall > 0.5, np.zeros(wall.shape, bool)
    scar = (scar > 0.5) & inside
    front = ndimage.binary_fill_holes(inside) & ~inside  # the cavity
    for _ in range(depth):
        front = ndimage.binary_dilation(front) & scar & ~removed
        removed |= front
    return np.where(removed, 0, wall).astype(wall.dtype)


def with_wall_dropout(inputs: np.ndarray, targets: np.ndarray, share: float, seed: int) -> np.ndarray:
    """``inputs`` with the wall channel of a random ``share`` of the slices passed through
    :func:`drop_scar_from_wall` (each to a random depth of 1 to ``DROPOUT_DEPTH`` pixels)."""
    rng = np.random.default_rng(seed)
    inputs = inputs.copy()
    for i in np.flatnonzero(rng.random(len(inputs)) < share):
        inputs[i, 1] = drop_scar_from_wall(inputs[i, 1], targets[i], int(rng.integers(1, DROPOUT_DEPTH + 1)))
    return inputs


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


def self_labels(
    segmenter: Segmenter, inputs: np.ndarray, targets: np.ndarray, positive: np.ndarray, kept: np.ndarray
) -> np.ndarray:
    """The targets of a self-training round: the segmenter's flip-averaged predictions above 0.5 on the
    ``positive`` slices, empty on the others, and the old targets where ``kept`` (true masks)."""
    predicted = (segment(segmenter, inputs, flips=True) > 0.5).astype(np.float32)
    labels = np.where(positive[:, None, None], predicted, 0).astype(np.float32)
    labels[kept] = targets[kept]
    return labels


def train_fibrosis(params: Params, ws: Workspace, supervision: Supervision, device: str) -> Path:
    """Train the fibrosis segmenter at one supervision level; validate on the val split's real masks."""
    roi = read_roi_data(params, ws)
    rows, targets = training_set(params, ws, roi, supervision)
    inputs = fibrosis_inputs(roi.images, roi.myocardium, roi.dataset["case_id"], params, supervision)
    train_inputs = inputs[rows]
    dropout = params.segmentation.additions.wall_scar_dropout.get(supervision, 0)
    if dropout:
        train_inputs = with_wall_dropout(train_inputs, targets, dropout, params.seed)
    val = np.flatnonzero(roi.dataset["has_mask"] & (roi.dataset["split"] == "val"))
    val_inputs, val_targets = (inputs[val], roi.fibrosis_masks(params.data.roi_size)[val]) if val.size else (None, None)
    rounds = 0 if supervision == "pixel" else params.segmentation.additions.self_training.get(supervision, 0)
    if rounds:
        positive = weak_labels(roi, cast(Level, supervision))[rows] == 1
        kept = roi.dataset["has_mask"][rows] & (supervision in params.segmentation.additions.mixed_supervision)

    def fit(segmenter, monitor) -> None:
        labels = targets
        for round_ in range(rounds + 1):
            if round_:
                labels = self_labels(segmenter, train_inputs, targets, positive, kept)
            segmenter.fit(
                train_inputs,
                labels,
                val_inputs=val_inputs,
                val_targets=val_targets,
                monitor=monitor.retraining(round_) if round_ else monitor,
            )

    return train_model(params, ws, "fibrosis_model", supervision, device, fit)
