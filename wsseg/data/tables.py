"""The CSV tables wsseg writes (a dataset's cases.csv and slices.csv, predict's predictions.csv and cases.csv)."""

from __future__ import annotations

import csv
from pathlib import Path

__all__ = ["write_csv"]


def write_csv(path: Path, header: list[str], rows: list[list]) -> None:
    """Write ``header`` and ``rows`` to ``path`` as CSV with Unix line ends."""
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(rows)
