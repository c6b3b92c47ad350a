"""Plugin discovery through Python entry points, and disabling plugins by name.

Built-in and third-party plugins register the same way, in ``pyproject.toml``::

    [project.entry-points."wsseg.cam_generators"]
    my-cam = "my_package:MyCAMGenerator"

A plugin is disabled (never imported, invisible to params.yaml) when its name, or
``distribution:name``, is listed in the ``WSSEG_DISABLED_PLUGINS`` environment variable
(comma-separated) or in the user file :func:`disabled_file` (``wsseg plugins disable``).
Disabling one of two distributions that register the same name resolves the clash.
"""

from __future__ import annotations

import os
import re
from functools import cache
from importlib.metadata import EntryPoint, entry_points
from pathlib import Path
from typing import Literal

from pydantic import BaseModel

from wsseg.errors import PluginError, excerpt
from wsseg.interfaces import API_VERSION, CAMGenerator, Plugin, PseudoLabeler, Segmenter

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
DISABLED_ENV = "WSSEG_DISABLED_PLUGINS"


class PluginInfo(BaseModel):
    """One registered plugin as ``wsseg plugins list`` shows it."""

    name: str
    kind: Kind
    target: str
    distribution: str
    version: str
    status: Literal["ok", "error", "disabled"]
    error: str | None = None


def _entry_points(kind: Kind) -> list[EntryPoint]:
    return sorted(entry_points(group=GROUPS[kind]), key=lambda ep: ep.name)


def _distribution(ep: EntryPoint) -> tuple[str, str]:
    dist = ep.dist
    return (dist.name, dist.version) if dist is not None else ("?", "?")


def _normalise(distribution: str) -> str:
    """Distribution names compare as pip does: case-insensitive, ``-``, ``_`` and ``.`` alike."""
    return re.sub(r"[-_.]+", "-", distribution).lower()


def _label(kind: Kind) -> str:
    return kind.replace("_", " ")


@cache
def _load(kind: Kind, ep: EntryPoint) -> type[Plugin]:
    cls = ep.load()
    if not (isinstance(cls, type) and issubclass(cls, BASES[kind])):
        raise PluginError(f"{ep.value} is not a subclass of wsseg.{BASES[kind].__name__}")
    if cls.api_version != API_VERSION:
        written = (
            f"written for wsseg plugin API {cls.api_version}"
            if cls.api_version is not None
            else "declares no api_version"
        )
        raise PluginError(
            f"{ep.value} {written}; this wsseg has API {API_VERSION}: install a release of the plugin made for it"
        )
    return cls


# ---------------------------------------------------------------- disabling


def disabled_file() -> Path:
    """The user's list of disabled plugins: ``$XDG_CONFIG_HOME/wsseg/disabled-plugins.txt``."""
    root = os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config"
    return Path(root) / "wsseg" / "disabled-plugins.txt"


def _from_env() -> set[str]:
    return {entry.strip() for entry in os.environ.get(DISABLED_ENV, "").split(",") if entry.strip()}


def _from_file() -> list[str]:
    path = disabled_file()
    try:
        lines = path.read_text(encoding="utf-8").splitlines() if path.exists() else []
    except UnicodeDecodeError:
        raise PluginError(f"{path}: not UTF-8 text; fix or delete it") from None
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


def disabled() -> set[str]:
    """Every disabled entry (``name`` or ``distribution:name``), from the environment and the user file."""
    return _from_env() | set(_from_file())


def _matches(entry: str, ep: EntryPoint) -> bool:
    distribution, _, name = entry.rpartition(":")
    return name == ep.name and (not distribution or _normalise(distribution) == _normalise(_distribution(ep)[0]))


def is_disabled(ep: EntryPoint, entries: set[str] | None = None) -> bool:
    """Whether ``ep`` is disabled by name or by ``distribution:name``."""
    return any(_matches(entry, ep) for entry in (disabled() if entries is None else entries))


