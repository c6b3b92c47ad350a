"""Stage ``pseudo-label``: CAMs of the train split -> binary fibrosis pseudo-labels."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from wsseg.artefacts import build_plugin, read_artefact, read_roi_data, write_artefact
from wsseg.config import Params
from wsseg.interfaces import Level
from wsseg.stages.cams import weak_labels
from wsseg.stages.cases import map_cases
from wsseg.workspace import Workspace


def pseudo_label(params: Params, ws: Workspace, level: Level) -> Path:
    """Pseudo-label every train slice with a known weak label at ``level`` (negatives stay empty).

    Writes the masks on the ROI grid and ``index``, their rows in ``dataset.h5``. Case by case
    (:func:`~wsseg.stages.cases.map_cases`): torchrun processes share the cases out.
    """
    roi = read_roi_data(params, ws)
    cams = read_artefact(params, ws, "cams", level)
    labeler = build_plugin(params, "pseudo_label", level)
    labels = weak_labels(roi, level)
    index = np.flatnonzero((roi.dataset["split"] == "train") & (labels >= 0))

    def label_case(rows: np.ndarray) -> dict:
        masks = [
            labeler.label(cams["cams"][i], roi.images[i], roi.myocardium[i], bool(labels[i] == 1)) for i in index[rows]
        ]
        return {"masks": np.stack(masks).astype(np.uint8)}

    masks = map_cases(roi.dataset["case_id"][index], label_case, f"pseudo-label ({level})")["masks"]
    return write_artefact(
        params,
        ws,
        "pseudo_labels",
        level,
        {"masks": masks, "index": index},
        level=level,
        plugin=params.pseudo_label.plugin,
    )
