"""Fibrosis post-processing: the classifier's slice and case gates, the minimum lesion size and case burden."""

import numpy as np
import pytest

from tests.conftest import TINY_PARAMS, merge
from wsseg.config import validate_params
from wsseg.postprocess import clear_low_burden, drop_small_lesions, gate


def test_the_slice_gate_keeps_the_flagged_slices_only():
    fibrosis = np.ones((3, 4, 4), np.float32)
    gated = gate(fibrosis, np.array([0.9, 0.2, 0.5]))
    assert gated[0].all() and not gated[1:].any()


def test_the_case_gate_keeps_every_slice_of_a_case_with_one_flagged_slice():
    fibrosis = np.ones((5, 4, 4), np.float32)
    gated = gate(fibrosis, np.array([0.1, 0.9, 0.2, 0.3, 0.4]), np.array(["a", "a", "b", "b", "c"]))
    assert gated[:2].all() and not gated[2:].any()


def test_lesions_below_the_minimum_size_go_and_larger_ones_stay_whole():
    fibrosis = np.zeros((2, 10, 10), np.float32)
    fibrosis[0, 1:3, 1:3] = 0.9  # 4 pixels
    fibrosis[0, 5:9, 5:9] = 0.8  # 16 pixels
    fibrosis[1, 0, 0] = fibrosis[1, 1, 1] = 0.7  # diagonal neighbours: one lesion of 2 pixels
    fibrosis[1, 4, 4] = 0.4  # below the threshold: not a lesion, left as it is
    kept = drop_small_lesions(fibrosis, 0.5, 5)
    assert not kept[0, 1:3, 1:3].any() and (kept[0, 5:9, 5:9] == 0.8).all()
    assert not kept[1, :2, :2].any() and kept[1, 4, 4] == pytest.approx(0.4)
    np.testing.assert_array_equal(drop_small_lesions(fibrosis, 0.5, 2)[1], fibrosis[1])
    assert drop_small_lesions(fibrosis, 0.5, 0) is fibrosis


def test_the_case_gate_needs_the_slice_classifier():
    raw = merge(
        TINY_PARAMS,
        {
            "cam": {"levels": ["stack"]},
            "segmentation": {"supervisions": ["pixel"], "additions": {"case_gate": ["pixel"]}},
        },
    )
    with pytest.raises(ValueError, match="case_gate needs cam.levels"):
        validate_params(raw)


def test_cases_under_the_minimum_burden_lose_their_fibrosis_and_the_others_keep_it():
    myocardium = np.zeros((3, 10, 10), np.float32)
    myocardium[:, :, :5] = 0.9  # 50 wall pixels a slice
    fibrosis = np.zeros((3, 10, 10), np.float32)
    fibrosis[0, 0, :2] = 0.8  # case a: 2 of 100 wall pixels over its two slices (2 %)
    fibrosis[2, :2, 5:] = 0.7  # case b: 10 scar pixels outside the wall: 10 of 60 (16.7 %)
    cases = np.array(["a", "a", "b"])
    kept = clear_low_burden(fibrosis, myocardium, cases, (0.5, 0.5), 2.5)
    assert not kept[:2].any()
    np.testing.assert_array_equal(kept[2], fibrosis[2])
    np.testing.assert_array_equal(clear_low_burden(fibrosis, myocardium, cases, (0.5, 0.5), 2.0), fibrosis)
    assert clear_low_burden(fibrosis, myocardium, cases, (0.5, 0.5), 0.0) is fibrosis
