"""Stage ``pseudo-label``: CAMs of the train split -> binary fibrosis pseudo-labels."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from wsseg.config import Params
from wsseg.data.cache import read_cache, write_cache
from wsseg.interfaces import Level
from wsseg.registry import get_plugin
from wsseg.stages.cams import weak_labels
from wsseg.stages.cases import map_cases
from wsseg.stages.myocardium import read_roi_data
from wsseg.workspace import Workspace, lineage


def pseudo_label(params: Params, ws: Workspace, level: Level) -> Path:
    """Pseudo-label every train slice with a known weak label at ``level`` (negatives stay empty).

    Writes the masks on the ROI grid and ``index``, their rows in ``dataset.h5``. Case by case
    (:func:`~wsseg.stages.cases.map_cases`): torchrun processes share the cases out.
    """
    roi = read_roi_data(params, ws)
    cams = read_cache(ws.cams(level), expected_config=lineage(params, "cams", level), rerun=f"wsseg cams --level {level}")
    labeler = get_plugin("pseudo_labeler", params.pseudo_label.plugin)(params.plugin_config("pseudo_label"), seed=params.seed)
    labels = weak_labels(roi, level)
    index = np.flatnonzero((roi.dataset["split"] == "train") & (labels >= 0))

    def label_case(rows: np.ndarray) -> dict:
        masks = [labeler.label(cams["cams"][i], roi.images[i], roi.myocardium[i], bool(labels[i] == 1)) for i in index[rows]]
        return {"masks": np.stack(masks).astype(np.uint8)}

    masks = map_cases(roi.dataset["case_id"][index], label_case, f"pseudo-label ({level})")["masks"]
    return write_cache(
        ws.pseudo_labels(level), {"masks": masks, "index": index}, config=lineage(params, "pseudo_labels", level), level=level, plugin=params.pseudo_label.plugin
    )
