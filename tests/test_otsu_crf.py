"""The built-in ``otsu-crf`` pseudo-labeler (docs/method.md, step 3)."""

from __future__ import annotations

from importlib.metadata import entry_points

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from pydantic import ValidationError
from skimage.filters import threshold_multiotsu

from wsseg.interfaces import PseudoLabeler
from wsseg_otsu_crf import OtsuCRFConfig, OtsuCRFLabeler, cam_to_probability, dense_crf, otsu_suppress


def resized(cam: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Independent oracle for the bilinear resize: torch, align_corners=False."""
    t = torch.from_numpy(np.asarray(cam, dtype=np.float64))[None, None]
    return torch.nn.functional.interpolate(t, size=shape, mode="bilinear", align_corners=False)[0, 0].numpy()


def disc(shape: tuple[int, int], radius: float) -> np.ndarray:
    """Pixels within ``radius`` of the grid's centre."""
    yy, xx = np.indices(shape)
    return (yy - (shape[0] - 1) / 2) ** 2 + (xx - (shape[1] - 1) / 2) ** 2 <= radius**2


@pytest.fixture
def ring_and_blob() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """A CAM over a bright central blob, a medium annulus and a dark outer ring (64x64 image, 16x16 CAM)."""
    shape = (64, 64)
    rng = np.random.default_rng(0)
    cam = np.where(disc((16, 16), 5), 1.0, -1.0).astype(np.float32)
    covered = resized(cam, shape) > 0
    blob = disc(shape, 6)
    middle = disc(shape, 12) & ~blob
    ring = covered & ~disc(shape, 12)
    image = np.full(shape, 0.05)
    image[ring] = 0.2
    image[middle] = 0.55
    image[blob] = 0.95
    image = np.clip(image + rng.normal(0, 0.01, shape), 0, 1).astype(np.float32)
    assert covered[blob | middle].all() and ring.sum() > 300
    return cam, image, ring, blob


def test_negative_label_gives_empty_mask_without_touching_the_cam():
    labeler = OtsuCRFLabeler()
    image = np.random.default_rng(0).random((40, 30), dtype=np.float32)
    cam = np.full((5, 5), np.nan)  # any work on this CAM would raise
    mask = labeler.label(cam, image, np.ones_like(image), weak_label=False)
    assert mask.dtype == bool and mask.shape == (40, 30) and not mask.any()


def test_mask_is_bool_on_the_image_grid():
    rng = np.random.default_rng(1)
    image = rng.random((48, 36)).astype(np.float32)
    cam = rng.normal(size=(12, 9)).astype(np.float32)
    mask = OtsuCRFLabeler().label(cam, image, np.ones_like(image), weak_label=True)
    assert isinstance(OtsuCRFLabeler(), PseudoLabeler)
    assert mask.dtype == bool and mask.shape == image.shape
    assert mask.any()


def test_cam_is_restricted_to_the_myocardium_on_the_image_grid():
    image = np.full((32, 32), 0.9, dtype=np.float32)
    cam = np.ones((8, 8), dtype=np.float32)
    myocardium = np.zeros_like(image)
    myocardium[8:24, 8:24] = 0.9
    config = {"otsu": False, "crf": False}
    restricted = OtsuCRFLabeler({**config, "myocardium_threshold": 0.5}).label(cam, image, myocardium, True)
    assert restricted[8:24, 8:24].all() and restricted.sum() == 16 * 16
    assert OtsuCRFLabeler(config).label(cam, image, myocardium, True).all()  # the paper: no restriction


def test_probability_map_range_and_peak():
    rng = np.random.default_rng(2)
    cam = rng.normal(size=(13, 11))
    prob = cam_to_probability(cam, (50, 41))
    oracle = resized(cam, (50, 41))
    assert prob.shape == (50, 41) and prob.dtype == np.float32
    positive = prob > 0
    assert np.array_equal(positive, oracle > 0)
    assert ((prob[positive] >= 0.5) & (prob[positive] <= 1.0)).all()
    assert prob.max() == 1.0
    assert prob.flat[np.argmax(oracle)] == 1.0
    expected = 0.5 + oracle[positive] / (2 * oracle.max())
    np.testing.assert_allclose(prob[positive], expected, rtol=1e-6)


@pytest.mark.parametrize("value", [0.0, -3.0])
def test_cam_without_positive_values_gives_empty_mask(value):
    cam = np.full((8, 8), value)
    assert not cam_to_probability(cam, (32, 32)).any()
    image = np.random.default_rng(3).random((32, 32)).astype(np.float32)
    assert not OtsuCRFLabeler().label(cam, image, image, weak_label=True).any()


def test_otsu_removes_dark_ring_and_keeps_bright_blob(ring_and_blob):
    cam, image, ring, blob = ring_and_blob
    myo = np.ones_like(image)
    for crf in (False, True):
        with_otsu = OtsuCRFLabeler({"crf": crf}).label(cam, image, myo, True)
        without = OtsuCRFLabeler({"crf": crf, "otsu": False}).label(cam, image, myo, True)
        # Noise puts a pixel or two of the ring in the histogram bin that holds the threshold.
        assert with_otsu[blob].all() and with_otsu[ring].mean() < 0.01
        assert without[blob].all() and without[ring].mean() > 0.9


def test_otsu_suppress_zeroes_only_the_darkest_class(ring_and_blob):
    cam, image, ring, blob = ring_and_blob
    prob = cam_to_probability(cam, image.shape)
    out = otsu_suppress(prob, image)
    lowest = threshold_multiotsu(image[prob > 0], classes=3)[0]
    assert np.array_equal(out, np.where(image < lowest, 0, prob))
    assert (out[ring] == 0).mean() > 0.99 and np.array_equal(out[blob], prob[blob])
    assert not np.shares_memory(out, prob)


@pytest.mark.parametrize("image", [np.full((16, 16), 0.4), np.where(np.arange(256).reshape(16, 16) % 2, 0.2, 0.8)])
def test_otsu_is_skipped_with_fewer_intensities_than_classes(image):
    prob = np.full((16, 16), 0.75, dtype=np.float32)
    assert np.array_equal(otsu_suppress(prob, image, classes=3), prob)


def test_crf_removes_low_probability_speck_and_keeps_confident_blob():
    image = np.full((48, 48), 0.5, dtype=np.float32)
    cam = np.zeros((48, 48), dtype=np.float32)
    cam[8:24, 8:24] = 1.0
    cam[38, 38] = 0.1  # p = 0.55 after scaling
    prob = cam_to_probability(cam, image.shape)
    assert prob[38, 38] == pytest.approx(0.55)
    refined = dense_crf(prob, image)
    assert refined[8:24, 8:24].all() and not refined[38, 38]
    off = OtsuCRFLabeler({"otsu": False, "crf": False}).label(cam, image, image, True)
    on = OtsuCRFLabeler({"otsu": False}).label(cam, image, image, True)
    assert off[38, 38] and not on[38, 38]
    assert on[8:24, 8:24].all()


def test_appearance_kernel_follows_intensity():
    image = np.full((48, 48), 0.1, dtype=np.float32)
    prob = np.zeros((48, 48), dtype=np.float32)
    image[5:20, 5:30] = 0.9
    prob[5:20, 5:20] = 1.0  # bright, confident
    prob[5:20, 20:30] = 0.6  # bright, weak: like the confident region
    prob[30:40, 20:30] = 0.6  # dark, weak: like the background
    unary_only = dense_crf(prob, image, w1=0.0, w2=0.0)
    appearance = dense_crf(prob, image, w1=1.0, w2=0.0)
    assert unary_only[5:20, 20:30].all() and unary_only[30:40, 20:30].all()
    assert appearance[5:20, 5:30].all() and not appearance[30:40, 20:30].any()


def test_threshold_applies_without_crf():
    cam = np.linspace(0.0, 1.0, 64).reshape(8, 8)
    image = np.full((8, 8), 0.5, dtype=np.float32)
    low = OtsuCRFLabeler({"crf": False}).label(cam, image, image, True)
    high = OtsuCRFLabeler({"crf": False, "threshold": 0.9}).label(cam, image, image, True)
    assert np.array_equal(low, cam > 0)
    assert np.array_equal(high, 0.5 + cam / 2 >= 0.9)


def test_config_defaults_and_validation():
    cfg = OtsuCRFConfig()
    assert (cfg.otsu, cfg.otsu_classes, cfg.crf, cfg.crf_iterations) == (True, 3, True, 5)
    assert (cfg.w1, cfg.w2, cfg.theta_gamma) == (0.0, 1.0, 3.0)
    assert OtsuCRFLabeler({"crf_iterations": 2}).config.crf_iterations == 2
    for bad in (
        {"otsu_classes": 1},
        {"otsu_classes": 6},
        {"crf_iterations": 0},
        {"w2": -1.0},
        {"theta_gamma": 0.0},
        {"threshold": 0.0},
        {"unknown": 1},
    ):
        with pytest.raises(ValidationError):
            OtsuCRFLabeler(bad)


def test_shape_mismatch_is_refused():
    image = np.zeros((16, 16), dtype=np.float32)
    with pytest.raises(ValueError):
        OtsuCRFLabeler().label(np.ones((4, 4)), image, np.zeros((8, 8)), True)
    with pytest.raises(ValueError):
        cam_to_probability(np.ones((2, 4, 4)), (16, 16))


grids = st.tuples(st.integers(1, 12), st.integers(1, 12))
sizes = st.tuples(st.integers(2, 40), st.integers(2, 40))
values = st.floats(-5, 5, allow_nan=False, width=32)


@st.composite
def slices(draw):
    cam = draw(arrays(np.float32, draw(grids), elements=values))
    shape = draw(sizes)
    if draw(st.booleans()):
        image = np.full(shape, draw(st.floats(0, 1, width=32)), dtype=np.float32)
    else:
        image = draw(arrays(np.float32, shape, elements=st.floats(0, 1, width=32)))
    return cam, image


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(slices(), st.booleans())
def test_mask_lies_inside_positive_cam(case, otsu):
    cam, image = case
    oracle = resized(cam, image.shape)
    # The two resize implementations may disagree on the sign of values at rounding level.
    tol = 1e-6 * float(np.abs(cam).max())
    positive, possible = oracle > tol, oracle > -tol
    for crf in (False, True):
        mask = OtsuCRFLabeler({"otsu": otsu, "crf": crf}).label(cam, image, np.ones_like(image), True)
        assert mask.dtype == bool and mask.shape == image.shape
        assert not (mask & ~possible).any()
    if otsu is False:
        mask = OtsuCRFLabeler({"otsu": False, "crf": False}).label(cam, image, np.ones_like(image), True)
        assert mask[positive].all()


@settings(max_examples=30, deadline=None)
@given(arrays(np.float32, grids, elements=st.floats(-5, 0, width=32)), sizes, st.floats(0, 1, width=32))
def test_non_positive_cam_on_constant_image_is_empty(cam, shape, level):
    image = np.full(shape, level, dtype=np.float32)
    assert not OtsuCRFLabeler().label(cam, image, image, True).any()


def test_registered_through_entry_point():
    found = {ep.name: ep for ep in entry_points(group="wsseg.pseudo_labelers")}
    assert "otsu-crf" in found
    assert found["otsu-crf"].load() is OtsuCRFLabeler
