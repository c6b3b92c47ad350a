"""Stage ``predict``: trained models -> myocardium and fibrosis for every slice of the dataset cache.

:class:`Predictor` chains the models (myocardium -> ROI crop -> fibrosis, with the slice
classifier where trained); ``wsseg predict INPUT_DIR`` (:mod:`wsseg.stages.predict_folder`) uses
it on folders of slices, volumes or DICOM series.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from wsseg.artefacts import build_plugin, load_model, read_artefact, write_artefact
from wsseg.augment import explain, segment
from wsseg.config import Params, Supervision
from wsseg.data.geometry import boxes_to_original, crop, paste
from wsseg.data.roi import case_boxes, roi_images
from wsseg.interfaces import CAMOutput, WeakSet
from wsseg.postprocess import clear_low_burden, drop_small_lesions, gate
from wsseg.stages.cases import map_cases
from wsseg.stages.fibrosis import fibrosis_inputs
from wsseg.stages.ingest import prepare_image, slice_view
from wsseg.stages.myocardium import MyocardiumFinder
from wsseg.workspace import Workspace


@dataclass
class Prediction:
    """Model outputs for N slices: on the common grid, the ROI grid, and each slice's original size."""

    myocardium_probability: np.ndarray  # (N, S, S)
    boxes: np.ndarray  # (N, 4) on the common grid
    fibrosis_roi: np.ndarray  # (N, R, R) probabilities
    fibrosis_probability: np.ndarray  # (N,) slice-level score
    myocardium_masks: list[np.ndarray]  # original size, uint8 0/1
    fibrosis_masks: list[np.ndarray]


