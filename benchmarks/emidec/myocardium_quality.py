"""How good is the predicted myocardium? The val cases against their true wall, and the scar it keeps.

Reads the benchmark's myocardium cache (``wsseg predict-myo``; no later stage is needed) and prints,
over the val cases with pixel labels, on the common grid:

- myocardium Dice per case (mean and std), pooled pixel precision and recall, and the predicted
  wall's area over the true one (mean of the per-case ratios);
- the share of the true fibrosis inside the predicted wall (pooled over the val slices with
  fibrosis), and Otsu's threshold inside the predicted and inside the true wall against the true
  fibrosis (pooled Dice): the label-free reference that every fibrosis method must beat.

Writes ``<workdir>/myocardium_quality.json``. Run after ``bash benchmarks/emidec/run.sh`` (or its
myocardium stages)::

    python benchmarks/emidec/myocardium_quality.py [--params benchmarks/emidec/params.yaml] [--workdir data/emidec]

``WSSEG_SEED=1`` reads the seed-1 benchmark (and sets the seed of ``--params``).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from seeded_run import PARAMS, WORKDIR, seeded_params  # benchmarks/emidec/, beside this script

from wsseg.artefacts import read_artefact
from wsseg.metrics import summary
from wsseg.reference import otsu_inside
from wsseg.workspace import Workspace


def pooled_dice(predicted: list[np.ndarray], truth: list[np.ndarray]) -> float:
    """Dice of the union of all pixels of ``predicted`` against that of ``truth``."""
    overlap = sum(int((p & t).sum()) for p, t in zip(predicted, truth))
    return 2 * overlap / max(sum(int(p.sum() + t.sum()) for p, t in zip(predicted, truth)), 1)


def coverage(myocardium: list[np.ndarray], fibrosis: list[np.ndarray]) -> float:
    """The share of the ``fibrosis`` pixels that lie inside ``myocardium`` (pooled)."""
    return sum(int((m & f).sum()) for m, f in zip(myocardium, fibrosis)) / max(sum(int(f.sum()) for f in fibrosis), 1)


def measure(params_path: Path, workdir: Path) -> dict:
    """The figures of the module docstring for the val cases of the benchmark in ``workdir``."""
    params = seeded_params(params_path)
    ws = Workspace(workdir)
    data = read_artefact(params, ws, "dataset")
    probability = read_artefact(params, ws, "myocardium")["probability"]
    rows = np.flatnonzero((data["split"] == "val") & data["has_mask"])
    predicted = probability[rows] > params.myocardium.threshold
    true = data["myocardium_mask"][rows] > 0
    fibrosis = data["fibrosis_mask"][rows] > 0
    cases = data["case_id"][rows]
    dice, area = {}, {}
    for case in np.unique(cases):
        mine = cases == case
        dice[str(case)] = pooled_dice(list(predicted[mine]), list(true[mine]))
        area[str(case)] = float(predicted[mine].sum() / max(true[mine].sum(), 1))
    overlap = int((predicted & true).sum())
    scarred = np.flatnonzero(fibrosis.reshape(len(rows), -1).any(axis=1))
    images = data["images"][rows]
    scar = [fibrosis[i] for i in scarred]
    return {
        "myocardium_dice": summary(dice.values()),
        "per_case": dice,
        "precision": overlap / max(int(predicted.sum()), 1),
        "recall": overlap / max(int(true.sum()), 1),
        "area_ratio": summary(area.values()),
        "fibrosis_slices": len(scarred),
        "fibrosis_coverage": coverage([predicted[i] for i in scarred], scar),
        "otsu_inside_predicted": pooled_dice([otsu_inside(images[i], predicted[i]) for i in scarred], scar),
        "otsu_inside_true": pooled_dice([otsu_inside(images[i], true[i]) for i in scarred], scar),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--params", type=Path, default=PARAMS, help="params file (seed from WSSEG_SEED, if set)")
    parser.add_argument("--workdir", type=Path, default=WORKDIR, help="the benchmark run (default: WSSEG_SEED's)")
    args = parser.parse_args()
    result = measure(args.params, args.workdir)
    (args.workdir / "myocardium_quality.json").write_text(json.dumps(result, indent=2))
    d, a = result["myocardium_dice"], result["area_ratio"]
    print(f"val myocardium Dice {d['mean']:.3f} ± {d['std']:.3f} over {d['n']} cases")
    print(f"  pooled precision {result['precision']:.3f}, recall {result['recall']:.3f}, area ratio {a['mean']:.2f}")
    print(f"{result['fibrosis_slices']} val slices with fibrosis:")
    print(f"  share of the true fibrosis inside the predicted wall: {result['fibrosis_coverage']:.3f}")
    print(f"  Otsu inside the predicted wall (pooled Dice): {result['otsu_inside_predicted']:.3f}")
    print(f"  Otsu inside the true wall (pooled Dice): {result['otsu_inside_true']:.3f}")


if __name__ == "__main__":
    main()
