"""The trust boundary: what wsseg accepts from the folders and files that users bring.

- A path named by a dataset's tables, or found in a folder, must resolve (symbolic links
  followed) inside that folder: wsseg reads nothing else.
- Case ids, and the stems that output file names are built from, use a safe character set, so
  they can neither leave an output folder nor be misread by a terminal, a shell or a plot.
- Images and volumes are sized from their headers before any pixel is read, and refused beyond
  the limits below.

See docs/reliability.md, "Trust boundary".
"""

from __future__ import annotations

import re
from pathlib import Path

from wsseg.errors import DataError, excerpt

__all__ = [
    "MAX_SLICE_PIXELS",
    "MAX_VOLUME_VOXELS",
    "SAFE_NAME",
    "check_inside",
    "check_size",
    "existing_file",
    "inside",
    "safe_name",
]

SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
"""Case ids and output stems: ASCII letters, digits, ``.``, ``_`` and ``-``, at most 128, not starting with ``.``."""

MAX_SLICE_PIXELS = 4096 * 4096
"""The most pixels one slice (a PNG, or one plane of a volume) may have."""

MAX_VOLUME_VOXELS = 2**27
"""The most voxels (times components) one volume may claim: 512 MiB as float32."""


def safe_name(name: str, what: str, where: str) -> str:
    """``name`` if it matches :data:`SAFE_NAME`; else a :class:`DataError` naming ``where``."""
    if not SAFE_NAME.fullmatch(name):
        raise DataError(
            f"{where}: {what} {excerpt(name)} is not a safe name: use ASCII letters, digits, '.', '_' and '-' "
            "(at most 128, starting with a letter or digit)"
        )
    return name


def _resolved(path: Path, shown: str) -> Path:
    try:
        return path.resolve()
    except (OSError, ValueError, RuntimeError):  # a NUL byte, a link loop, a name too long
        raise DataError(f"{shown} is not a usable path") from None


def check_inside(path: Path, folder: Path, shown: str | None = None) -> Path:
    """``path`` if it resolves inside ``folder`` (links followed); else a :class:`DataError`.

    ``shown`` is how the message names the path (default: the path itself).
    """
    shown = shown if shown is not None else str(path)
    target, root = _resolved(path, shown), _resolved(folder, str(folder))
    if not target.is_relative_to(root):
        raise DataError(f"{shown} lies outside the dataset folder {folder}; wsseg reads only inside it")
    return path


def inside(folder: Path, relative: str, where: str) -> Path:
    """``folder / relative`` for a path read from a table at ``where``, refused unless it resolves inside ``folder``."""
    return check_inside(folder / relative, folder, shown=f"{where}: {excerpt(relative)}")


def existing_file(folder: Path, relative: str, where: str) -> Path:
    """:func:`inside`, and the path must name an existing file."""
    path = inside(folder, relative, where)
    try:
        is_file = path.is_file()
    except (OSError, ValueError):
        is_file = False
    if not is_file:
        raise DataError(f"{where}: file {excerpt(relative)} does not exist in {folder}")
    return path


def check_size(shape: tuple[int, ...], path: Path, components: int = 1) -> None:
    """Refuse an image or volume whose header claims more than the limits, before it is read."""
    shape = tuple(int(s) for s in shape)
    if any(s < 0 for s in shape):
        raise DataError(f"{path}: its header claims a negative size {shape}")
    plane = shape[-1] * shape[-2] if len(shape) >= 2 else shape[0] if shape else 0
    total = components
    for side in shape:
        total *= side
    if plane > MAX_SLICE_PIXELS or total > MAX_VOLUME_VOXELS:
        claimed = "x".join(map(str, shape))
        raise DataError(
            f"{path}: its header claims {claimed} pixels, beyond wsseg's limits "
            f"({MAX_SLICE_PIXELS} pixels a slice, {MAX_VOLUME_VOXELS} voxels a volume)"
        )
