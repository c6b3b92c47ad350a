"""The two-step myocardium: the heart finder's box, then the wall model inside it."""

from __future__ import annotations

import numpy as np
import pytest

from wsseg.config import validate_params
from wsseg.data.neighbours import with_neighbours
from wsseg.stages.myocardium import MyocardiumFinder, heart_boxes, heart_region, wall_inputs


class Disc:
    """A stand-in heart finder: probability 1 inside a disc of its input grid."""

    def __init__(self, centre, radius):
        self.centre, self.radius = centre, radius

    def predict(self, inputs):
        n, _, h, w = inputs.shape
        yy, xx = np.mgrid[:h, :w]
        disc = ((yy + 0.5 - self.centre[0] * h) ** 2 + (xx + 0.5 - self.centre[1] * w) ** 2) < (self.radius * h) ** 2
        return np.broadcast_to(disc, (n, h, w)).astype(np.float32)


class Everywhere:
    """A stand-in wall model that calls everything it sees myocardium."""

    def predict(self, inputs):
        return np.ones((len(inputs), *inputs.shape[2:]), np.float32)


def test_the_wall_is_predicted_inside_the_heart_box_found_at_any_place_and_size():
    params = validate_params({"heart": {"image_size": 32, "margin": 0.25}, "myocardium": {"roi_size": 32}})
    images = np.random.default_rng(0).random((3, 128, 128)).astype(np.float32)
    for centre, radius in (((0.3, 0.7), 0.1), ((0.5, 0.5), 0.35)):
        finder = MyocardiumFinder(params, Disc(centre, radius), Everywhere())
        probability, boxes = finder(images, np.array(["a", "a", "a"]))
        side = 2 * radius * 128 * 1.5  # the disc's extent grown by the margin on both sides
        np.testing.assert_allclose(boxes[0, 2] - boxes[0, 0], side, atol=6)
        np.testing.assert_allclose((boxes[0, :2] + boxes[0, 2:]) / 2, np.array(centre) * 128, atol=3)
        inside = probability[0] > 0.5
        found = min(boxes[0, 2] - boxes[0, 0], 128)
        assert abs(inside.sum() - found**2) < 0.1 * found**2  # the box, clipped to the grid


def test_a_found_heart_box_grows_by_found_margin_where_it_is_set():
    images, sides = np.zeros((1, 128, 128), np.float32), []
    for additions in ({}, {"found_margin": 0.5}):
        params = validate_params({"heart": {"image_size": 32, "margin": 0.25, "additions": additions}})
        box = MyocardiumFinder(params, Disc((0.5, 0.5), 0.2), Everywhere()).find_hearts(images, np.array(["a"]))[0]
        sides.append(box[2] - box[0])
    assert sides[1] / sides[0] == pytest.approx(2.0 / 1.5)  # the heart's extent grown by 2 x 0.25, then 2 x 0.5


def test_a_stray_blob_does_not_stretch_the_heart_box():
    mask = np.zeros((64, 64), bool)
    mask[20:40, 20:40] = True
    mask[2:4, 60:62] = True
    assert heart_region(mask[None].astype(np.float32), 0.5).sum() == 400
    box = heart_boxes(mask[None].astype(np.float32), np.array(["a"]), validate_params({}), margin=0.0)[0]
    np.testing.assert_allclose(box, [20, 20, 40, 40])


def test_the_heart_is_the_region_found_through_the_stack_not_the_largest_on_one_slice():
    probability = np.zeros((4, 64, 64), np.float32)
    probability[:, 10:30, 10:30] = 0.9  # the heart, on every slice
    probability[1, 35:64, 30:64] = 1.0  # a larger, confident stray region on one slice
    region = heart_region(probability, 0.5)
    assert region.sum() == 400 and region[20, 20]
    case = np.array(["a"] * 4)
    np.testing.assert_allclose(heart_boxes(probability, case, validate_params({}), margin=0.0)[0], [10, 10, 30, 30])


class Bright:
    """A stand-in heart finder that calls the bright pixels of its input heart (blocky on a coarse grid)."""

    def predict(self, inputs):
        return (inputs[:, 0] > 0.25).astype(np.float32)


