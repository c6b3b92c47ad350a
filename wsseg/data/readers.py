"""Readers for the folders a user brings: 2D PNG slices, one volume or DICOM series per case, plus label CSVs.

The folder form (the shared EMIDEC export uses it)::

    cases.csv    case_id, split, pixel_labels, [n_slices], stack_fibrosis, [myocardium_labels], [series]
    slices.csv   case_id, slice_index, image, label, slice_fibrosis, [myocardium]
    images/      <case>_slice<NNN>.png          or   <case>.nii.gz / .nii / .mha / .nrrd
    labels/      same names, for pixel-labelled cases only
    myocardium/  same names, myocardium-only masks for cases without pixel labels (optional)

Label images use the EMIDEC coding: 0 background, 1 LV cavity, 2 myocardium, 3 infarct,
4 no-reflow; myocardium = {2, 3, 4}, fibrosis = {3, 4}. Myocardium-only masks use 0, 1 and 2
only (any scar merged into 2): they feed the myocardium model and never say where fibrosis is.
For volumes, ``slices.csv`` is optional (without it every z slice is read, slice labels come from
the label volume when there is one) and its ``image``/``label`` columns may be left out.

A DICOM dataset names each case's series in the ``series`` column of ``cases.csv``: its
SeriesInstanceUID, or a sub-folder of ``images/`` that holds that one usable series
(:mod:`wsseg.data.dicom` reads ``images/``, files of any names, nested). Its label and myocardium
volumes (``labels/<case>.nii.gz`` ...) lie on the series' voxel grid (slices in order along the
normal), which the NIfTI masks of ``wsseg predict`` show; size, spacing, origin and direction are checked.
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from wsseg.data.dicom import DicomSeries, check_grid, list_series, read_slice
from wsseg.data.trust import check_inside, check_size, existing_file, safe_name
from wsseg.data.volumes import VOLUME_SUFFIXES, in_plane_spacing, read_volume, volume_case
from wsseg.errors import DataError, excerpt

SPLITS = ("train", "val", "test")
LABEL_VALUES = (0, 1, 2, 3, 4)
MYOCARDIUM_MASK_VALUES = (0, 1, 2)
MYOCARDIUM_LABELS = (2, 3, 4)
FIBROSIS_LABELS = (3, 4)
SLICE_NAME = re.compile(r"^(?P<case>.+)_slice(?P<index>[0-9]{1,6})\.png$")


@dataclass(frozen=True)
class SliceRecord:
    """One 2D slice: where its pixels are and what is known about it.

    ``slice_fibrosis`` and ``stack_fibrosis`` are 0/1, or -1 where unknown (e.g. test cases).
    ``myocardium`` is a myocardium-only mask (0 background, 1 cavity, 2 myocardium with any scar
    merged in) for a slice without a label image. For volumes, ``z`` is the slice's index in the
    volume file and ``spacing`` its in-plane pixel spacing in mm (``None`` for PNG slices). A DICOM
    series' slice is file ``z`` of ``series`` (in slice order) and slice ``z`` of its label volumes; its
    ``image`` is ``images/<series id>``, since the files' own paths may hold a patient's name.
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
    myocardium: Path | None = None
    spacing: float | None = None
    series: DicomSeries | None = None


def _rows(path: Path) -> list[dict[str, str]]:
    if path.exists() and not path.is_file():
        raise DataError(f"{path} is not a file")
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
        raise DataError(f"{where}: expected 0 or 1, got {excerpt(value)}")
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
        safe_name(case, "case_id", where)
        if case in cases:
            raise DataError(f"{where}: case {case} is listed twice")
        if row["split"] not in SPLITS:
            raise DataError(f"{where}: split must be one of {', '.join(SPLITS)}, got {excerpt(row['split'])}")
        pixel_labels = _binary(row.get("pixel_labels", ""), where)
        myocardium_labels = _binary(row.get("myocardium_labels", ""), where)
        cases[case] = {
            "split": row["split"],
            "pixel_labels": None if pixel_labels < 0 else pixel_labels == 1,
            "myocardium_labels": None if myocardium_labels < 0 else myocardium_labels == 1,
            "stack_fibrosis": _binary(row.get("stack_fibrosis", ""), where),
            "series": row.get("series", ""),
            "where": where,
        }
    return cases


