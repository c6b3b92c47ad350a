"""DICOM in and out: single-frame 2D series read with pydicom, masks written back as DICOM SEG (highdicom).

A folder of DICOM files (any names, nested folders, several series) is grouped by
SeriesInstanceUID; each series' slices are ordered by their position along the slice normal
(ImagePositionPatient projected on the cross product of ImageOrientationPatient's two axes), never
by file name or InstanceNumber. A series that is not a single-frame 2D MR stack of one geometry
(a localiser, multi-frame images, mixed orientations or sizes, uneven slice spacing...) is skipped
with a warning that names it and the reason; a series whose transfer syntax the installed decoders
cannot read stops the command with a :class:`~wsseg.errors.DataError`.

Privacy: a series is named only by :func:`series_id`, a hash of its SeriesInstanceUID, and by its
SeriesNumber. No patient or study tag, no UID and no path below the input folder goes into a
message, a file name or a table; pydicom's and highdicom's own warnings are silenced, since they
may quote tag values. The patient and study modules are copied into the DICOM SEG only, as the
standard requires.
"""

from __future__ import annotations

import hashlib
import logging
import os
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from wsseg.data.trust import check_inside, check_size
from wsseg.errors import DataError, excerpt
from wsseg.progress import track

__all__ = [
    "DicomSeries",
    "check_grid",
    "list_series",
    "nifti_reference",
    "read_series",
    "read_slice",
    "series_id",
    "write_segmentation",
]

TOLERANCE_MM = 0.01
"""Positions and spacings may differ by this many mm, or 1 % of the slice spacing if larger."""


def series_id(uid: str) -> str:
    """The case id (and output name) of a series: ``series-`` and the first 10 hex digits of its UID's SHA-256."""
    return "series-" + hashlib.sha256(uid.encode()).hexdigest()[:10]


@dataclass(frozen=True)
class DicomSeries:
    """One usable series: its files in slice order and its voxel grid.

    ``spacing`` is ``(slice, row, column)`` in mm (the slice spacing from the positions, not from
    SliceThickness or SpacingBetweenSlices); ``origin`` is the first slice's ImagePositionPatient
    and ``direction`` the column, row and slice axes (as ITK's row-major 3x3 direction matrix).
    """

    case_id: str
    uid: str
    number: int | None
    files: tuple[Path, ...]
    shape: tuple[int, int, int]
    spacing: tuple[float, float, float]
    origin: tuple[float, float, float]
    direction: tuple[float, ...]

    @property
    def label(self) -> str:
        """How messages name the series (see :func:`_label`)."""
        return _label(self.case_id, self.number)


def _label(case_id: str, number: int | None) -> str:
    """How messages name a series: its safe id and its SeriesNumber, e.g. ``series-0123456789 (series number 5)``."""
    return case_id + (f" (series number {number})" if number is not None else "")


@contextmanager
def _quiet() -> Iterator[None]:
    """Silence pydicom's and highdicom's warnings and logs, which may quote patient tags."""
    loggers = [logging.getLogger(name) for name in ("pydicom", "highdicom")]
    disabled = [logger.disabled for logger in loggers]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for logger in loggers:
            logger.disabled = True
        try:
            yield
        finally:
            for logger, was in zip(loggers, disabled):
                logger.disabled = was


def _is_dicom(path: Path) -> bool:
    """A DICOM Part 10 file: ``DICM`` after the 128-byte preamble."""
    try:
        with path.open("rb") as f:
            return f.read(132)[128:] == b"DICM"
    except OSError:
        return False


def _dicom_files(folder: Path) -> list[Path]:
    """Every DICOM file under ``folder``: links to folders are not followed, a link to a file must stay inside.

    Messages name no file below ``folder``: export folders are often named after the patient.
    """
    if not folder.is_dir():
        raise DataError(f"{folder} is not a folder")
    files = []
    for root, dirs, names in os.walk(folder):
        dirs.sort()
        for name in sorted(names):
            path = Path(root) / name
            if path.is_file() and _is_dicom(check_inside(path, folder, shown=f"a file in {folder}")):
                files.append(path)
    return files