class Predictor:
    """Myocardium model -> ROI crop -> fibrosis model (and the slice classifier, when trained).

    The slice-level score is the slice classifier's probability when ``cam.levels`` holds
    ``slice``, else the highest fibrosis probability in the slice. With
    ``segmentation.additions.slice_level_labeler``, slice-level fibrosis is the pseudo-labeler's mask
    of the classifier's CAM on the slices it scores above 0.5, and empty on the others; with
    ``segmentation.additions.classifier_gate`` (``case_gate``), a level's fibrosis is kept on those
    slices (in the cases with such a slice) only; ``min_lesion_pixels`` drops smaller lesions and
    ``min_case_burden`` clears the cases whose predicted scar burden is under it.
    """

    def __init__(self, params: Params, ws: Workspace, supervision: Supervision, device: str = "cpu"):
        self.params, self.supervision = params, supervision
        self.myocardium = MyocardiumFinder.load(params, ws, device)
        self.classifier = load_model(params, ws, "cam_model", "slice", device) if "slice" in params.cam.levels else None
        self.labeler = build_plugin(params, "pseudo_label") if params.predicts_with_labeler(supervision) else None
        self.fibrosis = (
            None if self.labeler is not None else load_model(params, ws, "fibrosis_model", supervision, device)
        )

    def __call__(self, images: np.ndarray, case_ids: np.ndarray, shapes: np.ndarray, views: np.ndarray) -> Prediction:
        """Predict for ``images`` ``(N, S, S)`` on the common grid, each the ``view`` of a slice of ``shape``."""
        params, size = self.params, self.params.data.roi_size
        myo, _ = self.myocardium(images, case_ids)
        boxes = case_boxes(myo, case_ids, params)
        image_roi, myo_roi = roi_images(images, boxes, params), crop(myo, boxes, size)
        classified = None
        if self.classifier is not None:
            stacks = np.unique(case_ids, return_inverse=True)[1]
            classified = explain(
                self.classifier,
                WeakSet(image_roi, myo_roi, stacks),
                params.cam.additions.flips,
                params.cam.additions.scales,
            )
        if self.fibrosis is not None:
            fibrosis = segment(
                self.fibrosis,
                fibrosis_inputs(image_roi, myo_roi, case_ids, params, self.supervision),
                params.segmentation.additions.flips,
            )
        else:
            assert classified is not None, "the labeler needs the slice classifier (params validation ensures it)"
            fibrosis = self._label(classified, image_roi, myo_roi)
        additions, threshold = params.segmentation.additions, params.segmentation.threshold_for(self.supervision)
        if additions.restrict_to_myocardium:
            fibrosis = np.where(myo_roi >= params.myocardium.threshold, fibrosis, 0).astype(np.float32)
        for gated, cases in ((additions.classifier_gate, None), (additions.case_gate, case_ids)):
            if self.supervision in gated:
                assert classified is not None, "a gate needs the slice classifier (params validation ensures it)"
                fibrosis = gate(fibrosis, classified.slice_scores, cases)
        fibrosis = drop_small_lesions(fibrosis, threshold, additions.min_lesion_pixels)
        fibrosis = clear_low_burden(
            fibrosis,
            myo_roi,
            case_ids,
            (threshold, params.myocardium.threshold),
            additions.min_case_burden.get(self.supervision, 0.0),
        )
        score = classified.slice_scores if classified is not None else fibrosis.reshape(len(fibrosis), -1).max(axis=1)
        grid = images.shape[1]
        myo_masks, fib_masks = [], []
        for i, (shape, view) in enumerate(zip(shapes, views)):
            shape = tuple(int(s) for s in shape)
            myo_masks.append(
                (paste(myo[i : i + 1], np.array([view]), shape)[0] > params.myocardium.threshold).astype(np.uint8)
            )
            box = boxes_to_original(boxes[i : i + 1], tuple(view), grid)
            fib_masks.append((paste(fibrosis[i : i + 1], box, shape)[0] > threshold).astype(np.uint8))
        return Prediction(myo, boxes, fibrosis, np.asarray(score, np.float32), myo_masks, fib_masks)

    def predict_raw(self, raws: list[np.ndarray], case_ids: np.ndarray, spacings: list[float | None]) -> Prediction:
        """Predict for raw slices (one case's, with their pixel spacings in mm where known)."""
        views = [slice_view(raw.shape, self.params, spacing) for raw, spacing in zip(raws, spacings)]
        images = np.stack([prepare_image(raw, view, self.params) for raw, view in zip(raws, views)])
        return self(images, case_ids, np.array([raw.shape for raw in raws]), np.array(views))

    def _label(self, classified: CAMOutput, images: np.ndarray, myocardium: np.ndarray) -> np.ndarray:
        """The pseudo-labeler's masks of the classifier's CAMs, on the slices it scores above 0.5."""
        labeler = self.labeler
        assert labeler is not None
        slices = zip(classified.cams, images, myocardium, classified.slice_scores)
        return np.stack(
            [labeler.label(cam, image, myo, bool(score > 0.5)) for cam, image, myo, score in slices]
        ).astype(np.float32)


def predict_dataset(params: Params, ws: Workspace, supervision: Supervision, device: str) -> Path:
    """Predict every slice of ``dataset.h5`` into ``predictions-<supervision>.h5`` for evaluation.

    Case by case (:func:`~wsseg.stages.cases.map_cases`): torchrun processes share the cases out.
    """
    data = read_artefact(params, ws, "dataset")
    predictor = Predictor(params, ws, supervision, device)

    def predict_case(rows: np.ndarray) -> dict:
        result = predictor(
            data["images"][rows], data["case_id"][rows], data["original_shape"][rows], data["view"][rows]
        )
        return {
            "fibrosis_probability": result.fibrosis_probability,
            "fibrosis_roi": result.fibrosis_roi.astype(np.float16),
            "boxes": result.boxes,
            "myocardium_masks": result.myocardium_masks,
            "fibrosis_masks": result.fibrosis_masks,
        }

    predictions = map_cases(data["case_id"], predict_case, f"predict ({supervision})")
    return write_artefact(params, ws, "predictions", supervision, predictions, supervision=supervision)
