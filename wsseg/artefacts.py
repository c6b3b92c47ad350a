"""Reading and writing pipeline artefacts by name, each checked against its lineage.

A stage reads ``read_artefact(params, ws, "myocardium")`` or ``load_model(params, ws,
"cam_model", "slice", device)`` and gets the artefact only if the configuration that made it is
the current one; otherwise a :class:`~wsseg.errors.CacheError` names the command to rerun. The
three trainings share :func:`train_model`: seed, build the plugin, fit it under a monitor that
keeps curves and a resume checkpoint, save it with its lineage.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from wsseg.checkpoint import load_plugin, read_checkpoint, resume_path, save_plugin
from wsseg.config import PLUGIN_KINDS, Params
from wsseg.data.cache import Cache, check_cache, read_cache, write_cache
from wsseg.data.roi import RoiData
from wsseg.errors import CacheError
from wsseg.pipeline import artefact_path, lineage, producer, rerun_command
from wsseg.registry import get_plugin
from wsseg.training import Monitor, seed_everything
from wsseg.workspace import Workspace

__all__ = [
    "build_plugin",
    "check_current",
    "is_current",
    "load_model",
    "read_artefact",
    "read_roi_data",
    "train_model",
    "write_artefact",
]


def read_artefact(params: Params, ws: Workspace, artefact: str, key: str | None = None) -> Cache:
    """The cache ``artefact`` (of level or supervision ``key``), refused if stale."""
    return read_cache(
        artefact_path(ws, artefact, key),
        expected_config=lineage(params, artefact, key),
        rerun=rerun_command(artefact, key),
    )


def check_current(params: Params, ws: Workspace, artefact: str, key: str | None = None) -> None:
    """Raise :class:`~wsseg.errors.CacheError` unless the cache or model ``artefact`` carries its current lineage.

    A cache's stamp alone is read; a model is loaded (on the CPU) to read its own.
    """
    check = read_checkpoint if producer(artefact).kind == "model" else check_cache
    check(artefact_path(ws, artefact, key), expected_config=lineage(params, artefact, key))


def is_current(params: Params, ws: Workspace, artefact: str, key: str | None = None) -> bool:
    """Whether the cache or model ``artefact`` exists, stamped with its current lineage and this wsseg version.

    Folders and metrics carry no stamp: they never are.
    """
    if producer(artefact).kind not in ("cache", "model"):
        return False
    try:
        check_current(params, ws, artefact, key)
    except CacheError:
        return False
    return True


def read_roi_data(params: Params, ws: Workspace) -> RoiData:
    """The dataset seen through the ROI crops of the myocardium cache (both checked)."""
    return RoiData.from_caches(read_artefact(params, ws, "dataset"), read_artefact(params, ws, "myocardium"), params)


def write_artefact(
    params: Params, ws: Workspace, artefact: str, key: str | None, arrays: dict[str, Any], **attrs: Any
) -> Path:
    """Write the cache ``artefact`` stamped with its lineage."""
    return write_cache(artefact_path(ws, artefact, key), arrays, config=lineage(params, artefact, key), **attrs)


def load_model(params: Params, ws: Workspace, artefact: str, key: str | None, device: str) -> Any:
    """The trained plugin ``artefact`` (of level or supervision ``key``), refused if stale.

    Its class is whatever plugin params names (typed ``Any``; a CAM generator or a segmenter).
    """
    path = artefact_path(ws, artefact, key)
    return load_plugin(
        path, device=device, expected_config=lineage(params, artefact, key), rerun=rerun_command(artefact, key)
    )


def build_plugin(params: Params, section: str, key: str | None = None, device: str = "cpu") -> Any:
    """A fresh plugin of params section ``section`` (with ``key``'s overrides), seeded with params' seed."""
    chosen = getattr(params, section).plugin
    return get_plugin(PLUGIN_KINDS[section], chosen)(
        params.plugin_config(section, key), device=device, seed=params.seed
    )


def train_model(
    params: Params, ws: Workspace, artefact: str, key: str | None, device: str, fit: Callable[[Any, Monitor], None]
) -> Path:
    """Train the model ``artefact``: ``fit(plugin, monitor)`` on a freshly seeded plugin, then save it.

    The monitor writes the training curves to ``curves/<model file stem>`` and a resume
    checkpoint beside the model file, so a killed training goes on where it stopped.
    """
    seed_everything(params.seed)
    section = producer(artefact).plugin
    assert section is not None, f"{artefact} is not a trained model"
    plugin = build_plugin(params, section, key, device)
    path, config = artefact_path(ws, artefact, key), lineage(params, artefact, key)
    monitor = Monitor(path.stem, ws.curves(path.stem), resume=resume_path(path), config=config)
    fit(plugin, monitor)
    name = getattr(params, section).plugin
    return save_plugin(path, plugin, kind=PLUGIN_KINDS[section], name=name, config_hash=config, history=monitor.history)
