"""How much fibrosis Dice does the predicted wall cost at inference? A diagnostic, not a method.

Runs each level's trained models on the val cases twice: with the myocardium the benchmark
predicts (as ``wsseg predict`` does; the figures match ``metrics.json``) and with the drawn one in
its place (ROI box, classifier input, myocardium channel, case burden). The gap is what a perfect
wall would buy at inference; nothing is chosen from it. Prints per level the fibrosis Dice (mean over
the val cases with fibrosis) and the fibrosis-free cases flagged; writes
``<workdir>/wall_at_inference.json``. Run after ``bash benchmarks/emidec/run.sh``::

    python benchmarks/emidec/wall_at_inference.py [--params ...] [--workdir data/emidec]

``WSSEG_SEED=1`` reads the seed-1 benchmark (and sets the seed of ``--params``).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from seeded_run import PARAMS, WORKDIR, seeded_params  # benchmarks/emidec/, beside this script

from wsseg.artefacts import read_artefact
from wsseg.metrics import case_dice
from wsseg.stages.predict import Predictor
from wsseg.workspace import Workspace


def fibrosis_figures(predictor: Predictor, data, rows: np.ndarray, drawn_wall: bool) -> dict:
    """Fibrosis Dice over the cases of ``rows`` with fibrosis, and how many others get any, for one wall."""
    find = predictor.myocardium
    predicted, truth, cases = [], [], []
    for case in np.unique(data["case_id"][rows]):
        mine = rows[data["case_id"][rows] == case]
        if drawn_wall:
            wall = data["myocardium_mask"][mine].astype(np.float32)
            predictor.myocardium = lambda images, case_ids, wall=wall: (wall, None)
        images, case_ids = data["images"][mine], data["case_id"][mine]
        output = predictor(images, case_ids, data["original_shape"][mine], data["view"][mine])
        predictor.myocardium = find
        predicted += output.fibrosis_masks
        truth += [data["fibrosis_original"][i] > 0 for i in mine]  # each slice's own size, as evaluate scores
        cases += [str(case)] * len(mine)
    scarred = {case for case, mask in zip(cases, truth) if mask.any()}
    dice = case_dice(predicted, truth, cases)
    flagged = {case for case, mask in zip(cases, predicted) if mask.any()} - scarred
    return {
        "fibrosis_dice": float(np.mean([dice[case] for case in scarred])),
        "fibrosis_free_flagged": f"{len(flagged)}/{len(set(cases)) - len(scarred)}",
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--params", type=Path, default=PARAMS, help="params file (seed from WSSEG_SEED, if set)")
    parser.add_argument("--workdir", type=Path, default=WORKDIR, help="the benchmark run (default: WSSEG_SEED's)")
    args = parser.parse_args()
    params, ws = seeded_params(args.params), Workspace(args.workdir)
    data = read_artefact(params, ws, "dataset")
    rows = np.flatnonzero((data["split"] == "val") & data["has_mask"])
    results = {}
    print("| level | predicted wall: Dice (flagged) | drawn wall: Dice (flagged) |\n|---|---|---|")
    for level in params.segmentation.supervisions:
        predictor = Predictor(params, ws, level)
        results[level] = {
            wall: fibrosis_figures(predictor, data, rows, wall == "drawn") for wall in ("predicted", "drawn")
        }
        cells = [f"{r['fibrosis_dice']:.3f} ({r['fibrosis_free_flagged']})" for r in results[level].values()]
        print(f"| {level} | {cells[0]} | {cells[1]} |", flush=True)
    (args.workdir / "wall_at_inference.json").write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
