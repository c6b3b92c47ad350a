"""Plugin discovery through Python entry points.

Built-in and third-party plugins register the same way, in ``pyproject.toml``::

    [project.entry-points."wsseg.cam_generators"]
    my-cam = "my_package:MyCAMGenerator"
"""

from __future__ import annotations

from functools import cache
from importlib.metadata import EntryPoint, entry_points
from typing import Literal

from pydantic import BaseModel

from wsseg.interfaces import CAMGenerator, Plugin, PseudoLabeler, Segmenter

Kind = Literal["cam_generator", "pseudo_labeler", "segmenter"]

GROUPS: dict[Kind, str] = {
    "cam_generator": "wsseg.cam_generators",
    "pseudo_labeler": "wsseg.pseudo_labelers",
    "segmenter": "wsseg.segmenters",
}
BASES: dict[Kind, type[Plugin]] = {
    "cam_generator": CAMGenerator,
    "pseudo_labeler": PseudoLabeler,
    "segmenter": Segmenter,
}


class PluginError(LookupError):
    """A plugin is unknown, ambiguous, broken or of the wrong kind."""


class PluginInfo(BaseModel):
    """One registered plugin as ``wsseg plugins list`` shows it."""

    name: str
    kind: Kind
    target: str
    distribution: str
    version: str
    status: Literal["ok", "error"]
    error: str | None = None


def _entry_points(kind: Kind) -> list[EntryPoint]:
    return sorted(entry_points(group=GROUPS[kind]), key=lambda ep: ep.name)


def _distribution(ep: EntryPoint) -> tuple[str, str]:
    dist = ep.dist
    return (dist.name, dist.version) if dist is not None else ("?", "?")


@cache
def _load(kind: Kind, ep: EntryPoint) -> type[Plugin]:
    cls = ep.load()
    if not (isinstance(cls, type) and issubclass(cls, BASES[kind])):
        raise PluginError(f"{ep.value} is not a subclass of wsseg.{BASES[kind].__name__}")
    return cls


def list_plugins() -> list[PluginInfo]:
    """Every registered plugin of every kind, each imported once to report its status."""
    infos = []
    for kind in GROUPS:
        for ep in _entry_points(kind):
            dist, version = _distribution(ep)
            try:
                _load(kind, ep)
                status, error = "ok", None
            except Exception as exc:  # a broken plugin must not break the listing
                status, error = "error", f"{type(exc).__name__}: {exc}"
            infos.append(PluginInfo(name=ep.name, kind=kind, target=ep.value, distribution=dist, version=version, status=status, error=error))
    return infos


def names(kind: Kind) -> list[str]:
    """Names registered for ``kind`` (broken ones included)."""
    return sorted({ep.name for ep in _entry_points(kind)})


def get_plugin(kind: Kind, name: str) -> type[Plugin]:
    """The plugin class registered as ``name`` for ``kind``.

    Raises :class:`PluginError` naming the alternatives when ``name`` is unknown, both
    distributions when two register the same name, and the import error when loading fails.
    """
    matches = [ep for ep in _entry_points(kind) if ep.name == name]
    if not matches:
        known = ", ".join(names(kind)) or "none installed"
        raise PluginError(f"no {kind.replace('_', ' ')} plugin named '{name}' (available: {known})")
    if len(matches) > 1:
        owners = " and ".join(f"{_distribution(ep)[0]} ({ep.value})" for ep in matches)
        raise PluginError(f"{kind.replace('_', ' ')} plugin name '{name}' is registered twice: by {owners}")
    try:
        return _load(kind, matches[0])
    except PluginError:
        raise
    except Exception as exc:
        raise PluginError(f"{kind.replace('_', ' ')} plugin '{name}' failed to import: {type(exc).__name__}: {exc}") from exc