@dataclass(frozen=True)
class _Header:
    """What grouping and checking need from one file's header."""

    path: Path
    series: str
    number: int | None
    modality: str
    image_type: tuple[str, ...]
    frames: int
    size: tuple[int, int] | None
    grey: bool
    pixel_spacing: tuple[float, ...] | None  # (between rows, between columns)
    orientation: tuple[float, ...] | None  # row axis, column axis
    position: tuple[float, ...] | None
    syntax: str


def _floats(value: Any, n: int) -> tuple[float, ...] | None:
    try:
        floats = tuple(float(v) for v in value)
    except (TypeError, ValueError):
        return None
    return floats if len(floats) == n and np.isfinite(floats).all() else None


def _int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _header(path: Path) -> _Header | None:
    """The header of one DICOM file (no pixel read), or ``None`` if it cannot be read or has no series."""
    import pydicom

    try:
        ds = pydicom.dcmread(path, stop_before_pixels=True)
        series = str(ds.get("SeriesInstanceUID", ""))
        if not series:
            return None  # a DICOMDIR, or another object outside any series
        rows, columns = _int(ds.get("Rows")), _int(ds.get("Columns"))
        image_type = ds.get("ImageType") or []
        return _Header(
            path=path,
            series=series,
            number=_int(ds.get("SeriesNumber")),
            modality=str(ds.get("Modality", "")),
            image_type=tuple(str(v).upper() for v in ([image_type] if isinstance(image_type, str) else image_type)),
            frames=_int(ds.get("NumberOfFrames")) or 1,
            size=(rows, columns) if rows and columns else None,
            grey=_int(ds.get("SamplesPerPixel")) == 1 and ds.get("PhotometricInterpretation") == "MONOCHROME2",
            pixel_spacing=_floats(ds.get("PixelSpacing"), 2),
            orientation=_floats(ds.get("ImageOrientationPatient"), 6),
            position=_floats(ds.get("ImagePositionPatient"), 3),
            syntax=str(ds.file_meta.get("TransferSyntaxUID", "")),
        )
    except Exception:  # pydicom raises many kinds on a damaged header; such a file is counted and skipped
        return None


def _check(headers: list[_Header]) -> str | np.ndarray:
    """Why the series of ``headers`` is not a single-frame 2D MR stack; else its slice order along the normal."""
    modality = {h.modality for h in headers}
    if any(h.size is None for h in headers):
        return "not an image series (e.g. a report or presentation state)"
    if modality != {"MR"}:
        return f"modality {excerpt(', '.join(sorted(modality)))}, not MR"
    if any(h.frames > 1 for h in headers):
        return f"multi-frame images ({max(h.frames for h in headers)} frames); export single-frame images"
    if any("LOCALIZER" in h.image_type for h in headers):
        return "a localiser (ImageType LOCALIZER)"
    if len(headers) < 2:
        return "a single image, not a stack of slices"
    if not all(h.grey for h in headers):
        return "not a grey image (SamplesPerPixel 1, MONOCHROME2)"
    if any(h.pixel_spacing is None or h.orientation is None or h.position is None for h in headers):
        return "no usable ImagePositionPatient, ImageOrientationPatient or PixelSpacing"
    if len({h.size for h in headers}) > 1:
        return "images of different sizes"
    orientations = np.array([h.orientation for h in headers])
    if not np.allclose(orientations, orientations[0], atol=1e-3):
        return "mixed orientations"
    spacings = np.array([h.pixel_spacing for h in headers])
    if not np.allclose(spacings, spacings[0], rtol=1e-3) or not (spacings[0] > 0).all():
        return "different (or non-positive) pixel spacings"
    row, column = np.reshape(orientations[0], (2, 3))
    normal = np.cross(row, column)
    if not np.allclose(np.linalg.norm([row, column], axis=1), 1, atol=1e-3) or abs(row @ column) > 1e-3:
        return "ImageOrientationPatient is not two orthogonal unit vectors"
    positions = np.array([h.position for h in headers])
    along = positions @ normal
    order = np.argsort(along, kind="stable")
    gaps = np.diff(along[order])
    tolerance = max(TOLERANCE_MM, 0.01 * float(np.mean(gaps)))
    if gaps.min() <= tolerance:
        return "several images at one slice position (e.g. several phases or echoes)"
    if gaps.max() - gaps.min() > tolerance:
        return f"inconsistent slice spacing ({gaps.min():.2f} to {gaps.max():.2f} mm)"
    sideways = positions[order] - positions[order[0]] - np.outer(along[order] - along[order[0]], normal)
    if np.linalg.norm(sideways, axis=1).max() > tolerance:
        return "slice positions do not lie along the slice normal"
    return order


