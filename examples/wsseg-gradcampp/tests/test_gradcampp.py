import numpy as np
import torch

from wsseg.registry import get_plugin
from wsseg.testing import assert_conforms, phantoms
from wsseg_gradcampp import GradCAMPlusPlus, grad_cam_plus_plus

TINY = {"epochs": 1, "channels": [4, 4, 8, 8, 8, 8, 8, 8]}


def test_conforms_to_the_wsseg_interface():
    assert_conforms(GradCAMPlusPlus, config=TINY)


def test_is_registered_as_gradcam_pp():
    assert get_plugin("cam_generator", "gradcam-pp") is GradCAMPlusPlus


def test_a_linear_score_gives_the_closed_form_weights():
    # score = sum_k v_k sum_ij A_kij: gradient v_k everywhere, so alpha = 1 / (2 + v_k sum A_k)
    features = torch.rand(1, 3, 4, 5)
    v = torch.tensor([0.5, -1.0, 2.0])
    grads = v[None, :, None, None].expand_as(features)
    weights = 20 * torch.relu(v) / (2 + v * features.sum(dim=(2, 3))[0])
    expected = torch.relu((weights[None, :, None, None] * features).sum(dim=1))
    torch.testing.assert_close(grad_cam_plus_plus(features, grads), expected)


def test_maps_are_non_negative_and_zero_outside_the_pooling_mask():
    data = phantoms(4)
    generator = GradCAMPlusPlus(TINY)
    generator.fit(data.weak_set("slice"), "slice")
    maps = generator.generate(data.weak_set()).cams
    assert maps.shape == (len(data.images), 8, 8) and (maps >= 0).all()
    x = torch.from_numpy(data.myocardium[:, None])
    outside = generator.model.pool.mask(x, (8, 8))[:, 0].numpy() == 0
    assert np.all(maps[outside] == 0)
