"""Properties of the built-in pseudo-labeler over arbitrary CAMs, images and myocardium maps."""

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from wsseg_otsu_crf import OtsuCRFLabeler

unit = st.floats(0, 1, width=32)


@st.composite
def inputs(draw):
    """A CAM on a coarse grid, and an image with its myocardium probabilities on a finer one."""
    shape = draw(st.tuples(st.integers(4, 24), st.integers(4, 24)))
    cam = draw(
        arrays(np.float32, draw(st.tuples(st.integers(1, 8), st.integers(1, 8))), elements=st.floats(-3, 3, width=32))
    )
    return cam, draw(arrays(np.float32, shape, elements=unit)), draw(arrays(np.float32, shape, elements=unit))


configs = st.fixed_dictionaries(
    {
        "myocardium_threshold": st.one_of(st.none(), st.floats(0.05, 0.95)),
        "otsu": st.booleans(),
        "crf": st.booleans(),
        "w1": st.sampled_from([0.0, 1.0]),
    }
)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(inputs(), configs, st.booleans())
def test_output_is_a_reproducible_binary_mask_on_the_image_grid(case, config, weak_label):
    cam, image, myocardium = case
    mask = OtsuCRFLabeler(config, seed=1).label(cam, image, myocardium, weak_label)
    assert mask.dtype == bool and mask.shape == image.shape
    again = OtsuCRFLabeler(config, seed=2).label(cam.copy(), image.copy(), myocardium.copy(), weak_label)
    np.testing.assert_array_equal(mask, again)
    if not weak_label:
        assert not mask.any()
    if config["myocardium_threshold"] is not None:
        assert not (mask & (myocardium < config["myocardium_threshold"])).any()


@settings(max_examples=20, deadline=None)
@given(inputs(), st.sampled_from([np.nan, np.inf, -np.inf]))
def test_a_cam_with_nan_or_inf_is_refused_not_labelled(case, bad):
    cam, image, myocardium = case
    cam = cam.copy()
    cam.flat[0] = bad
    with pytest.raises(ValueError, match="NaN or infinite"):
        OtsuCRFLabeler().label(cam, image, myocardium, True)
