"""The configuration hash stamped on every cache, model file and resume checkpoint."""

from __future__ import annotations

import hashlib
import json
from typing import Any

__all__ = ["config_hash"]


def config_hash(*sections: Any) -> str:
    """A short, stable hash of JSON-serialisable configuration sections (key order does not matter)."""
    text = json.dumps(sections, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]
