"""The fibrosis U-Nets' input channels: the image, the wall where asked, the neighbouring slices where asked."""

import numpy as np
import pytest

from tests.conftest import TINY_PARAMS
from wsseg.config import validate_params
from wsseg.pipeline import lineage
from wsseg.stages.fibrosis import fibrosis_inputs


def params(**additions):
    return validate_params({**TINY_PARAMS, "segmentation": {**TINY_PARAMS["segmentation"], "additions": additions}})


@pytest.fixture
def slices():
    images = np.arange(5, dtype=np.float32)[:, None, None] * np.ones((5, 4, 4), np.float32)  # slice i is all i
    return images, images + 10, np.array(["a", "a", "a", "b", "b"])


def test_a_weak_level_gets_the_image_only_unless_asked(slices):
    images, wall, cases = slices
    inputs = fibrosis_inputs(images, wall, cases, params(), "slice")
    assert inputs.shape == (5, 1, 4, 4)
    np.testing.assert_array_equal(inputs[:, 0], images)
    assert fibrosis_inputs(images, wall, cases, params(), "pixel").shape == (5, 2, 4, 4)


def test_neighbours_follow_the_wall_and_stay_inside_their_case(slices):
    images, wall, cases = slices
    inputs = fibrosis_inputs(images, wall, cases, params(myocardium_channel=["slice"], neighbours=["slice"]), "slice")
    assert inputs.shape == (5, 4, 4, 4)
    np.testing.assert_array_equal(inputs[:, 1], wall)  # the wall stays the second channel (wall_scar_dropout)
    assert inputs[:, 2, 0, 0].tolist() == [0, 0, 1, 3, 3]  # below; a stack's end slice stands in for itself
    assert inputs[:, 3, 0, 0].tolist() == [1, 2, 2, 4, 4]  # above
    only_image = fibrosis_inputs(images, wall, cases, params(neighbours=["stack"]), "stack")
    assert only_image.shape == (5, 3, 4, 4) and only_image[1, 1:, 0, 0].tolist() == [0, 2]


def test_neighbours_retrain_their_own_level_only():
    before, after = params(), params(neighbours=["slice"])
    assert lineage(before, "fibrosis_model", "slice") != lineage(after, "fibrosis_model", "slice")
    assert lineage(before, "fibrosis_model", "stack") == lineage(after, "fibrosis_model", "stack")