def small_heart(radius: float) -> np.ndarray:
    """One 128 px slice, dark but for a bright disc of ``radius`` px centred at (50, 70)."""
    yy, xx = np.mgrid[:128, :128]
    return (((yy + 0.5 - 50) ** 2 + (xx + 0.5 - 70) ** 2) < radius**2)[None].astype(np.float32)


def test_zoom_in_finds_a_small_heart_box_more_tightly_than_the_coarse_first_look():
    images = small_heart(9)
    true_side = 18 * 1.5  # the disc's extent grown by the margin on both sides
    errors = {}
    for zoom_in in (False, True):
        params = validate_params({"heart": {"image_size": 16, "margin": 0.25, "zoom_in": zoom_in}})
        box = MyocardiumFinder(params, Bright(), Everywhere()).find_hearts(images, np.array(["a"]))[0]
        np.testing.assert_allclose((box[:2] + box[2:]) / 2, [50, 70], atol=4)
        errors[zoom_in] = abs(box[2] - box[0] - true_side)
    assert errors[True] < errors[False] / 2, errors


class Confident:
    """A stand-in heart finder that calls only the brightest pixels heart: on a coarse whole slice, only
    the middle of a small bright disc survives the blur; on a closer, normalised window, all of it."""

    def predict(self, inputs):
        return (inputs[:, 0] > 0.9).astype(np.float32)


def test_a_minimum_window_lets_the_second_look_see_a_heart_found_too_small():
    images = small_heart(10)
    true_side = 20 * 1.5  # the disc's extent grown by the margin on both sides
    errors = {}
    for min_window in (0.0, 0.5):
        heart = {"image_size": 16, "margin": 0.25, "zoom_in": True, "additions": {"min_window": min_window}}
        finder = MyocardiumFinder(validate_params({"heart": heart}), Confident(), Everywhere())
        box = finder.find_hearts(images, np.array(["a"]))[0]
        errors[min_window] = abs(box[2] - box[0] - true_side)
    assert errors[0.0] > 0.1 * true_side and errors[0.5] < errors[0.0] / 2, errors


def test_wall_inputs_are_renormalised_to_the_crop_only_with_roi_normalise():
    images = np.full((1, 64, 64), 0.2, np.float32)
    images[0, 20:40, 20:40] = np.linspace(0.2, 0.4, 20, dtype=np.float32)[None]
    box = np.array([[16.0, 16.0, 48.0, 48.0]])
    for normalise, brightest in ((False, 0.4), (True, 1.0)):
        params = validate_params({"myocardium": {"roi_size": 32}, "data": {"additions": {"roi_normalise": normalise}}})
        inputs = wall_inputs(images, box, np.array(["c"]), params)
        assert inputs.shape == (1, 1, 32, 32)
        assert abs(inputs.max() - brightest) < 0.02


def test_with_neighbours_stacks_each_slice_with_the_ones_below_and_above_in_its_case():
    slices = np.arange(5, dtype=np.float32)[:, None, None] * np.ones((5, 2, 2), np.float32)
    cases = np.array(["a", "a", "a", "b", "b"])
    stacked = with_neighbours(slices, cases)
    assert stacked.shape == (5, 3, 2, 2)
    np.testing.assert_array_equal(stacked[:, :, 0, 0], [[0, 0, 1], [1, 0, 2], [2, 1, 2], [3, 3, 4], [4, 3, 4]])
    assert with_neighbours(slices[:1], cases[:1]).shape == (1, 3, 2, 2)
    assert with_neighbours(slices[:0], cases[:0]).shape == (0, 3, 2, 2)


def test_the_neighbours_option_gives_the_wall_model_three_channels():
    images = np.random.default_rng(0).random((3, 64, 64)).astype(np.float32)
    boxes = np.tile([16.0, 16.0, 48.0, 48.0], (3, 1))
    cases = np.array(["a", "a", "b"])
    for neighbours, channels in ((False, 1), (True, 3)):
        params = validate_params({"myocardium": {"roi_size": 32, "additions": {"neighbours": neighbours}}})
        inputs = wall_inputs(images, boxes, cases, params)
        assert inputs.shape == (3, channels, 32, 32)
    np.testing.assert_array_equal(inputs[1, 1], inputs[0, 0])  # slice 1's slice below is slice 0
    np.testing.assert_array_equal(inputs[2, 1:], inputs[2, [0, 0]])  # case b has one slice
