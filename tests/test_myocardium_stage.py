"""The train-myo stage: what the myocardium segmenter is given to learn from."""

import shutil

import numpy as np
import pytest

from tests.conftest import TINY_PARAMS, merge
from wsseg.config import validate_params
from wsseg.data.cache import read_cache
from wsseg.registry import get_plugin
from wsseg.stages.myocardium import train_myocardium
from wsseg.workspace import Workspace


class _Captured(Exception):
    pass


def test_fibrosis_repeats_show_each_train_slice_with_fibrosis_that_many_times(pipeline_run, tmp_path, monkeypatch):
    _, workdir, _ = pipeline_run
    ws = Workspace(tmp_path / "data")
    ws.dataset.parent.mkdir(parents=True)
    shutil.copy(workdir / "cache" / "dataset.h5", ws.dataset)
    seen = {}

    def fit(self, inputs, targets, **kwargs):
        seen.update(inputs=inputs, targets=targets)
        raise _Captured

    monkeypatch.setattr(get_plugin("segmenter", "unet"), "fit", fit)
    with pytest.raises(_Captured):
        train_myocardium(validate_params(merge(TINY_PARAMS, {"myocardium": {"fibrosis_repeats": 3}})), ws, "cpu")

    data = read_cache(ws.dataset)
    train = data["has_mask"] & (data["split"] == "train")
    with_fibrosis = data["fibrosis_mask"][train].any(axis=(1, 2))
    assert 0 < with_fibrosis.sum() < train.sum()
    assert len(seen["inputs"]) == len(seen["targets"]) == train.sum() + 2 * with_fibrosis.sum()
    for image, has_fibrosis in zip(data["images"][train], with_fibrosis):
        copies = (seen["inputs"][:, 0] == image).all(axis=(1, 2)).sum()
        assert copies == (3 if has_fibrosis else 1)
