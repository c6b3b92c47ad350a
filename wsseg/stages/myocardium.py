"""Stages ``train-heart``, ``train-myo`` and ``predict-myo``: find the heart at any zoom, then segment its wall.

Step 1 (``heart``) sees each whole slice shrunk to ``heart.image_size`` and finds the heart (cavity
and myocardium); it is trained with strong zoom, shift and contrast augmentation, so it finds
hearts that fill a fifth of the image or most of it. Of its union over a case's slices, the region
holding the most heart probability through the stack, grown by ``heart.margin``
(``heart.additions.found_margin`` where set), is the case's heart box (with ``heart.zoom_in``, found
again on a closer window).
Step 2 (``myocardium``) segments the wall inside that box, cropped to ``myocardium.roi_size``: one
canonical scale whatever the scanner's field of view (re-normalised to the crop's intensity
percentiles with ``data.additions.roi_normalise``). The wall's probabilities are pasted back on the
common grid, where the later stages find their regions of interest.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from scipy import ndimage

from wsseg.artefacts import load_model, read_artefact, train_model, write_artefact
from wsseg.augment import segment
from wsseg.config import Params
from wsseg.data.cache import Cache
from wsseg.data.geometry import bounding_box, crop, normalise_intensity, paste, resize
from wsseg.data.neighbours import with_neighbours
from wsseg.data.roi import case_boxes, roi_images
from wsseg.stages.cases import map_cases
from wsseg.workspace import Workspace


def _drawn(params: Params, data: Cache, split: str) -> np.ndarray:
    """The slices of ``split`` whose myocardium is drawn: pixel labels, or also myocardium-only masks if asked."""
    drawn = data["has_myocardium"] if params.myocardium.additions.myocardium_only_masks else data["has_mask"]
    return drawn & (data["split"] == split)


def _drawn_fit(params: Params, data: Cache, inputs: np.ndarray, targets: np.ndarray) -> Callable[[Any, Any], None]:
    """``fit(segmenter, monitor)`` on the drawn train slices, validated on the drawn val slices (if any)."""
    train, val = _drawn(params, data, "train"), _drawn(params, data, "val")

    def fit(segmenter: Any, monitor: Any) -> None:
        segmenter.fit(
            inputs[train],
            targets[train],
            val_inputs=inputs[val] if val.any() else None,
            val_targets=targets[val] if val.any() else None,
            monitor=monitor,
        )

    return fit


def heart_inputs(images: np.ndarray, params: Params) -> np.ndarray:
    """Whole slices ``(N, S, S)`` on the heart finder's grid: ``(N, 1, h, h)``."""
    side = params.heart.image_size
    return resize(images, (side, side))[:, None]


def heart_boxes(probability: np.ndarray, case_ids: np.ndarray, params: Params, margin: float) -> np.ndarray:
    """One box per slice: around its case's :func:`heart_region` at ``heart.threshold``, grown by ``margin``
    of its extent.

    A case where no heart is found gets a centred box of half the grid.
    """
    boxes = np.zeros((len(case_ids), 4))
    grid = probability.shape[-1]
    for case in np.unique(case_ids):
        rows = case_ids == case
        found = heart_region(probability[rows], params.heart.threshold)
        boxes[rows] = bounding_box(found, margin, 0 if found.any() else grid / 2)
    return boxes


def heart_region(probability: np.ndarray, threshold: float) -> np.ndarray:
    """A case's heart on its grid: of the 8-connected regions where ``probability`` ``(n, H, W)`` exceeds
    ``threshold`` on some slice, the one holding the most probability over all ``n`` slices.

    A heart runs through the slices of a stack; a confident stray region on one or two of them (a
    bright organ taken for heart) holds less, however large it is there.
    """
    found: np.ndarray = np.any(probability > threshold, axis=0)
    regions, count = ndimage.label(found, structure=np.ones((3, 3)))
    if count <= 1:
        return found
    mass = ndimage.sum(probability.sum(axis=0), regions, range(1, count + 1))
    return regions == 1 + int(np.argmax(mass))


def wall_inputs(images: np.ndarray, boxes: np.ndarray, case_ids: np.ndarray, params: Params) -> np.ndarray:
    """The heart boxes of ``images`` at the wall model's scale ``(N, 1, r, r)`` (re-normalised as ROI crops are);
    with ``myocardium.additions.neighbours`` ``(N, 3, r, r)``: each crop, then its case's slices below and above."""
    crops = roi_images(images, boxes, params, params.myocardium.roi_size)
    return with_neighbours(crops, case_ids) if params.myocardium.additions.neighbours else crops[:, None]


def train_heart(params: Params, ws: Workspace, device: str) -> Path:
    """Train the heart finder on the whole train slices whose myocardium is drawn (validated on val's)."""
    data = read_artefact(params, ws, "dataset")
    side = params.heart.image_size
    inputs = heart_inputs(data["images"], params)
    targets = (resize(data["heart_mask"].astype(np.float32), (side, side)) > 0.5).astype(np.float32)
    return train_model(params, ws, "heart_model", None, device, _drawn_fit(params, data, inputs, targets))


