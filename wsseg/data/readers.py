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
import gzip
import re
import struct
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
    """Input data that wsseg cannot use, with a one-line message that says what to fix.

    Line breaks in the message (e.g. from a file name read from a CSV) are shown as ``\\n``.
    """

    def __init__(self, message: str):
        super().__init__(str(message).replace("\r", "\\r").replace("\n", "\\n"))


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
        with path.open(newline="", encoding="utf-8-sig") as f:
            return [{k.strip(): (v or "").strip() for k, v in row.items() if k} for row in csv.DictReader(f)]
    except FileNotFoundError:
        raise DataError(f"{path} is missing") from None
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: not UTF-8 text (byte {exc.start}); save it as UTF-8 CSV") from None
    except (OSError, csv.Error) as exc:
        raise DataError(f"{path}: cannot read it as CSV ({exc})") from None


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
    """``cases.csv`` as ``{case_id: {split, pixel_labels, stack_fibrosis}}``, checked.

    ``pixel_labels`` is ``None`` where the column is missing or empty (then label files decide).
    """
    path = folder / "cases.csv"
    rows = _rows(path)
    _require(rows, ("case_id", "split"), path)
    cases = {}
    for line, row in enumerate(rows, start=2):
        where = f"{path}:{line}"
        case = row["case_id"]
        if not case:
            raise DataError(f"{where}: case_id is empty")
        if case in cases:
            raise DataError(f"{where}: case {case} is listed twice")
        if row["split"] not in SPLITS:
            raise DataError(f"{where}: split must be one of {', '.join(SPLITS)}, got {row['split']!r}")
        pixel_labels = _binary(row.get("pixel_labels", ""), where)
        cases[case] = {
            "split": row["split"],
            "pixel_labels": None if pixel_labels < 0 else pixel_labels == 1,
            "stack_fibrosis": _binary(row.get("stack_fibrosis", ""), where),
            "where": where,
        }
    return cases


def _slice_table(path: Path, cases: dict[str, dict], columns: tuple[str, ...]) -> list[tuple[str, dict[str, str], str, int]]:
    """Rows of ``slices.csv`` as ``(where, row, case, index)``: known cases, integer indices, no duplicates."""
    rows = _rows(path)
    _require(rows, ("case_id", "slice_index", *columns), path)
    table, seen = [], set()
    for line, row in enumerate(rows, start=2):
        where = f"{path}:{line}"
        case = row["case_id"]
        if case not in cases:
            raise DataError(f"{where}: case {case!r} is not in cases.csv")
        if not re.fullmatch(r"[0-9]+", row["slice_index"]):  # str.isdigit() also takes e.g. '²'
            raise DataError(f"{where}: slice_index must be a non-negative integer, got {row['slice_index']!r}")
        key = (case, int(row["slice_index"]))
        if key in seen:
            raise DataError(f"{where}: slice {key[1]} of case {case} is listed twice")
        seen.add(key)
        table.append((where, row, case, key[1]))
    return table


