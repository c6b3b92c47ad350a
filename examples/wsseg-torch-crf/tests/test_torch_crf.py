import numpy as np
import pytest
import torch

from wsseg.registry import get_plugin
from wsseg.testing import assert_conforms
from wsseg_otsu_crf import OtsuCRFLabeler, dense_crf
from wsseg_torch_crf import TorchCRFLabeler, mean_field_crf


@pytest.fixture(scope="module")
def probabilities():
    """Noisy blobs of foreground probability on 48x40 grids: work for the CRF's smoothing."""
    rng = np.random.default_rng(0)
    yy, xx = np.indices((48, 40))
    blobs = [np.exp(-((yy - rng.uniform(10, 38)) ** 2 + (xx - rng.uniform(10, 30)) ** 2) / 60) for _ in range(4)]
    probs = np.array([np.clip(0.2 + b + rng.normal(0, 0.25, b.shape), 0, 1) for b in blobs], np.float32)
    return probs, rng.random(probs.shape).astype(np.float32)


def test_conforms_to_the_wsseg_interface():
    assert_conforms(TorchCRFLabeler)


def test_is_registered_as_torch_crf():
    assert get_plugin("pseudo_labeler", "torch-crf") is TorchCRFLabeler


@pytest.mark.parametrize("w1", [0.0, 1.0])
def test_agrees_with_pydensecrf(probabilities, w1):
    probs, images = probabilities
    ours = mean_field_crf(torch.from_numpy(probs), torch.from_numpy(images), w1=w1).numpy()
    reference = np.array([dense_crf(p, i, w1=w1) for p, i in zip(probs, images)])
    assert (ours == reference).mean() > 0.99
    assert ours.sum() != (probs >= 0.5).sum()  # the CRF did something


def test_a_batch_equals_its_slices(probabilities):
    probs, images = torch.from_numpy(probabilities[0]), torch.from_numpy(probabilities[1])
    batched = mean_field_crf(probs, images, w1=1.0)
    assert all(torch.equal(batched[k], mean_field_crf(probs[k], images[k], w1=1.0)) for k in range(len(probs)))


def test_matches_otsu_crf_steps_without_crf(probabilities):
    cam = np.random.default_rng(1).normal(size=(12, 10)).astype(np.float32)
    image, myocardium = probabilities[1][0], np.ones((48, 40), np.float32)
    config = {"crf": False, "myocardium_threshold": 0.5}
    ours = TorchCRFLabeler({**config, "device": "cpu"}).label(cam, image, myocardium, True)
    np.testing.assert_array_equal(ours, OtsuCRFLabeler(config).label(cam, image, myocardium, True))
