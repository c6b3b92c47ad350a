import numpy as np
import pytest

from wsseg.metrics import auroc, case_dice, dice, summary


def test_dice():
    a = np.zeros((4, 4), bool)
    a[:2] = True
    b = np.zeros((4, 4), bool)
    b[1:3] = True
    assert dice(a, b) == pytest.approx(0.5)
    assert dice(np.zeros(3), np.zeros(3)) == 1.0
    assert dice(a, np.zeros_like(a)) == 0.0


def test_case_dice_pools_pixels_over_the_slices_of_a_case():
    predicted = [np.array([1, 1, 0, 0]), np.array([0, 0, 0, 0]), np.array([1, 0])]
    truth = [np.array([1, 0, 0, 0]), np.array([1, 1, 0, 0]), np.array([1, 0])]
    scores = case_dice(predicted, truth, ["a", "a", "b"])
    # case a: intersection 1, |p| 2, |t| 3 -> 2/5; slice-averaging would give (2/3 + 0)/2
    assert scores == {"a": pytest.approx(0.4), "b": 1.0}


def test_auroc_matches_hand_computed_values():
    assert auroc([0.1, 0.4, 0.35, 0.8], [0, 0, 1, 1]) == pytest.approx(0.75)
    assert auroc([0.1, 0.2, 0.8, 0.9], [0, 0, 1, 1]) == 1.0
    assert auroc([0.9, 0.8, 0.2, 0.1], [0, 0, 1, 1]) == 0.0
    assert auroc([0.5, 0.5, 0.5, 0.5], [0, 1, 0, 1]) == 0.5
    assert auroc([0.5, 0.5], [0, 1]) == 0.5
    assert np.isnan(auroc([0.1, 0.2], [1, 1]))


def test_summary():
    assert summary([1.0, 3.0]) == {"mean": 2.0, "std": 1.0, "n": 2}
    assert summary([])["n"] == 0
