"""HDF5 caches between pipeline stages: one dataset per array, written atomically.

Each cache carries the hash of the configuration that produced it and the wsseg version, so a
stage can refuse an upstream cache made by another configuration instead of silently using it, and
a digest of its arrays, so that a rewritten cache can be told to hold what it held before.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from wsseg import __version__, distributed
from wsseg.atomic import atomic_path
from wsseg.errors import CacheError


def _store(group: h5py.File, name: str, value: np.ndarray) -> None:
    value = np.asarray(value)
    if value.dtype.kind in "OUS":
        group.create_dataset(name, data=value.astype(object), dtype=h5py.string_dtype())
    elif value.ndim >= 2 and value.shape[0] > 0:
        chunks = (1, *value.shape[1:])  # one slice per chunk
        group.create_dataset(name, data=value, chunks=chunks, compression="gzip", compression_opts=4, shuffle=True)
    else:
        group.create_dataset(name, data=value)


def _digest(arrays: Mapping[str, Any]) -> str:
    """A hash of the names, shapes, types and values of ``arrays`` (ragged lists part by part)."""
    digest = hashlib.sha256()
    for name in sorted(arrays):
        value = arrays[name]
        for part in value if isinstance(value, list) else [value]:
            part = np.asarray(part)
            digest.update(f"{name}{part.shape}{part.dtype}".encode())
            values = part.astype(str) if part.dtype.kind == "O" else np.ascontiguousarray(part)
            digest.update(values.tobytes())
    return digest.hexdigest()[:16]


@distributed.on_main
def write_cache(path: str | Path, arrays: Mapping[str, np.ndarray], *, config: str, **attrs: Any) -> Path:
    """Write ``arrays`` to ``path`` through a temporary file and an atomic rename.

    ``config`` is the configuration hash (see :func:`wsseg.hashing.config_hash`); other keyword arguments
    become HDF5 attributes. Ragged arrays (lists of differently shaped arrays) are stored
    flattened with their shapes and come back as lists from :func:`read_cache`.
    """
    path = Path(path)
    with atomic_path(path) as tmp, h5py.File(tmp, "w") as f:
        stamp = {"config_hash": config, "wsseg_version": __version__, "content_digest": _digest(arrays)}
        f.attrs.update({**stamp, **attrs})
        for name, value in arrays.items():
            if isinstance(value, list):
                group = f.create_group(name)
                group.attrs["ragged"] = True
                shapes = np.array([np.shape(v) for v in value], dtype=np.int64).reshape(len(value), -1)
                group.create_dataset("shapes", data=shapes)
                flat = np.concatenate([np.ravel(v) for v in value]) if value else np.zeros(0)
                group.create_dataset("data", data=flat, compression="gzip", compression_opts=4)
            else:
                _store(f, name, value)
    return path


class Cache(dict):
    """Arrays of one cache file (loaded eagerly; caches here are small) plus its attributes."""

    def __init__(self, path: Path, arrays: dict[str, Any], attrs: dict[str, Any]):
        super().__init__(arrays)
        self.path = path
        self.attrs = attrs


def _load(item: h5py.Dataset | h5py.Group) -> Any:
    if isinstance(item, h5py.Group):
        shapes, flat = item["shapes"][()], item["data"][()]
        sizes = np.prod(shapes, axis=1) if len(shapes) else []
        parts = np.split(flat, np.cumsum(sizes)[:-1]) if len(shapes) else []
        return [p.reshape(s) for p, s in zip(parts, shapes)]
    value = item[()]
    if h5py.check_string_dtype(item.dtype) is not None:
        value = item.asstr()[()]
    return value


def content_digest(path: str | Path) -> str | None:
    """The digest of the arrays in the cache at ``path`` (None if there is no readable one)."""
    try:
        with h5py.File(path, "r") as f:
            value = f.attrs.get("content_digest")
    except OSError:
        return None
    return None if value is None else str(value)


def check_cache(path: str | Path, *, expected_config: str | None = None, rerun: str = "") -> dict[str, Any]:
    """The stamp (attributes) of the cache at ``path``, refusing one from another configuration or wsseg version.

    Only the stamp is read. ``rerun`` names the command that rebuilds the cache; it is put in the error message.
    """
    return _open_checked(Path(path), expected_config, rerun, with_arrays=False).attrs


def read_cache(path: str | Path, *, expected_config: str | None = None, rerun: str = "") -> Cache:
    """Read a cache, refusing one from another configuration or wsseg version (as :func:`check_cache`)."""
    return _open_checked(Path(path), expected_config, rerun, with_arrays=True)


def _open_checked(path: Path, expected_config: str | None, rerun: str, with_arrays: bool) -> Cache:
    """The cache at ``path``, its stamp checked before any array is read (none unless ``with_arrays``)."""
    hint = f" Run `{rerun}` first." if rerun else ""
    if not path.exists():
        raise CacheError(f"{path} does not exist.{hint}")
    try:
        with h5py.File(path, "r") as f:
            attrs = dict(f.attrs)
            if attrs.get("wsseg_version") != __version__:
                raise CacheError(
                    f"{path} was written by wsseg {attrs.get('wsseg_version')}, this is {__version__}.{hint}"
                )
            if expected_config is not None and attrs.get("config_hash") != expected_config:
                raise CacheError(f"{path} was written with another configuration (params changed).{hint}")
            arrays = {name: _load(f[name]) for name in f} if with_arrays else {}
    except OSError as exc:
        raise CacheError(f"{path} is not a readable HDF5 cache ({exc}).{hint}") from exc
    return Cache(path, arrays, attrs)
