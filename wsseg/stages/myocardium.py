"""Stages ``train-myo`` and ``predict-myo``, and the myocardium-centred crops later stages read."""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from wsseg.augment import flip_averaged
from wsseg.checkpoint import load_plugin, resume_path, save_plugin
from wsseg.config import Params
from wsseg.data.cache import Cache, read_cache, write_cache
from wsseg.data.geometry import bounding_box, crop, normalise_intensity
from wsseg.interfaces import Segmenter
from wsseg.registry import get_plugin
from wsseg.stages.cases import map_cases
from wsseg.training import Monitor, seed_everything
from wsseg.workspace import Workspace, lineage


def read_dataset(params: Params, ws: Workspace) -> Cache:
    return read_cache(ws.dataset, expected_config=lineage(params, "dataset"), rerun="wsseg ingest")


def train_myocardium(params: Params, ws: Workspace, device: str) -> Path:
    """Train the myocardium segmenter on the pixel-labelled train slices."""
    seed_everything(params.seed)
    data = read_dataset(params, ws)
    train = data["has_mask"] & (data["split"] == "train")
    val = data["has_mask"] & (data["split"] == "val")
    segmenter = get_plugin("segmenter", params.myocardium.plugin)(params.plugin_config("myocardium"), device=device, seed=params.seed)
    monitor = Monitor("myocardium", ws.curves("myocardium"), resume=resume_path(ws.myocardium_model), config=lineage(params, "myocardium_model"))
    images, masks = data["images"][:, None], data["myocardium_mask"].astype(np.float32)
    segmenter.fit(
        images[train],
        masks[train],
        val_inputs=images[val] if val.any() else None,
        val_targets=masks[val] if val.any() else None,
        monitor=monitor,
    )
    return save_plugin(
        ws.myocardium_model, segmenter, kind="segmenter", name=params.myocardium.plugin, config_hash=lineage(params, "myocardium_model"), history=monitor.history
    )


def case_boxes(probability: np.ndarray, case_ids: np.ndarray, params: Params) -> np.ndarray:
    """One ROI box per slice: the box around the case's predicted myocardium over all its slices.

    A case without any predicted myocardium gets a centred box of a quarter of the grid, and a warning.
    """
    boxes = np.zeros((len(case_ids), 4))
    min_size = params.data.image_size / 4
    for case in np.unique(case_ids):
        rows = case_ids == case
        union = (probability[rows] > params.myocardium.threshold).any(axis=0)
        if not union.any():
            warnings.warn(f"case {case}: no myocardium predicted on any slice; its region of interest is the image centre")
        boxes[rows] = bounding_box(union, params.data.roi_margin, min_size)
    return boxes


def segment(segmenter: Segmenter, inputs: np.ndarray, flips: bool) -> np.ndarray:
    """``segmenter.predict(inputs)``, averaged over the test-time flips when ``flips``."""
    return flip_averaged(segmenter.predict, inputs) if flips else segmenter.predict(inputs)


def load_myocardium_model(params: Params, ws: Workspace, device: str):
    return load_plugin(ws.myocardium_model, device=device, expected_config=lineage(params, "myocardium_model"), rerun="wsseg train-myo")


def predict_myocardium(params: Params, ws: Workspace, device: str) -> Path:
    """Myocardium probabilities for every slice, and the ROI box of each slice's case.

    Case by case (:func:`~wsseg.stages.cases.map_cases`): torchrun processes share the cases out.
    """
    data = read_dataset(params, ws)
    model = load_myocardium_model(params, ws, device)

    def predict_case(rows: np.ndarray) -> dict:
        probability = segment(model, data["images"][rows, None], params.myocardium.flips).astype(np.float32)
        return {"probability": probability, "boxes": case_boxes(probability, data["case_id"][rows], params)}

    return write_cache(ws.myocardium, map_cases(data["case_id"], predict_case, "predict myocardium"), config=lineage(params, "myocardium"))


@dataclass
class RoiData:
    """The dataset seen through the myocardium ROI crops (``roi_size`` square), as CAM and fibrosis stages use it."""

    dataset: Cache
    boxes: np.ndarray
    images: np.ndarray
    myocardium: np.ndarray

    def fibrosis_masks(self, size: int) -> np.ndarray:
        """The ground-truth fibrosis masks (where given) cropped like the images."""
        return (crop(self.dataset["fibrosis_mask"].astype(np.float32), self.boxes, size) > 0.5).astype(np.float32)

    def stack_ids(self) -> np.ndarray:
        """An integer per slice identifying its case."""
        return np.unique(self.dataset["case_id"], return_inverse=True)[1]


def read_roi_data(params: Params, ws: Workspace) -> RoiData:
    """Crop images and myocardium probabilities around each case's predicted myocardium."""
    dataset = read_dataset(params, ws)
    myo = read_cache(ws.myocardium, expected_config=lineage(params, "myocardium"), rerun="wsseg predict-myo")
    size = params.data.roi_size
    return RoiData(dataset, myo["boxes"], roi_images(dataset["images"], myo["boxes"], params), crop(myo["probability"], myo["boxes"], size))


def roi_images(images: np.ndarray, boxes: np.ndarray, params: Params) -> np.ndarray:
    """The ROI crops of ``images`` that CAM and fibrosis networks see (re-normalised per crop with ``data.roi_normalise``)."""
    crops = crop(images, boxes, params.data.roi_size)
    if params.data.roi_normalise:
        crops = np.stack([normalise_intensity(c) for c in crops]) if len(crops) else crops
    return crops
