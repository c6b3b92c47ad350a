"""Reading NIfTI, MHA/MHD and NRRD volumes (SimpleITK), with their headers checked first.

Before any voxel is read, a volume's header must describe a volume within the limits of
:mod:`wsseg.data.trust`, must not send the reader to a data file outside the volume's own
folder (MetaImage ``ElementDataFile``, NRRD ``data file``), and, for NIfTI, must agree with
itself (datatype and bitpix) and with the file's length (SimpleITK reads the missing voxels of a
cut-short NIfTI, and NaN voxels, as zeros).
"""

from __future__ import annotations

import gzip
import re
import struct
import zlib
from functools import lru_cache
from pathlib import Path

import numpy as np

from wsseg.data.trust import check_size
from wsseg.errors import DataError, excerpt

__all__ = ["VOLUME_SUFFIXES", "in_plane_spacing", "read_volume", "volume_case"]

VOLUME_SUFFIXES = (".nii.gz", ".nii", ".mha", ".mhd", ".nrrd")

HEADER_LIMIT = 1 << 16
"""Text headers (MetaImage, NRRD) longer than this many bytes are refused."""

# Where NIfTI-1 (header size 348) and NIfTI-2 (540) keep dim[8], datatype, bitpix and vox_offset: (format, byte offset).
_NIFTI_FIELDS = {
    348: (("8h", 40), ("h", 70), ("h", 72), ("f", 108)),
    540: (("8q", 16), ("h", 12), ("h", 14), ("q", 168)),
}
# NIfTI datatype code -> (bits per voxel, NumPy type of float data or None)
_NIFTI_TYPES = {
    2: (8, None), 4: (16, None), 8: (32, None), 16: (32, "f4"), 32: (64, None), 64: (64, "f8"), 128: (24, None),
    256: (8, None), 512: (16, None), 768: (32, None), 1024: (64, None), 1280: (64, None), 2304: (32, None),
}  # fmt: skip


def volume_case(path: Path) -> str:
    """The case id a volume's file name gives: the name without its volume suffix."""
    return path.name.removesuffix(next(s for s in VOLUME_SUFFIXES if path.name.endswith(s)))


def in_plane_spacing(spacing: tuple[float, ...]) -> float | None:
    """The in-plane pixel spacing (mm) of a ``(z, y, x)`` spacing: the mean of y and x, or ``None`` if unusable."""
    value = float(np.mean(spacing[-2:]))
    return value if np.isfinite(value) and value > 0 else None


def _unreadable(path: Path) -> DataError:
    return DataError(f"{path}: cannot read volume (corrupt, truncated, or not a NIfTI/MHA/NRRD file)")


def _text_header(path: Path, end: re.Pattern) -> list[str]:
    """The lines of a text header up to the first line matching ``end``; refused beyond :data:`HEADER_LIMIT`."""
    with open(path, "rb") as f:
        head = f.read(HEADER_LIMIT).decode("latin-1")
    lines = []
    for line in head.splitlines():
        lines.append(line)
        if end.match(line):
            return lines
    raise _unreadable(path)


def _check_data_file(path: Path) -> None:
    """A MetaImage or NRRD header may name a separate data file: it must be a plain name beside the header."""
    if path.name.endswith(".nrrd"):
        lines = _text_header(path, re.compile(r"^\s*$"))
        named = [line.split(":", 1)[1].strip() for line in lines if re.match(r"(?i)^data ?file\s*:", line)]
    else:
        lines = _text_header(path, re.compile(r"(?i)^\s*ElementDataFile\s*="))
        named = [lines[-1].split("=", 1)[1].strip()]
        if named[0].upper() == "LOCAL":
            return
    for name in named:
        if not re.fullmatch(r"[^\s/\\]+", name) or name.upper() == "LIST" or name in (".", ".."):
            raise DataError(
                f"{path}: its header names the data file {excerpt(name)}; "
                "only a plain file name beside the header is read"
            )
        if not (path.parent / name).resolve().is_relative_to(path.parent.resolve()):
            raise DataError(f"{path}: its data file {excerpt(name)} lies outside the volume's folder")


def _nifti_float_voxels(path: Path) -> np.ndarray:
    """The float voxels of a NIfTI-1/2 file as stored (empty for integer data), its header checked first.

    Refuses a header whose dimensions, datatype, bitpix or data offset are inconsistent, or that
    claims more than the trust limits; reads no more than the header promises.
    """
    try:
        with (gzip.open if path.name.endswith(".gz") else open)(path, "rb") as f:
            raw = f.read(540)
            for order in "<>":
                fields = _NIFTI_FIELDS.get(struct.unpack_from(order + "i", raw)[0])
                if fields is not None:
                    dims, (datatype,), (bitpix,), (offset,) = (
                        struct.unpack_from(order + fmt, raw, at) for fmt, at in fields
                    )
                    break
            else:
                raise _unreadable(path)
            header = struct.unpack_from(order + "i", raw)[0]
            if not 1 <= dims[0] <= 7 or any(d < 1 for d in dims[1 : dims[0] + 1]):
                raise DataError(f"{path}: NIfTI header has impossible dimensions {list(dims)}")
            check_size(tuple(reversed(dims[1 : dims[0] + 1])), path)
            if datatype not in _NIFTI_TYPES:
                raise DataError(f"{path}: NIfTI datatype {datatype} is not supported")
            bits, floats = _NIFTI_TYPES[datatype]
            if bitpix != bits:
                raise DataError(f"{path}: NIfTI header gives datatype {datatype} ({bits} bits) but bitpix {bitpix}")
            if not np.isfinite(offset) or not header <= offset <= header + HEADER_LIMIT:
                raise DataError(f"{path}: NIfTI header gives an impossible data offset {offset}")
            start = int(offset)
            end = start + int(np.prod(dims[1 : dims[0] + 1], dtype=np.int64)) * bits // 8
            raw += f.read(max(end - len(raw), 0))
    except (OSError, EOFError, zlib.error, struct.error):
        raise _unreadable(path) from None
    if len(raw) < end:
        raise _unreadable(path)
    return np.frombuffer(raw[start:end], order + floats) if floats else np.zeros(0)


def _check_header(path: Path) -> None:
    """Every check that needs no voxel: NIfTI consistency, the data file's place, the claimed size."""
    import SimpleITK as sitk

    if path.name.endswith((".mha", ".mhd", ".nrrd")):
        _check_data_file(path)
    reader = sitk.ImageFileReader()
    reader.SetFileName(str(path))
    try:
        reader.ReadImageInformation()
    except RuntimeError:
        raise _unreadable(path) from None
    check_size(tuple(reversed(reader.GetSize())), path, reader.GetNumberOfComponents())


@lru_cache(maxsize=4)
def read_volume(path: Path) -> tuple[np.ndarray, tuple[float, ...]]:
    """A NIfTI/MHA/NRRD volume as ``(Z, Y, X)`` float32 and its spacing ``(z, y, x)`` in mm."""
    import SimpleITK as sitk

    stored = _nifti_float_voxels(path) if path.name.endswith((".nii", ".nii.gz")) else None
    _check_header(path)
    if stored is not None and not np.isfinite(stored).all():
        raise DataError(f"{path}: contains NaN or infinite values")
    try:
        image = sitk.ReadImage(str(path))
    except RuntimeError:
        raise _unreadable(path) from None
    array = sitk.GetArrayFromImage(image)
    if array.ndim == 2:
        array = array[None]
    if array.ndim != 3:
        raise DataError(f"{path}: expected a 3D grey volume, got shape {array.shape}")
    return array.astype(np.float32), tuple(reversed(image.GetSpacing()))
