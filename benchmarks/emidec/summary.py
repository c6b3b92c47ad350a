"""The benchmark over seeds: each seed's val figures side by side, and the ablations against them.

Run after ``bash benchmarks/emidec/run.sh`` and ``WSSEG_SEED=1 bash benchmarks/emidec/run.sh``
(and, for the second table, ``benchmarks/emidec/ablations.py`` with the same seeds)::

    python benchmarks/emidec/summary.py [WORKDIR ...]    # default: data/emidec data/emidec-seed1

Prints two markdown tables: the headline figures per seed with their mean, and each ablation's
fibrosis Dice per seed with its mean change against the benchmark's own level. An option is worth
keeping only when it wins on two seeds and raises their mean (docs/benchmark.md).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

from wsseg.reference import REFERENCES
from wsseg.stages.evaluate import format_burden

DEFAULT = [Path("data/emidec"), Path("data/emidec-seed1")]


def _dice(figures: dict) -> str:
    flagged = f"{figures['fibrosis_free_flagged']}/{figures['fibrosis_free_cases']}"
    return f"{figures['dice']['mean']:.3f} ({flagged})"


def headline(runs: list[dict]) -> str:
    """Myocardium, fibrosis per level and per label-free reference, classifiers: one column per seed."""
    rows: list[tuple[str, list[str], list[float]]] = []  # name, cells per seed, the values their mean is of
    myocardium = [m["myocardium"]["dice"]["mean"] for m in runs]
    rows.append(("myocardium Dice", [f"{v:.3f}" for v in myocardium], myocardium))
    rows_of = [(f"{level}-level", "fibrosis", level) for level in runs[0]["fibrosis"]]
    rows_of += [(f"*{REFERENCES[name]}*", "label_free", name) for name in runs[0].get("label_free", {})]
    for label, section, key in rows_of:
        figures = [m[section][key] for m in runs]
        rows.append(
            (f"fibrosis Dice, {label} (flagged)", [_dice(f) for f in figures], [f["dice"]["mean"] for f in figures])
        )
    for label, section, key in rows_of:
        figures = [m[section][key] for m in runs]
        pp = [f["burden"]["mean_abs_diff_pp"] for f in figures]
        cells = [format_burden(f["burden"]) for f in figures]
        rows.append((f"scar burden, {label}: mean absolute difference, correlation", cells, pp))
    for level in runs[0]["classification"]:
        aurocs = [m["classification"][level][f"{level}_auroc"] for m in runs]
        rows.append((f"{level} classifier, AUROC per {level}", [f"{v:.3f}" for v in aurocs], aurocs))
    header = "| figure (val) | " + " | ".join(f"seed {i}" for i in range(len(runs))) + " | mean |"
    lines = [header, "|---" * (len(runs) + 2) + "|"]
    for name, cells, values in rows:
        mean = f"{np.mean(values):.1f} pp" if name.startswith("scar burden") else f"{np.mean(values):.3f}"
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {mean} |")
    return "\n".join(lines)


def ablations(runs: list[dict], tables: list[dict]) -> str:
    """Each variant run on every seed: its fibrosis Dice per seed, and the mean change against the benchmark."""
    names = [name for name in tables[0] if all(name in table for table in tables)]
    header = "| variant | level | " + " | ".join(f"seed {i}" for i in range(len(runs))) + " | mean change |"
    lines = [header, "|---" * (len(runs) + 3) + "|"]
    for level in dict.fromkeys(tables[0][name]["supervision"] for name in names):
        lines.append(f"| **benchmark** | {level} | " + " | ".join(_dice(m["fibrosis"][level]) for m in runs) + " | |")
    for name in names:
        level = tables[0][name]["supervision"]
        cells, changes = [], []
        for metrics, table in zip(runs, tables):
            row = table[name]
            cells.append(f"{row['fibrosis_dice']['mean']:.3f} ({row['fibrosis_free_flagged']})")
            changes.append(row["fibrosis_dice"]["mean"] - metrics["fibrosis"][level]["dice"]["mean"])
        wins = "wins on every seed" if min(changes) > 0 else ""
        lines.append(f"| {name} | {level} | " + " | ".join(cells) + f" | {np.mean(changes):+.3f} {wins} |")
    return "\n".join(lines)


def main(folders: list[Path]) -> None:
    missing = [str(folder / "metrics.json") for folder in folders if not (folder / "metrics.json").exists()]
    if missing:
        sys.exit(f"no benchmark run in {missing[0]}: run benchmarks/emidec/run.sh (WSSEG_SEED=1 for seed 1) first")
    runs = [json.loads((folder / "metrics.json").read_text()) for folder in folders]
    print(headline(runs))
    tables = [folder / "ablations.json" for folder in folders]
    if all(path.exists() for path in tables):
        print()
        print(ablations(runs, [json.loads(path.read_text()) for path in tables]))


if __name__ == "__main__":
    main([Path(arg) for arg in sys.argv[1:]] or DEFAULT)