def _slice_table(
    path: Path, cases: dict[str, dict], columns: tuple[str, ...]
) -> list[tuple[str, dict[str, str], str, int]]:
    """Rows of ``slices.csv`` as ``(where, row, case, index)``: known cases, integer indices, no duplicates."""
    rows = _rows(path)
    _require(rows, ("case_id", "slice_index", *columns), path)
    table, seen = [], set()
    for line, row in enumerate(rows, start=2):
        where = f"{path}:{line}"
        case = row["case_id"]
        if case not in cases:
            raise DataError(f"{where}: case {excerpt(case)} is not in cases.csv")
        if not re.fullmatch(r"[0-9]{1,6}", row["slice_index"]):  # str.isdigit() also takes e.g. '²'
            raise DataError(
                f"{where}: slice_index must be a non-negative integer below 1000000, got {excerpt(row['slice_index'])}"
            )
        key = (case, int(row["slice_index"]))
        if key in seen:
            raise DataError(f"{where}: slice {key[1]} of case {case} is listed twice")
        seen.add(key)
        table.append((where, row, case, key[1]))
    return table


def _slice_records(folder: Path, cases: dict[str, dict]) -> list[SliceRecord]:
    records = []
    for where, row, case, index in _slice_table(folder / "slices.csv", cases, ("image",)):
        image = existing_file(folder, row["image"], where)
        label = existing_file(folder, row["label"], where) if row.get("label") else None
        myocardium = existing_file(folder, row["myocardium"], where) if row.get("myocardium") else None
        if label is not None and myocardium is not None:
            raise DataError(
                f"{where}: give a label image or a myocardium mask, not both (the label image holds the myocardium)"
            )
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
                myocardium=myocardium,
            )
        )
    return records


def _volume_file(folder: Path, kind: str, case: str) -> Path | None:
    """The volume of ``case`` in ``folder/kind`` (``images``, ``labels``, ``myocardium``), checked to lie inside it."""
    for suffix in VOLUME_SUFFIXES:
        path = folder / kind / f"{case}{suffix}"
        if path.is_file():
            return check_inside(path, folder)
    return None


def _case_series(folder: Path, cases: dict[str, dict]) -> dict[str, DicomSeries]:
    """The DICOM series that each case's ``series`` cell names: a SeriesInstanceUID or a sub-folder of images/."""
    images = folder / "images"
    found = list_series(images)
    by_uid = {s.uid: s for s in found}
    chosen: dict[str, DicomSeries] = {}
    for case, info in cases.items():
        where, named = info["where"], info["series"]
        if not named:
            raise DataError(f"{where}: case {case} names no series (a DICOM dataset names one for every case)")
        series = by_uid.get(named)
        if series is None:  # a sub-folder; its name is never quoted, since it may hold a patient's name
            root = check_inside(images / named, images, shown=f"{where}: the series of case {case}").resolve()
            under = [s for s in found if all(f.resolve().is_relative_to(root) for f in s.files)]
            if len(under) != 1:
                raise DataError(
                    f"{where}: the series of case {case} is not a SeriesInstanceUID of a usable series in "
                    f"{images}, nor a sub-folder holding exactly one (it holds {len(under)})"
                )
            series = under[0]
        other = next((c for c, s in chosen.items() if s == series), None)
        if other is not None:
            raise DataError(f"{where}: case {case} names the series of case {other} ({series.label}) too")
        chosen[case] = series
    return chosen