def _slice_records(folder: Path, cases: dict[str, dict]) -> list[SliceRecord]:
    records = []
    for where, row, case, index in _slice_table(folder / "slices.csv", cases, ("image",)):
        image = folder / row["image"]
        label = folder / row["label"] if row.get("label") else None
        for file in (image, label):
            if file is not None and not file.is_file():
                raise DataError(f"{where}: file {file} does not exist")
        info = cases[case]
        records.append(
            SliceRecord(
                case_id=case,
                slice_index=index,
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
        for where, row, case, index in _slice_table(folder / "slices.csv", cases, ()):
            slice_labels[(case, index)] = (_binary(row.get("slice_fibrosis", ""), where), where)
    records = []
    for case, info in cases.items():
        image = _volume_file(folder / "images", case)
        if image is None:
            raise DataError(f"{folder / 'images'}: no volume for case {case} ({', '.join(VOLUME_SUFFIXES)})")
        label = _volume_file(folder / "labels", case)
        shape = read_volume(image)[0].shape
        if label is not None and read_volume(label)[0].shape != shape:
            raise DataError(f"{label}: size {read_volume(label)[0].shape} differs from its image {shape}")
        for z in range(shape[0]):
            fibrosis = slice_labels.pop((case, z), (-1, ""))[0]
            records.append(SliceRecord(case, z, image, label, info["split"], label is not None, fibrosis, info["stack_fibrosis"], z))
    if slice_labels:
        (case, z), (_, where) = next(iter(slice_labels.items()))
        raise DataError(f"{where}: case {case} has no slice {z} (its volume has fewer slices)")
    return records


def _check_case(case: str, info: dict, slices: list[SliceRecord], folder: Path) -> None:
    """One case's slices agree with its row in cases.csv: pixel labels and stack label."""
    where = info["where"]
    if not slices:
        raise DataError(f"{where}: case {case} has no slices")
    unlabelled = [r.slice_index for r in slices if r.label is None]
    if info["pixel_labels"] and unlabelled:
        raise DataError(f"{where}: case {case} has pixel_labels 1 but slice {unlabelled[0]} has no label image")
    if info["pixel_labels"] is False and len(unlabelled) < len(slices):
        raise DataError(f"{where}: case {case} has pixel_labels 0 but label images in {folder / 'labels'} or slices.csv")
    check_stack_label(case, info["stack_fibrosis"], [r.slice_fibrosis for r in slices], where)


def check_stack_label(case: str, stack: int, slice_labels: list[int], where: str) -> None:
    """Refuse a stack label that contradicts its slice labels (0/1, or -1 where unknown)."""
    if stack == 0 and 1 in slice_labels:
        raise DataError(f"{where}: case {case} has stack_fibrosis 0 but a slice with fibrosis")
    if stack == 1 and slice_labels and all(label == 0 for label in slice_labels):
        raise DataError(f"{where}: case {case} has stack_fibrosis 1 but none of its slices has fibrosis")


def read_folder(folder: str | Path) -> list[SliceRecord]:
    """Every slice of a dataset folder (PNG slices or volumes), with its labels, checked.

    Raises :class:`DataError` for missing or unreadable files, unknown cases, duplicate slices,
    labels other than 0/1, label files that contradict ``pixel_labels``, and a stack label that
    contradicts its slice labels.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"{folder} is not a folder")
    if not any(folder.iterdir()):
        raise DataError(f"{folder} is empty: a dataset folder holds cases.csv, slices.csv, images/ and labels/ (see the README)")
    cases = read_cases(folder)
    has_volumes = any(_volume_file(folder / "images", c) for c in cases)
    records = _volume_records(folder, cases) if has_volumes else _slice_records(folder, cases)
    for case, info in cases.items():
        _check_case(case, info, [r for r in records if r.case_id == case], folder)
    return sorted(records, key=lambda r: (r.case_id, r.slice_index))


# Where NIfTI-1 (header size 348) and NIfTI-2 (540) keep dim[8], datatype, bitpix and vox_offset: (format, byte offset).
_NIFTI_FIELDS = {348: (("8h", 40), ("h", 70), ("h", 72), ("f", 108)), 540: (("8q", 16), ("h", 12), ("h", 14), ("q", 168))}


def _nifti_float_voxels(path: Path) -> np.ndarray | None:
    """The float voxels of a NIfTI-1/2 file as stored (empty for integer data), or ``None`` if the file is cut short.

    SimpleITK reads both the missing voxels of a truncated file and NaN voxels as zeros.
    """
    try:
        with (gzip.open if path.name.endswith(".gz") else open)(path, "rb") as f:
            raw = f.read()
        for order in "<>":
            fields = _NIFTI_FIELDS.get(struct.unpack_from(order + "i", raw)[0])
            if fields is not None:
                dims, (datatype,), (bitpix,), (offset,) = (struct.unpack_from(order + fmt, raw, at) for fmt, at in fields)
                break
        else:
            return None
    except (OSError, EOFError, struct.error):
        return None
    voxels = int(np.prod([max(d, 1) for d in dims[1 : dims[0] + 1]])) if 0 < dims[0] <= 7 else 0
    start, end = int(offset), int(offset) + voxels * bitpix // 8
    if len(raw) < end:
        return None
    floats = {16: "f4", 64: "f8"}.get(datatype)
    return np.frombuffer(raw[start:end], order + floats) if floats else np.zeros(0)


@lru_cache(maxsize=4)
def read_volume(path: Path) -> tuple[np.ndarray, tuple[float, ...]]:
    """A NIfTI/MHA/NRRD volume as ``(Z, Y, X)`` float32 and its spacing ``(z, y, x)`` in mm."""
    import SimpleITK as sitk

    unreadable = DataError(f"{path}: cannot read volume (corrupt, truncated, or not a NIfTI/MHA/NRRD file)")
    try:
        image = sitk.ReadImage(str(path))
    except RuntimeError:
        raise unreadable from None
    if path.name.endswith((".nii", ".nii.gz")):
        stored = _nifti_float_voxels(path)
        if stored is None:
            raise unreadable
        if not np.isfinite(stored).all():
            raise DataError(f"{path}: contains NaN or infinite values")
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
            mode, array = image.mode, np.asarray(image)
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        raise DataError(f"{path}: cannot read image ({exc})") from None
    if mode not in ("L", "I", "I;16", "F", "P", "1"):
        raise DataError(f"{path}: expected a grey image, got mode {mode}")
    return array


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
