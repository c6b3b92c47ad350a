"""How good are the pseudo-labels? A diagnostic on the val slices with fibrosis (not a pipeline stage).

The benchmark's slice CAMs of the val slices with fibrosis go through the pseudo-labeller (with
optional ``key=value`` overrides of ``pseudo_label.config``) and are compared with the true fibrosis
on the ROI grid. Printed beside them as references: Otsu inside the predicted and inside the true
myocardium, and the share of the true fibrosis that the predicted myocardium covers. Run
after ``bash benchmarks/emidec/run.sh``::

    python benchmarks/emidec/pseudo_label_quality.py [myocardium_threshold=0.5 ...]

``WSSEG_SEED=1`` reads the seed-1 benchmark; ``WSSEG_BENCHMARK_DIR`` another folder (e.g. an ablation's).
"""

from __future__ import annotations

import sys

import numpy as np
import yaml
from myocardium_quality import coverage, pooled_dice  # benchmarks/emidec/, beside this script
from seeded_run import WORKDIR, seeded_params

from wsseg.artefacts import read_roi_data
from wsseg.data.cache import read_cache
from wsseg.data.geometry import crop
from wsseg.reference import otsu_inside
from wsseg.registry import get_plugin
from wsseg.workspace import Workspace


def main(overrides: list[str]) -> None:
    config = {key: yaml.safe_load(value) for key, value in (item.split("=", 1) for item in overrides)}
    params = seeded_params(overrides={"pseudo_label": {"config": config}})
    ws = Workspace(WORKDIR)
    roi = read_roi_data(params, ws)
    cams = read_cache(ws.cams("slice"))["cams"]
    rows = np.flatnonzero((roi.dataset["split"] == "val") & (roi.dataset["slice_label"] == 1))
    truth = [mask > 0.5 for mask in roi.fibrosis_masks(params.data.roi_size)[rows]]
    labeler = get_plugin("pseudo_labeler", params.pseudo_label.plugin)(
        params.plugin_config("pseudo_label"), seed=params.seed
    )
    pseudo = [labeler.label(cams[i], roi.images[i], roi.myocardium[i], True) for i in rows]
    myocardium = [roi.myocardium[i] > params.myocardium.threshold for i in rows]
    otsu = [otsu_inside(roi.images[i], m) for i, m in zip(rows, myocardium)]
    true_myocardium = (
        crop(roi.dataset["myocardium_mask"][rows].astype(np.float32), roi.boxes[rows], params.data.roi_size) > 0.5
    )
    otsu_true = [otsu_inside(roi.images[i], m) for i, m in zip(rows, true_myocardium)]
    covered = coverage(myocardium, truth)
    print(f"{len(rows)} val slices with fibrosis, pooled Dice against the truth:")
    print(f"  pseudo-labels ({' '.join([params.pseudo_label.plugin, *overrides])}): {pooled_dice(pseudo, truth):.3f}")
    print(f"  Otsu inside the predicted myocardium: {pooled_dice(otsu, truth):.3f}")
    print(f"  Otsu inside the true myocardium: {pooled_dice(otsu_true, truth):.3f}")
    print(f"share of the true fibrosis inside the predicted myocardium: {covered:.3f}")


if __name__ == "__main__":
    main(sys.argv[1:])