def _volume_records(folder: Path, cases: dict[str, dict], series: dict[str, DicomSeries] | None) -> list[SliceRecord]:
    """The slices of one volume (or, with ``series``, one DICOM series) per case, with their label volumes."""
    slice_labels = {}
    if (folder / "slices.csv").exists():
        for where, row, case, index in _slice_table(folder / "slices.csv", cases, ()):
            slice_labels[(case, index)] = (_binary(row.get("slice_fibrosis", ""), where), where)
    records = []
    for case, info in cases.items():
        stack = series[case] if series is not None else None
        label = _volume_file(folder, "labels", case)
        myocardium = _volume_file(folder, "myocardium", case)
        if label is not None and myocardium is not None:
            raise DataError(f"{myocardium}: case {case} has a label volume too; give one or the other")
        spacing: tuple[float, ...]
        if stack is not None:
            shape, spacing = stack.shape, stack.spacing
            images = [folder / "images" / stack.case_id] * shape[0]  # the files' own paths stay out of caches
            for mask, what in ((label, "label volume"), (myocardium, "myocardium volume")):
                if mask is not None:
                    check_grid(stack, mask, what)
        else:
            image = _volume_file(folder, "images", case)
            if image is None:
                raise DataError(f"{folder / 'images'}: no volume for case {case} ({', '.join(VOLUME_SUFFIXES)})")
            volume, spacing = read_volume(image)
            shape, images = volume.shape, [image] * volume.shape[0]
        for mask in (label, myocardium):
            mask_shape = read_volume(mask)[0].shape if mask is not None else shape
            if mask_shape != shape:
                raise DataError(f"{mask}: size {mask_shape} differs from its image {shape}")
        for z in range(shape[0]):
            fibrosis = slice_labels.pop((case, z), (-1, ""))[0]
            records.append(
                SliceRecord(
                    case_id=case,
                    slice_index=z,
                    image=images[z],
                    label=label,
                    split=info["split"],
                    pixel_labels=label is not None,
                    slice_fibrosis=fibrosis,
                    stack_fibrosis=info["stack_fibrosis"],
                    z=z,
                    myocardium=myocardium,
                    spacing=in_plane_spacing(spacing),
                    series=stack,
                )
            )
    if slice_labels:
        (case, z), (_, where) = next(iter(slice_labels.items()))
        raise DataError(f"{where}: case {case} has no slice {z} (its volume has fewer slices)")
    return records


def _check_case(case: str, info: dict, slices: list[SliceRecord], folder: Path) -> None:
    """One case's slices agree with its row in cases.csv: pixel labels, myocardium masks and stack label."""
    where = info["where"]
    if not slices:
        raise DataError(f"{where}: case {case} has no slices")
    unlabelled = [r.slice_index for r in slices if r.label is None]
    if info["pixel_labels"] and unlabelled:
        raise DataError(f"{where}: case {case} has pixel_labels 1 but slice {unlabelled[0]} has no label image")
    if info["pixel_labels"] is False and len(unlabelled) < len(slices):
        raise DataError(
            f"{where}: case {case} has pixel_labels 0 but label images in {folder / 'labels'} or slices.csv"
        )
    without = [r.slice_index for r in slices if r.label is None and r.myocardium is None]
    if info["myocardium_labels"] and without:
        raise DataError(
            f"{where}: case {case} has myocardium_labels 1 but slice {without[0]} has no label image or myocardium mask"
        )
    if info["myocardium_labels"] is False and any(r.myocardium is not None for r in slices):
        raise DataError(
            f"{where}: case {case} has myocardium_labels 0 but myocardium masks in {folder / 'myocardium'} "
            "or slices.csv"
        )
    check_stack_label(case, info["stack_fibrosis"], [r.slice_fibrosis for r in slices], where)


def check_stack_label(case: str, stack: int, slice_labels: list[int], where: str) -> None:
    """Refuse a stack label that contradicts its slice labels (0/1, or -1 where unknown)."""
    if stack == 0 and 1 in slice_labels:
        raise DataError(f"{where}: case {case} has stack_fibrosis 0 but a slice with fibrosis")
    if stack == 1 and slice_labels and all(label == 0 for label in slice_labels):
        raise DataError(f"{where}: case {case} has stack_fibrosis 1 but none of its slices has fibrosis")


