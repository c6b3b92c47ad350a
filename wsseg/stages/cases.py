"""Inference stages run case by case, over this process's share of the cases.

A case's outputs come from one call on that case alone, so they are the same bit for bit
whichever other cases share the process: a stage sharded over torchrun processes writes exactly
the cache of a single process (given the same threads per process; float sums depend on them).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from wsseg import distributed
from wsseg.progress import track


def map_cases(
    case_ids: np.ndarray, compute: Callable[[np.ndarray], dict[str, Any]], description: str
) -> dict[str, Any]:
    """``compute(rows)`` for the rows of each case, merged into outputs for every row, in row order.

    ``compute`` returns arrays or lists whose first axis follows ``rows``. Under torchrun each
    process computes its share of the cases and every process gets the merged outputs.
    """
    case_ids = np.asarray(case_ids)
    mine = distributed.shard_cases(case_ids)
    pieces, rows = [], []
    for case in track(list(dict.fromkeys(case_ids[mine])), description):
        case_rows = np.flatnonzero(case_ids == case)
        pieces.append(compute(case_rows))
        rows.append(case_rows)
    local = {key: _concatenate([piece[key] for piece in pieces]) for key in pieces[0]} if pieces else {}
    return distributed.gather_rows(local, np.concatenate(rows) if rows else np.zeros(0, np.int64), len(case_ids))


def _concatenate(parts: list) -> Any:
    if isinstance(parts[0], list):
        return [item for part in parts for item in part]
    return np.concatenate(parts)
