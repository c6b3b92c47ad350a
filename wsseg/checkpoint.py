"""Saving and loading trained plugins (segmenters, CAM generators) as single files."""

from __future__ import annotations

import pickle
import warnings
from pathlib import Path
from typing import Any

import torch

from wsseg import __version__, distributed
from wsseg.atomic import atomic_path
from wsseg.errors import CacheError
from wsseg.interfaces import CAMGenerator, Segmenter
from wsseg.registry import Kind, get_plugin


def resume_path(model_path: str | Path) -> Path:
    """Where the training of the model saved at ``model_path`` keeps its per-epoch resume checkpoint."""
    model_path = Path(model_path)
    return model_path.with_name(f"{model_path.stem}.resume.pt")


@distributed.on_main
def save_plugin(
    path: str | Path,
    plugin: CAMGenerator | Segmenter,
    *,
    kind: Kind,
    name: str,
    config_hash: str,
    history: list | None = None,
) -> Path:
    """Write a trained plugin with its name, config, config hash and training curve, atomically.

    The training's resume checkpoint (:func:`resume_path`) is removed once the model is in place.
    """
    path = Path(path)
    with atomic_path(path) as tmp:
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
    resume_path(path).unlink(missing_ok=True)
    return path


def read_checkpoint(path: str | Path, *, expected_config: str | None = None, rerun: str = "") -> dict:
    """The raw checkpoint dict, refusing an unreadable one or one from another configuration or version."""
    path = Path(path)
    hint = f" Run `{rerun}` first." if rerun else ""
    if not path.exists():
        raise CacheError(f"{path} does not exist.{hint}")
    try:
        with warnings.catch_warnings():  # torch warns about some pickle protocols before refusing them
            warnings.simplefilter("ignore")
            checkpoint = torch.load(
                path, map_location="cpu", weights_only=True
            )  # tensors and plain values: no code runs
    except (OSError, RuntimeError, EOFError, pickle.UnpicklingError) as exc:
        raise CacheError(f"{path} is not a readable model file ({type(exc).__name__}).{hint}") from None
    if not isinstance(checkpoint, dict) or "state" not in checkpoint:
        raise CacheError(f"{path} is not a wsseg model file.{hint}")
    if checkpoint.get("wsseg_version") != __version__:
        raise CacheError(f"{path} was written by wsseg {checkpoint.get('wsseg_version')}, this is {__version__}.{hint}")
    if expected_config is not None and checkpoint.get("config_hash") != expected_config:
        raise CacheError(f"{path} was trained with another configuration (params changed).{hint}")
    return checkpoint


def load_plugin(
    path: str | Path, *, device: str | torch.device = "cpu", expected_config: str | None = None, rerun: str = ""
) -> Any:
    """Rebuild the trained plugin saved at ``path`` through the registry."""
    checkpoint = read_checkpoint(path, expected_config=expected_config, rerun=rerun)
    plugin: Any = get_plugin(checkpoint["kind"], checkpoint["plugin"])(checkpoint["config"], device=device)
    plugin.load_state_dict(checkpoint["state"])
    return plugin
