"""The failures wsseg expects, under one base class that the CLI turns into one ``error:`` line (exit 2).

Every message is one line that says what to fix. Values that came from a user's files are quoted
with :func:`excerpt`, so a rejected value of any size gives a short message.
"""

from __future__ import annotations

import reprlib

__all__ = ["CacheError", "ConfigError", "DataError", "PluginError", "WssegError", "excerpt", "one_line"]

EXCERPT_LENGTH = 60
"""The most characters of a rejected value that a message quotes."""

_repr = reprlib.Repr()
_repr.maxstring = _repr.maxother = EXCERPT_LENGTH
_repr.maxlist = _repr.maxtuple = _repr.maxdict = _repr.maxset = 4
_repr.maxlevel = 2


def excerpt(value: object, limit: int = EXCERPT_LENGTH) -> str:
    """A short ``repr`` of ``value``: strings and containers cut to about ``limit`` characters with ``...``.

    Bounded whatever ``value`` is (a nested structure is never expanded whole).
    """
    text = _repr.repr(value)
    return text if len(text) <= limit + 5 else text[:limit] + "..."


def one_line(text: str) -> str:
    """``text`` with its line breaks written as ``\\n`` and ``\\r``."""
    return text.replace("\r", "\\r").replace("\n", "\\n")


class WssegError(Exception):
    """An expected failure: bad configuration or data, a stale or missing cache, a plugin problem."""

    def __init__(self, message: object):
        super().__init__(one_line(str(message)))


class ConfigError(WssegError, ValueError):
    """params.yaml or a command-line option is invalid; the message names the key or option."""


class DataError(WssegError, ValueError):
    """Input data that wsseg cannot use; the message names the file (and row) and what to fix."""


class CacheError(WssegError, RuntimeError):
    """A cache or model file is missing, unreadable, or made by another configuration."""


class PluginError(WssegError, LookupError):
    """A plugin is unknown, ambiguous, disabled, broken or of the wrong kind."""