def _check_decodable(headers: list[_Header], label: str) -> None:
    """Every file's transfer syntax can be decoded with the installed libraries; else one error naming the series."""
    from pydicom.pixels import get_decoder
    from pydicom.uid import UID

    for syntax in sorted({h.syntax for h in headers}):
        uid = UID(syntax)
        try:
            decoder = get_decoder(uid)
        except NotImplementedError:
            raise DataError(f"{label}: transfer syntax {excerpt(syntax)} is not one pydicom can decode") from None
        if not decoder.is_available:
            missing = "; ".join(decoder.missing_dependencies)
            raise DataError(f"{label}: transfer syntax {uid.name} needs a decoder that is not installed ({missing})")


def _series(headers: list[_Header], order: np.ndarray) -> DicomSeries:
    ordered = [headers[i] for i in order]
    first = ordered[0]
    assert first.orientation is not None and first.position is not None and first.pixel_spacing is not None
    assert first.size is not None
    row, column = np.reshape(first.orientation, (2, 3))
    normal = np.cross(row, column)
    along = np.array([h.position for h in ordered]) @ normal
    (rows, columns), (row_spacing, column_spacing), (x, y, z) = first.size, first.pixel_spacing, first.position
    return DicomSeries(
        case_id=series_id(first.series),
        uid=first.series,
        number=first.number,
        files=tuple(h.path for h in ordered),
        shape=(len(ordered), rows, columns),
        spacing=(float(np.mean(np.diff(along))), row_spacing, column_spacing),
        origin=(x, y, z),
        direction=tuple(float(v) for v in np.stack([row, column, normal], axis=1).ravel()),
    )


def list_series(folder: Path) -> list[DicomSeries]:
    """The usable series of the DICOM files under ``folder``, by case id; ``[]`` if it holds no DICOM file.

    Unusable series are skipped with a warning; a folder whose DICOM files give no usable series,
    a series too large for :mod:`wsseg.data.trust`'s limits, or one that cannot be decoded, raise
    :class:`DataError`. Only headers are read here.
    """
    files = _dicom_files(Path(folder))
    if not files:
        return []
    with _quiet():
        headers = [_header(path) for path in track(files, "read DICOM headers")]
    unreadable = sum(h is None for h in headers)
    if unreadable:
        warnings.warn(
            f"{folder}: skipped {unreadable} DICOM file(s) that are unreadable or belong to no series", stacklevel=2
        )
    groups: dict[str, list[_Header]] = {}
    for header in headers:
        if header is not None:
            groups.setdefault(header.series, []).append(header)
    found = []
    for uid, group in groups.items():
        label = _label(series_id(uid), next((h.number for h in group if h.number is not None), None))
        checked = _check(group)
        if isinstance(checked, str):
            warnings.warn(f"skipped {label}: {checked}", stacklevel=2)
            continue
        series = _series(group, checked)
        check_size(series.shape, Path(series.label))
        _check_decodable(group, series.label)
        found.append(series)
    if not found:
        raise DataError(f"{folder}: its DICOM files hold no single-frame 2D MR series (see the warnings)")
    return sorted(found, key=lambda s: s.case_id)


def read_slice(series: DicomSeries, z: int) -> np.ndarray:
    """Slice ``z`` (in slice order) of ``series`` as ``(rows, columns)`` float32, rescaled (Rescale Slope/Intercept)."""
    import pydicom
    from pydicom.pixels import apply_rescale

    where = f"{series.label}: slice {z + 1} of {len(series.files)}"
    try:
        with _quiet():
            ds = pydicom.dcmread(series.files[z])
            array = np.asarray(apply_rescale(ds.pixel_array, ds), dtype=np.float32)
    except Exception as exc:  # decoders raise many kinds; the file must not take the command down with a traceback
        raise DataError(f"{where}: cannot decode its pixels ({type(exc).__name__}: {excerpt(str(exc))})") from None
    if array.shape != series.shape[1:]:
        raise DataError(f"{where}: pixel data of shape {array.shape}, expected {series.shape[1:]}")
    if not np.isfinite(array).all():
        raise DataError(f"{where}: contains NaN or infinite values")
    return array


