"""The dataset seen through regions of interest: one box per case around its predicted myocardium.

CAM and fibrosis networks work on these crops (``data.roi_size`` square), which keeps them small
enough to train on a CPU; the boxes travel in the caches so outputs map back to each input grid.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

from wsseg.config import Params
from wsseg.data.cache import Cache
from wsseg.data.geometry import bounding_box, crop, normalise_intensity

__all__ = ["RoiData", "case_boxes", "roi_images"]


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
            warnings.warn(
                f"case {case}: no myocardium predicted on any slice; its region of interest is the image centre",
                stacklevel=2,
            )
        boxes[rows] = bounding_box(union, params.data.roi_margin, min_size)
    return boxes


def roi_images(images: np.ndarray, boxes: np.ndarray, params: Params, size: int | None = None) -> np.ndarray:
    """Crops of ``images`` in ``boxes`` resized to ``size`` (default ``data.roi_size``: what CAM and fibrosis
    networks see), each re-normalised to its own percentiles with ``data.additions.roi_normalise``."""
    crops = crop(images, boxes, size or params.data.roi_size)
    if params.data.additions.roi_normalise:
        crops = np.stack([normalise_intensity(c) for c in crops]) if len(crops) else crops
    return crops


@dataclass
class RoiData:
    """The dataset cache seen through the ROI crops of the myocardium cache."""

    dataset: Cache
    boxes: np.ndarray
    images: np.ndarray
    myocardium: np.ndarray

    @classmethod
    def from_caches(cls, dataset: Cache, myocardium: Cache, params: Params) -> RoiData:
        """Crop the dataset's images and the myocardium probabilities around each case's box."""
        boxes = myocardium["boxes"]
        return cls(
            dataset,
            boxes,
            roi_images(dataset["images"], boxes, params),
            crop(myocardium["probability"], boxes, params.data.roi_size),
        )

    def fibrosis_masks(self, size: int) -> np.ndarray:
        """The ground-truth fibrosis masks (where given) cropped like the images."""
        return (crop(self.dataset["fibrosis_mask"].astype(np.float32), self.boxes, size) > 0.5).astype(np.float32)

    def stack_ids(self) -> np.ndarray:
        """An integer per slice identifying its case."""
        return np.unique(self.dataset["case_id"], return_inverse=True)[1]
