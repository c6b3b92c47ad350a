"""Readers for the folders a user brings: 2D PNG slices or one volume per case, plus label CSVs.

The folder form (the shared EMIDEC export uses it)::

    cases.csv    case_id, split, pixel_labels, [n_slices], stack_fibrosis
    slices.csv   case_id, slice_index, image, label, slice_fibrosis
    images/      <case>_slice<NNN>.png          or   <case>.nii.gz / .nii / .mha / .nrrd
    labels/      same names, for pixel-labelled cases only

Label images use the EMIDEC coding: 0 background, 1 LV cavity, 2 myocardium, 3 infarct,
4 no-reflow; myocardium = {2, 3, 4}, fibrosis = {3, 4}. For volumes, ``slices.csv`` is optional
(without it every z slice is read, slice labels come from the label volume when there is one)
and its ``image``/``label`` columns may be left out.
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
from PIL import Image

SPLITS = ("train", "val", "test")
LABEL_VALUES = (0, 1, 2, 3, 4)
MYOCARDIUM_LABELS = (2, 3, 4)
FIBROSIS_LABELS = (3, 4)
VOLUME_SUFFIXES = (".nii.gz", ".nii", ".mha", ".mhd", ".nrrd")
SLICE_NAME = re.compile(r"^(?P<case>.+)_slice(?P<index>\d+)\.png$")


class DataError(ValueError):
    """Input data that wsseg cannot use, with a message that says what to fix."""


@dataclass(frozen=True)
class SliceRecord:
    """One 2D slice: where its pixels are and what is known about it.

    ``slice_fibrosis`` and ``stack_fibrosis`` are 0/1, or -1 where unknown (e.g. test cases).
    For volumes, ``z`` is the slice's index in the volume file.
    """

    case_id: str
    slice_index: int
    image: Path
    label: Path | None = None
    split: str = "test"
    pixel_labels: bool = False
    slice_fibrosis: int = -1
    stack_fibrosis: int = -1
    z: int | None = None


def _rows(path: Path) -> list[dict[str, str]]:
    try:
        with path.open(newline="") as f:
            return [{k.strip(): (v or "").strip() for k, v in row.items() if k} for row in csv.DictReader(f)]
    except FileNotFoundError:
        raise DataError(f"{path} is missing") from None


def _binary(value: str, where: str, allow_empty: bool = True) -> int:
    if value == "" and allow_empty:
        return -1
    if value not in ("0", "1", "0.0", "1.0"):
        raise DataError(f"{where}: expected 0 or 1, got {value!r}")
    return int(float(value))


def _require(rows: list[dict[str, str]], columns: tuple[str, ...], path: Path) -> None:
    missing = [c for c in columns if rows and c not in rows[0]]
    if missing or not rows:
        raise DataError(f"{path}: {'no rows' if not rows else 'missing columns ' + ', '.join(missing)}")


def read_cases(folder: Path) -> dict[str, dict]:
    """``cases.csv`` as ``{case_id: {split, pixel_labels, stack_fibrosis}}``, checked."""
    path = folder / "cases.csv"
    rows = _rows(path)
    _require(rows, ("case_id", "split"), path)
    cases = {}
    for line, row in enumerate(rows, start=2):
        where = f"{path}:{line}"
        case = row["case_id"]
        if case in cases:
            raise DataError(f"{where}: case {case} is listed twice")
        if row["split"] not in SPLITS:
            raise DataError(f"{where}: split must be one of {', '.join(SPLITS)}, got {row['split']!r}")
        cases[case] = {
            "split": row["split"],
            "pixel_labels": _binary(row.get("pixel_labels", "0") or "0", where) == 1,
            "stack_fibrosis": _binary(row.get("stack_fibrosis", ""), where),
        }
    return cases


def _slice_records(folder: Path, cases: dict[str, dict]) -> list[SliceRecord]:
    path = folder / "slices.csv"
    rows = _rows(path)
    _require(rows, ("case_id", "slice_index", "image"), path)
    records, seen = [], set()
    for line, row in enumerate(rows, start=2):
        where = f"{path}:{line}"
        case = row["case_id"]
        if case not in cases:
            raise DataError(f"{where}: case {case} is not in cases.csv")
        if not row["slice_index"].isdigit():
            raise DataError(f"{where}: slice_index must be a non-negative integer, got {row['slice_index']!r}")
        key = (case, int(row["slice_index"]))
        if key in seen:
            raise DataError(f"{where}: slice {key[1]} of case {case} is listed twice")
        seen.add(key)
        image = folder / row["image"]
        label = folder / row["label"] if row.get("label") else None
        for file in (image, label):
            if file is not None and not file.is_file():
                raise DataError(f"{where}: file {file} does not exist")
        info = cases[case]
        records.append(
            SliceRecord(
                case_id=case,
                slice_index=key[1],
                image=image,
                label=label,
                split=info["split"],
                pixel_labels=label is not None,
                slice_fibrosis=_binary(row.get("slice_fibrosis", ""), where),
                stack_fibrosis=info["stack_fibrosis"],
            )
        )
    return records


def _volume_file(directory: Path, case: str) -> Path | None:
    for suffix in VOLUME_SUFFIXES:
        if (directory / f"{case}{suffix}").is_file():
            return directory / f"{case}{suffix}"
    return None


def _volume_records(folder: Path, cases: dict[str, dict]) -> list[SliceRecord]:
    slice_labels = {}
    if (folder / "slices.csv").exists():
        for line, row in enumerate(_rows(folder / "slices.csv"), start=2):
            slice_labels[(row["case_id"], int(row["slice_index"]))] = _binary(row.get("slice_fibrosis", ""), f"slices.csv:{line}")
    records = []
    for case, info in cases.items():
        image = _volume_file(folder / "images", case)
        if image is None:
            raise DataError(f"{folder / 'images'}: no volume for case {case} ({', '.join(VOLUME_SUFFIXES)})")
        label = _volume_file(folder / "labels", case)
        depth = read_volume(image)[0].shape[0]
        for z in range(depth):
            records.append(
                SliceRecord(case, z, image, label, info["split"], label is not None, slice_labels.get((case, z), -1), info["stack_fibrosis"], z)
            )
    return records


def read_folder(folder: str | Path) -> list[SliceRecord]:
    """Every slice of a dataset folder (PNG slices or volumes), with its labels, checked.

    Raises :class:`DataError` for missing files, unknown cases, duplicate slices, labels
    other than 0/1, and a negative stack label on a case with a positive slice.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"{folder} is not a folder")
    cases = read_cases(folder)
    has_volumes = any(_volume_file(folder / "images", c) for c in list(cases)[:1])
    records = _volume_records(folder, cases) if has_volumes else _slice_records(folder, cases)
    for case, info in cases.items():
        slices = [r for r in records if r.case_id == case]
        if not slices:
            raise DataError(f"{folder}: case {case} has no slices")
        if info["stack_fibrosis"] == 0 and any(r.slice_fibrosis == 1 for r in slices):
            raise DataError(f"{folder}: case {case} has stack_fibrosis 0 but a slice with slice_fibrosis 1")
    return sorted(records, key=lambda r: (r.case_id, r.slice_index))


