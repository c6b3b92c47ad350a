"""Writing outputs so that a failed or killed command never leaves a half-written one behind.

A file is written under a temporary name beside its destination and renamed into place; a
folder of outputs is built in a hidden folder inside it and its files are moved up only on success.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path to write; on success it replaces ``path`` in one rename, on failure it is removed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


@contextmanager
def staged_folder(folder: str | Path) -> Iterator[Path]:
    """Yield an empty hidden folder inside ``folder``; on success its files move up into ``folder``.

    ``folder`` (and any missing parents) is created for the staging; on failure the staging folder is
    removed, and so is whatever this call created, so ``folder`` is left as it was. Nothing is
    written outside ``folder``.
    """
    folder = Path(folder)
    created = next((p for p in reversed((folder, *folder.parents)) if not p.exists()), None)
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / f".staging-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    try:
        yield tmp
        for item in sorted(tmp.iterdir()):
            os.replace(item, folder / item.name)
    except BaseException:
        if created is not None:
            shutil.rmtree(created, ignore_errors=True)
        raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
