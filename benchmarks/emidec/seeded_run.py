"""Which benchmark run a script reads, as ``run.sh`` writes it.

``WSSEG_SEED`` picks the seed (``data/emidec`` for 0, ``data/emidec-seed<N>`` otherwise);
``WSSEG_BENCHMARK_DIR`` moves the folder.
"""

from __future__ import annotations

import os
from pathlib import Path

SEED = int(os.environ.get("WSSEG_SEED", "0"))
WORKDIR = Path(os.environ.get("WSSEG_BENCHMARK_DIR", "data/emidec" if SEED == 0 else f"data/emidec-seed{SEED}"))