@lru_cache(maxsize=4)
def read_volume(path: Path) -> tuple[np.ndarray, tuple[float, ...]]:
    """A NIfTI/MHA/NRRD volume as ``(Z, Y, X)`` float32 and its spacing ``(z, y, x)`` in mm."""
    import SimpleITK as sitk

    try:
        image = sitk.ReadImage(str(path))
    except RuntimeError as exc:
        raise DataError(f"{path}: cannot read volume ({str(exc).strip().splitlines()[-1]})") from None
    array = sitk.GetArrayFromImage(image)
    if array.ndim == 2:
        array = array[None]
    if array.ndim != 3:
        raise DataError(f"{path}: expected a 3D grey volume, got shape {array.shape}")
    return array.astype(np.float32), tuple(reversed(image.GetSpacing()))


def _read_png(path: Path) -> np.ndarray:
    try:
        with Image.open(path) as image:
            image.load()
            if image.mode not in ("L", "I", "I;16", "F", "P", "1"):
                raise DataError(f"{path}: expected a grey image, got mode {image.mode}")
            return np.asarray(image)
    except (OSError, SyntaxError) as exc:
        raise DataError(f"{path}: cannot read image ({exc})") from None


def load_image(record: SliceRecord) -> np.ndarray:
    """The slice's raw grey values ``(H, W)`` float32, checked for NaN/inf."""
    array = read_volume(record.image)[0][record.z] if record.z is not None else _read_png(record.image)
    array = np.asarray(array, dtype=np.float32)
    if array.ndim != 2:
        raise DataError(f"{record.image}: expected a 2D grey slice, got shape {array.shape}")
    if not np.isfinite(array).all():
        raise DataError(f"{record.image}: contains NaN or infinite values")
    return array


def load_label(record: SliceRecord) -> np.ndarray | None:
    """The slice's label image ``(H, W)`` uint8 in EMIDEC coding, or ``None``."""
    if record.label is None:
        return None
    array = read_volume(record.label)[0][record.z] if record.z is not None else _read_png(record.label)
    values = np.unique(array)
    bad = values[~np.isin(values, LABEL_VALUES)]
    if bad.size:
        raise DataError(f"{record.label}: label values must be in {LABEL_VALUES}, found {bad[:5].tolist()}")
    return array.astype(np.uint8)


def list_slice_images(folder: str | Path) -> list[SliceRecord]:
    """Records for a bare folder of ``<case>_slice<NNN>.png`` files (no CSVs), as ``predict`` reads."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"{folder} is not a folder")
    records = []
    for path in sorted(folder.iterdir()):
        match = SLICE_NAME.match(path.name)
        if match:
            records.append(SliceRecord(match["case"], int(match["index"]), path))
    if not records:
        raise DataError(f"{folder} holds no <case>_slice<NNN>.png files")
    return sorted(records, key=lambda r: (r.case_id, r.slice_index))
