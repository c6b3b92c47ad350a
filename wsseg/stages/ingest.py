"""Stages ``synth`` and ``ingest``: phantoms or a user's folder -> ``dataset.h5``."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from wsseg import distributed
from wsseg.artefacts import write_artefact
from wsseg.config import Params
from wsseg.data.geometry import grid_view, normalise_intensity, to_grid
from wsseg.data.readers import (
    FIBROSIS_LABELS,
    MYOCARDIUM_LABELS,
    DataError,
    SliceRecord,
    check_stack_label,
    load_image,
    load_label,
    load_myocardium_mask,
    read_folder,
)
from wsseg.data.synthetic import write_phantom_set
from wsseg.progress import track
from wsseg.workspace import Workspace


@distributed.on_main
def synth(params: Params, ws: Workspace) -> Path:
    """Write the seeded synthetic phantom set in the dataset-folder form."""
    return write_phantom_set(ws.synthetic, params.data.synthetic)


def source_folder(params: Params, ws: Workspace) -> Path:
    """The dataset folder that ``ingest`` reads."""
    return ws.synthetic if params.data.source == "synthetic" else Path(params.data.source)


def slice_view(shape: tuple[int, ...], params: Params, spacing: float | None) -> tuple[int, int, int, int]:
    """The region of a slice of ``shape`` (pixel ``spacing`` in mm, if known) that the common grid shows."""
    grid = params.data
    return grid_view((int(shape[0]), int(shape[1])), grid.field_of_view, grid.image_size, spacing, grid.grid_spacing)


def prepare_image(raw: np.ndarray, view: tuple[int, int, int, int], params: Params) -> np.ndarray:
    """A raw slice on the common grid: intensity-normalised to [0, 1] (over the whole slice), ``view`` resized."""
    return to_grid(normalise_intensity(raw), view, params.data.image_size)


def _check_training_labels(
    params: Params, records: list[SliceRecord], slice_label: np.ndarray, stack_label: np.ndarray
) -> None:
    """The train split has what each training stage needs, so no stage learns from one class only."""
    train = np.array([r.split == "train" for r in records])
    pixel = train & np.array([r.pixel_labels for r in records])
    if not pixel.any():
        raise DataError("no train case has pixel labels: the myocardium model needs some (pixel_labels=1 in cases.csv)")
    if not {0, 1} <= set(stack_label[train].tolist()):
        missing = "positive (stack_fibrosis 1)" if 1 not in stack_label[train] else "negative (stack_fibrosis 0)"
        raise DataError(f"the train split has no {missing} case: the fibrosis classifiers need both")
    if "pixel" in params.segmentation.supervisions and not (slice_label[pixel] == 1).any():
        raise DataError(
            "no pixel-labelled train case shows fibrosis: add one, or drop 'pixel' from segmentation.supervisions"
        )


def _check_label_images(records: list[SliceRecord], fibrosis: list[np.ndarray]) -> None:
    """Slice labels given in slices.csv agree with the fibrosis in their label images."""
    for record, mask in zip(records, fibrosis):
        if mask.size and record.slice_fibrosis >= 0 and int(mask.any()) != record.slice_fibrosis:
            shows = "shows fibrosis" if mask.any() else "shows no fibrosis"
            raise DataError(
                f"{record.label}: {shows} but slices.csv gives slice_fibrosis {record.slice_fibrosis} "
                f"for case {record.case_id} slice {record.slice_index}"
            )


def _weak_labels(
    records: list[SliceRecord], fibrosis: list[np.ndarray], cases_csv: Path
) -> tuple[np.ndarray, np.ndarray]:
    """Slice and stack labels, filling unknown ones from label images (slice) and slice labels (stack)."""
    _check_label_images(records, fibrosis)
    slice_label = np.array([r.slice_fibrosis for r in records], dtype=np.int8)
    from_masks = (slice_label < 0) & np.array([mask.size > 0 for mask in fibrosis])
    slice_label[from_masks] = [int(fibrosis[i].any()) for i in np.flatnonzero(from_masks)]
    stack_label = np.array([r.stack_fibrosis for r in records], dtype=np.int8)
    cases = np.array([r.case_id for r in records])
    for case in np.unique(cases):
        rows = cases == case
        check_stack_label(
            case, int(stack_label[rows][0]), slice_label[rows].tolist(), f"{cases_csv} (with the label images)"
        )
        if stack_label[rows][0] < 0 and (slice_label[rows] >= 0).all():
            stack_label[rows] = slice_label[rows].max()
    return slice_label, stack_label


@distributed.on_main
def ingest(params: Params, ws: Workspace) -> Path:
    """Read, check and resample every slice of the source folder into ``dataset.h5``.

    Images go to a common ``image_size`` grid (each slice's ``view`` of it is kept, see
    :func:`slice_view`); label images become heart (cavity and myocardium), myocardium and fibrosis
    masks on that grid and, for evaluation, at the slice's original resolution. Myocardium-only masks
    (``myocardium/``) give the myocardium mask of slices without a label image, and never fibrosis.
    """
    source = source_folder(params, ws)
    records = read_folder(source)
    size = params.data.image_size
    grids: dict[str, list[np.ndarray]] = {"images": [], "heart_mask": [], "myocardium_mask": [], "fibrosis_mask": []}
    myo_original: list[np.ndarray] = []
    fib_original: list[np.ndarray] = []
    shapes, views, spacings = [], [], []
    for record in track(records, "ingest slices"):
        raw = load_image(record)
        label, contour = load_label(record), load_myocardium_mask(record)
        for mask, path in ((label, record.label), (contour, record.myocardium)):
            if mask is not None and mask.shape != raw.shape:
                raise DataError(f"{path}: size {mask.shape} differs from its image {raw.shape}")
        spacing = record.spacing or params.data.pixel_spacing
        view = slice_view(raw.shape, params, spacing)
        shapes.append(raw.shape)
        views.append(view)
        spacings.append(spacing or 0.0)
        grids["images"].append(prepare_image(raw, view, params))
        drawn = label if label is not None else contour  # a myocardium-only mask codes the myocardium as 2 too
        empty = np.zeros((0, 0), np.uint8)
        myo_original.append(np.isin(drawn, MYOCARDIUM_LABELS).astype(np.uint8) if drawn is not None else empty)
        fib_original.append(np.isin(label, FIBROSIS_LABELS).astype(np.uint8) if label is not None else empty)
        heart = (drawn > 0).astype(np.uint8) if drawn is not None else empty  # cavity and myocardium
        for name, full in (
            ("heart_mask", heart),
            ("myocardium_mask", myo_original[-1]),
            ("fibrosis_mask", fib_original[-1]),
        ):
            grids[name].append(
                to_grid(full, view, size, nearest=True) if full.size else np.zeros((size, size), np.float32)
            )
    slice_label, stack_label = _weak_labels(records, fib_original, source / "cases.csv")
    _check_training_labels(params, records, slice_label, stack_label)
    return write_artefact(
        params,
        ws,
        "dataset",
        None,
        {
            "images": np.stack(grids["images"]),
            "heart_mask": np.stack(grids["heart_mask"]).astype(np.uint8),
            "myocardium_mask": np.stack(grids["myocardium_mask"]).astype(np.uint8),
            "fibrosis_mask": np.stack(grids["fibrosis_mask"]).astype(np.uint8),
            "has_mask": np.array([r.pixel_labels for r in records]),
            "has_myocardium": np.array([r.label is not None or r.myocardium is not None for r in records]),
            "myocardium_original": myo_original,
            "fibrosis_original": fib_original,
            "original_shape": np.array(shapes, dtype=np.int64),
            "view": np.array(views, dtype=np.int64),
            "spacing": np.array(spacings, dtype=np.float64),
            "case_id": np.array([r.case_id for r in records]),
            "slice_index": np.array([r.slice_index for r in records]),
            "split": np.array([r.split for r in records]),
            "slice_label": slice_label,
            "stack_label": stack_label,
            "source": np.array([str(r.image) for r in records]),
        },
        image_size=size,
    )