def _all_entry_points() -> list[EntryPoint]:
    return [ep for kind in GROUPS for ep in _entry_points(kind)]


def disable(entry: str) -> Path:
    """Add ``entry`` (``name`` or ``distribution:name`` of a registered plugin) to the user file."""
    if not any(_matches(entry, ep) for ep in _all_entry_points()):
        raise PluginError(f"no registered plugin matches {excerpt(entry)} (see `wsseg plugins list`)")
    entries = _from_file()
    if entry not in entries:
        path = disabled_file()
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("".join(f"{line}\n" for line in [*entries, entry]))
    return disabled_file()


def enable(entry: str) -> Path:
    """Remove ``entry`` from the user file; an entry set by the environment variable cannot be."""
    if entry in _from_env():
        raise PluginError(f"{excerpt(entry)} is disabled by the {DISABLED_ENV} environment variable; remove it there")
    entries = _from_file()
    if entry not in entries:
        raise PluginError(f"{excerpt(entry)} is not disabled (disabled: {', '.join(sorted(disabled())) or 'none'})")
    disabled_file().write_text("".join(f"{line}\n" for line in entries if line != entry))
    return disabled_file()


# ---------------------------------------------------------------- lookup


def list_plugins() -> list[PluginInfo]:
    """Every registered plugin of every kind; each enabled one is imported once to report its status."""
    entries = disabled()
    infos = []
    for kind in GROUPS:
        for ep in _entry_points(kind):
            dist, version = _distribution(ep)
            status, error = "ok", None
            if is_disabled(ep, entries):
                status = "disabled"
            else:
                try:
                    _load(kind, ep)
                except Exception as exc:  # a broken plugin must not break the listing
                    status, error = "error", f"{type(exc).__name__}: {exc}"
            infos.append(
                PluginInfo(
                    name=ep.name,
                    kind=kind,
                    target=ep.value,
                    distribution=dist,
                    version=version,
                    status=status,
                    error=error,
                )
            )
    return infos


def names(kind: Kind) -> list[str]:
    """Names of the enabled plugins registered for ``kind`` (broken ones included)."""
    entries = disabled()
    return sorted({ep.name for ep in _entry_points(kind) if not is_disabled(ep, entries)})


def kinds_of(name: str) -> list[Kind]:
    """The kinds under which some distribution registers ``name`` (enabled or not)."""
    return [kind for kind in GROUPS if any(ep.name == name for ep in _entry_points(kind))]


def get_plugin(kind: Kind, name: str) -> type[Plugin]:
    """The plugin class registered as ``name`` for ``kind``.

    Raises :class:`PluginError` naming the alternatives when ``name`` is unknown, saying so when it
    is disabled, naming both distributions when two register it, and giving the import error when
    loading fails.
    """
    registered = [ep for ep in _entry_points(kind) if ep.name == name]
    entries = disabled()
    matches = [ep for ep in registered if not is_disabled(ep, entries)]
    if registered and not matches:
        raise PluginError(
            f"{_label(kind)} plugin {excerpt(name)} is disabled (by {DISABLED_ENV} or {disabled_file()}; "
            "`wsseg plugins enable` undoes the latter)"
        )
    if not matches:
        known = ", ".join(names(kind)) or "none installed"
        raise PluginError(f"no {_label(kind)} plugin named {excerpt(name)} (available: {known})")
    if len(matches) > 1:
        owners = " and ".join(f"{_distribution(ep)[0]} ({ep.value})" for ep in matches)
        first = _distribution(matches[0])[0]
        raise PluginError(
            f"{_label(kind)} plugin name {excerpt(name)} is registered twice: by {owners}; "
            f"uninstall one or disable it, e.g. `wsseg plugins disable {first}:{name}`"
        )
    try:
        return _load(kind, matches[0])
    except PluginError:
        raise
    except Exception as exc:
        raise PluginError(
            f"{_label(kind)} plugin {excerpt(name)} failed to import: {type(exc).__name__}: {exc}"
        ) from exc