def train_myocardium(params: Params, ws: Workspace, device: str) -> Path:
    """Train the wall model on the true heart boxes of the train slices whose myocardium is drawn.

    Those are the pixel-labelled slices, and with ``myocardium.additions.myocardium_only_masks`` also the
    slices with a myocardium-only mask; validated on the val split's. With
    ``myocardium.additions.cavity_class`` the targets are three classes: background, cavity, wall.
    """
    data = read_artefact(params, ws, "dataset")
    boxes = heart_boxes(data["heart_mask"].astype(np.float32), data["case_id"], params, params.heart.margin)
    inputs = wall_inputs(data["images"], boxes, data["case_id"], params)
    side = params.myocardium.roi_size
    targets = (crop(data["myocardium_mask"].astype(np.float32), boxes, side) > 0.5).astype(np.float32)
    if params.myocardium.additions.cavity_class:  # 0 background, 1 cavity, 2 wall
        targets += crop(data["heart_mask"].astype(np.float32), boxes, side) > 0.5
    return train_model(params, ws, "myocardium_model", None, device, _drawn_fit(params, data, inputs, targets))


@dataclass
class MyocardiumFinder:
    """The myocardium step at inference: the heart finder, then the wall model inside each case's heart box."""

    params: Params
    heart: Any
    wall: Any

    @classmethod
    def load(cls, params: Params, ws: Workspace, device: str) -> MyocardiumFinder:
        """Both trained models of ``ws``, refused if stale."""
        heart = load_model(params, ws, "heart_model", None, device)
        return cls(params, heart, load_model(params, ws, "myocardium_model", None, device))

    def __call__(self, images: np.ndarray, case_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Myocardium probabilities on the grid of ``images`` ``(N, S, S)``, and each slice's heart box."""
        grid = images.shape[-1]
        boxes = self.find_hearts(images, case_ids)
        inputs = wall_inputs(images, boxes, case_ids, self.params)
        wall = segment(self.wall, inputs, self.params.myocardium.additions.flips)
        return paste(wall, boxes, (grid, grid)).astype(np.float32), boxes

    def find_hearts(self, images: np.ndarray, case_ids: np.ndarray) -> np.ndarray:
        """Each slice's heart box: the heart finder on the whole slice, then (``heart.zoom_in``) on a
        window twice the heart's extent around it (at least ``heart.additions.min_window`` of the slice;
        normalised to its own percentiles), where that window is smaller than the slice."""
        params, flips, grid = self.params, self.params.myocardium.additions.flips, images.shape[-1]
        heart = resize(segment(self.heart, heart_inputs(images, params), flips), (grid, grid))
        margin = params.heart.found_margin
        boxes = heart_boxes(heart, case_ids, params, margin)
        if not params.heart.zoom_in:
            return boxes
        centres, sides = (boxes[:, :2] + boxes[:, 2:]) / 2, (boxes[:, 2] - boxes[:, 0]) / (1 + 2 * margin)
        sides = np.maximum(sides, params.heart.additions.min_window * grid / 2)
        windows = np.concatenate([centres - sides[:, None], centres + sides[:, None]], axis=1)
        closer = 2 * sides < 0.9 * grid
        if closer.any():  # each window normalised over what it shows, as a whole slice is at ingest
            inputs = np.stack(
                [normalise_intensity(c) for c in crop(images[closer], windows[closer], params.heart.image_size)]
            )[:, None]
            heart[closer] = paste(segment(self.heart, inputs, flips), windows[closer], (grid, grid))
            boxes = heart_boxes(heart, case_ids, params, margin)
        return boxes


def predict_myocardium(params: Params, ws: Workspace, device: str) -> Path:
    """Myocardium probabilities for every slice, its case's heart box, and the ROI box of the later stages.

    With ``myocardium.additions.drawn_train_walls`` the train slices whose myocardium is drawn get that
    wall (probability 0 or 1) instead, so the later stages learn inside the true wall.

    Case by case (:func:`~wsseg.stages.cases.map_cases`): torchrun processes share the cases out.
    """
    data = read_artefact(params, ws, "dataset")
    finder = MyocardiumFinder.load(params, ws, device)
    drawn = data["has_myocardium"] & (data["split"] == "train") & params.myocardium.additions.drawn_train_walls

    def predict_case(rows: np.ndarray) -> dict:
        probability, hearts = finder(data["images"][rows], data["case_id"][rows])
        known = drawn[rows]  # the later stages see these slices' drawn wall
        probability[known] = data["myocardium_mask"][rows][known]
        boxes = case_boxes(probability, data["case_id"][rows], params)
        return {"probability": probability, "heart_boxes": hearts, "boxes": boxes}

    return write_artefact(
        params, ws, "myocardium", None, map_cases(data["case_id"], predict_case, "predict myocardium")
    )