def read_series(series: DicomSeries) -> np.ndarray:
    """The whole series as ``(slices, rows, columns)`` float32, in slice order."""
    return np.stack([read_slice(series, z) for z in range(len(series.files))])


def nifti_reference(series: DicomSeries) -> Any:
    """An empty SimpleITK image on the series' voxel grid, to copy its geometry onto masks."""
    import SimpleITK as sitk

    depth, rows, columns = series.shape
    image = sitk.Image([columns, rows, depth], sitk.sitkUInt8)
    image.SetSpacing((series.spacing[2], series.spacing[1], series.spacing[0]))
    image.SetOrigin(series.origin)
    image.SetDirection(series.direction)
    return image


def check_grid(series: DicomSeries, path: Path, what: str) -> None:
    """A label volume at ``path`` lies on the voxel grid of ``series`` (size, spacing, origin, direction)."""
    import SimpleITK as sitk

    reader = sitk.ImageFileReader()
    reader.SetFileName(str(path))
    try:
        reader.ReadImageInformation()
    except RuntimeError:
        raise DataError(f"{path}: cannot read volume (corrupt, truncated, or not a NIfTI/MHA/NRRD file)") from None
    expected = nifti_reference(series)
    same = (
        reader.GetSize() == expected.GetSize()
        and np.allclose(reader.GetSpacing(), expected.GetSpacing(), rtol=1e-3)
        and np.allclose(reader.GetOrigin(), expected.GetOrigin(), atol=max(TOLERANCE_MM, 0.01 * min(series.spacing)))
        and np.allclose(reader.GetDirection(), expected.GetDirection(), atol=1e-3)
    )
    if not same:
        raise DataError(
            f"{path}: this {what} does not lie on the voxel grid of its series {series.label} "
            "(size, spacing, origin or direction differ); wsseg predict's NIfTI masks show that grid"
        )


def write_segmentation(
    series: DicomSeries, myocardium: np.ndarray, fibrosis: np.ndarray, path: Path, description: str
) -> None:
    """Write ``myocardium`` and ``fibrosis`` ``(slices, rows, columns)`` 0/1 masks as a BINARY DICOM SEG at ``path``.

    Two segments, "Myocardium" (SCT Left ventricle myocardium) and "Fibrosis" (SCT Fibrosis), each
    frame referencing its source image; the patient, study and frame of reference come from the source.
    """
    import highdicom as hd
    import pydicom
    from pydicom.sr.codedict import codes

    from wsseg import __version__

    algorithm = hd.AlgorithmIdentificationSequence(
        name="wsseg", family=codes.cid7162.ArtificialIntelligence, version=__version__
    )
    segments = [
        hd.seg.SegmentDescription(
            segment_number=1,
            segment_label="Myocardium",
            segmented_property_category=codes.SCT.AnatomicalStructure,
            segmented_property_type=codes.SCT.LeftVentricleMyocardium,
            algorithm_type=hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC,
            algorithm_identification=algorithm,
        ),
        hd.seg.SegmentDescription(
            segment_number=2,
            segment_label="Fibrosis",
            segmented_property_category=codes.SCT.MorphologicallyAbnormalStructure,
            segmented_property_type=codes.SCT.Fibrosis,
            algorithm_type=hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC,
            algorithm_identification=algorithm,
            anatomic_regions=[codes.SCT.LeftVentricleMyocardium],
        ),
    ]
    try:
        with _quiet():
            sources = [pydicom.dcmread(f, stop_before_pixels=True) for f in series.files]
            seg = hd.seg.Segmentation(
                source_images=sources,
                pixel_array=np.stack([myocardium, fibrosis], axis=-1).astype(bool),
                segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
                segment_descriptions=segments,
                series_instance_uid=hd.UID(),
                series_number=1000,
                sop_instance_uid=hd.UID(),
                instance_number=1,
                manufacturer="wsseg",
                manufacturer_model_name="wsseg",
                software_versions=__version__,
                device_serial_number="0",
                content_label="WSSEG",
                content_description=description[:64],
                omit_empty_frames=False,
            )
            seg.save_as(path)
    except (ValueError, TypeError, AttributeError, KeyError, OSError) as exc:
        # the message is left out: highdicom's may quote tag values of the source
        raise DataError(f"{series.label}: cannot write its DICOM SEG ({type(exc).__name__})") from None