def read_folder(folder: str | Path) -> list[SliceRecord]:
    """Every slice of a dataset folder (PNG slices, volumes or DICOM series), with its labels, checked.

    Raises :class:`DataError` for missing or unreadable files, unknown cases, duplicate slices,
    labels other than 0/1, label files that contradict ``pixel_labels``, and a stack label that
    contradicts its slice labels.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"{folder} is not a folder")
    if not any(folder.iterdir()):
        raise DataError(
            f"{folder} is empty: a dataset folder holds cases.csv, slices.csv, images/ and labels/ (see the README)"
        )
    cases = read_cases(folder)
    if any(info["series"] for info in cases.values()):
        records = _volume_records(folder, cases, _case_series(folder, cases))
    elif any(_volume_file(folder, "images", c) for c in cases):
        records = _volume_records(folder, cases, None)
    else:
        records = _slice_records(folder, cases)
    for case, info in cases.items():
        _check_case(case, info, [r for r in records if r.case_id == case], folder)
    return sorted(records, key=lambda r: (r.case_id, r.slice_index))


def _read_png(path: Path) -> np.ndarray:
    try:
        with Image.open(path, formats=["PNG"]) as image:
            check_size(tuple(reversed(image.size)), path)
            image.load()
            mode, array = image.mode, np.asarray(image)
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        raise DataError(f"{path}: cannot read image ({exc})") from None
    if mode not in ("L", "I", "I;16", "F", "P", "1"):
        raise DataError(f"{path}: expected a grey image, got mode {mode}")
    return array


def load_image(record: SliceRecord) -> np.ndarray:
    """The slice's raw grey values ``(H, W)`` float32, checked for NaN/inf."""
    if record.series is not None:
        return read_slice(record.series, record.slice_index)  # slice_index is z
    array = read_volume(record.image)[0][record.z] if record.z is not None else _read_png(record.image)
    array = np.asarray(array, dtype=np.float32)
    if array.ndim != 2:
        raise DataError(f"{record.image}: expected a 2D grey slice, got shape {array.shape}")
    if not np.isfinite(array).all():
        raise DataError(f"{record.image}: contains NaN or infinite values")
    return array


def _load_coded(path: Path, z: int | None, allowed: tuple[int, ...], what: str) -> np.ndarray:
    array = read_volume(path)[0][z] if z is not None else _read_png(path)
    values = np.unique(array)
    bad = values[~np.isin(values, allowed)]
    if bad.size:
        raise DataError(f"{path}: {what} values must be in {allowed}, found {bad[:5].tolist()}")
    return array.astype(np.uint8)


def load_myocardium_mask(record: SliceRecord) -> np.ndarray | None:
    """The slice's myocardium-only mask ``(H, W)`` uint8 (0 background, 1 cavity, 2 myocardium), or ``None``.

    A 3 or 4 is refused: it would be a fibrosis label, which a myocardium-only mask must not carry.
    """
    if record.myocardium is None:
        return None
    return _load_coded(record.myocardium, record.z, MYOCARDIUM_MASK_VALUES, "myocardium mask")


def load_label(record: SliceRecord) -> np.ndarray | None:
    """The slice's label image ``(H, W)`` uint8 in EMIDEC coding, or ``None``."""
    if record.label is None:
        return None
    return _load_coded(record.label, record.z, LABEL_VALUES, "label")


def _folder_entries(folder: Path) -> list[Path]:
    """The entries of a folder given on the command line, which must exist."""
    if not folder.is_dir():
        raise DataError(f"{folder} is not a folder")
    return sorted(folder.iterdir())


def list_slice_images(folder: str | Path) -> list[SliceRecord]:
    """Records for a bare folder of ``<case>_slice<NNN>.png`` files (no CSVs), as ``predict`` reads."""
    folder = Path(folder)
    records = []
    for path in _folder_entries(folder):
        match = SLICE_NAME.match(path.name)
        if match and path.is_file():
            check_inside(path, folder)
            records.append(SliceRecord(safe_name(match["case"], "case id", str(path)), int(match["index"]), path))
    if not records:
        raise DataError(f"{folder} holds no <case>_slice<NNN>.png files")
    return sorted(records, key=lambda r: (r.case_id, r.slice_index))


def list_volumes(folder: str | Path) -> list[Path]:
    """The volumes (one per case, named ``<case>`` + a volume suffix) of a bare folder, as ``predict`` reads."""
    folder = Path(folder)
    volumes = [path for path in _folder_entries(folder) if path.name.endswith(VOLUME_SUFFIXES) and path.is_file()]
    for path in volumes:
        check_inside(path, folder)
        safe_name(volume_case(path), "case id", str(path))
    return volumes
