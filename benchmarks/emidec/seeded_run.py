"""Which benchmark run a script reads, as ``run.sh`` writes it.

``WSSEG_SEED`` picks the seed (``data/emidec`` for 0, ``data/emidec-seed<N>`` otherwise);
``WSSEG_BENCHMARK_DIR`` moves the folder.
"""

from __future__ import annotations

import os
from pathlib import Path

from wsseg.config import Params, merge, read_mapping, validate_params

PARAMS = Path("benchmarks/emidec/params.yaml")
SEED = int(os.environ.get("WSSEG_SEED", "0"))
WORKDIR = Path(os.environ.get("WSSEG_BENCHMARK_DIR", "data/emidec" if SEED == 0 else f"data/emidec-seed{SEED}"))


def seeded_params(path: Path = PARAMS, overrides: dict | None = None) -> Params:
    """The params at ``path`` with ``overrides`` merged in, and the seed set to ``WSSEG_SEED`` where that is set."""
    raw = merge(read_mapping(path), overrides or {})
    return validate_params({**raw, "seed": SEED} if "WSSEG_SEED" in os.environ else raw)
