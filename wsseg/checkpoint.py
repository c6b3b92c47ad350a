"""Saving and loading trained plugins (segmenters, CAM generators) as single files."""

from __future__ import annotations

import os
from pathlib import Path

import torch

from wsseg import __version__
from wsseg.data.cache import CacheError
from wsseg.interfaces import Plugin
from wsseg.registry import Kind, get_plugin


def save_plugin(path: str | Path, plugin: Plugin, *, kind: Kind, name: str, config_hash: str, history: list | None = None) -> Path:
    """Write a trained plugin with its name, config, config hash and training curve, atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    torch.save(
        {
            "kind": kind,
            "plugin": name,
            "config": plugin.config.model_dump(mode="json"),
            "config_hash": config_hash,
            "wsseg_version": __version__,
            "history": history or [],
            "state": plugin.state_dict(),
        },
        tmp,
    )
    os.replace(tmp, path)
    return path


def read_checkpoint(path: str | Path, *, expected_config: str | None = None, rerun: str = "") -> dict:
    """The raw checkpoint dict, refusing one trained with another configuration."""
    path = Path(path)
    hint = f" Run `{rerun}` first." if rerun else ""
    if not path.exists():
        raise CacheError(f"{path} does not exist.{hint}")
    checkpoint = torch.load(path, map_location="cpu", weights_only=False)
    if expected_config is not None and checkpoint.get("config_hash") != expected_config:
        raise CacheError(f"{path} was trained with another configuration (params changed).{hint}")
    return checkpoint


def load_plugin(path: str | Path, *, device: str | torch.device = "cpu", expected_config: str | None = None, rerun: str = "") -> Plugin:
    """Rebuild the trained plugin saved at ``path`` through the registry."""
    checkpoint = read_checkpoint(path, expected_config=expected_config, rerun=rerun)
    plugin = get_plugin(checkpoint["kind"], checkpoint["plugin"])(checkpoint["config"], device=device)
    plugin.load_state_dict(checkpoint["state"])
    return plugin
