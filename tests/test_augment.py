import numpy as np
import torch

from wsseg.augment import (
    dihedral,
    explain,
    flip_averaged,
    paint_scar,
    random_affine,
    random_dihedral,
    random_dihedral_codes,
    random_gamma,
    random_intensity,
    renormalise,
)
from wsseg.interfaces import CAMOutput, WeakSet


def test_the_eight_codes_are_distinct_and_channels_move_together():
    x = torch.arange(2 * 2 * 4 * 4, dtype=torch.float32).view(2, 2, 4, 4)
    outs = {tuple(dihedral(x[:1], c).flatten().tolist()) for c in range(8)}
    assert len(outs) == 8
    y = random_dihedral(x, np.array([5, 0]))
    assert torch.equal(y[1], x[1]) and torch.equal(y[0], dihedral(x[:1], 5)[0])
    assert torch.equal(y[0, 1] - y[0, 0], torch.full((4, 4), 16.0))


def test_non_square_inputs_only_get_shape_keeping_codes():
    codes = random_dihedral_codes(200, np.random.default_rng(0), square=False)
    assert set(codes.tolist()) == {0, 2, 4, 6}


def test_random_affine_moves_channels_together_reproducibly_and_is_identity_at_zero():
    x = torch.zeros(3, 2, 32, 32)
    x[:, :, 8:20, 10:14] = 1
    assert torch.allclose(random_affine(x, np.random.default_rng(0), degrees=0, scale=0, shift=0), x, atol=1e-5)
    y = random_affine(x, np.random.default_rng(1))
    assert torch.equal(y[:, 0], y[:, 1])
    assert not torch.allclose(y, x, atol=1e-2)
    assert torch.equal(y, random_affine(x, np.random.default_rng(1)))
    assert ((y.sum((2, 3)) / x.sum((2, 3))) - 1).abs().max() < 0.4  # area changes by the scale factor squared at most


def test_flip_averaging_keeps_a_flip_equivariant_prediction_and_symmetrises_any_other():
    inputs = np.random.default_rng(0).random((3, 2, 8, 6)).astype(np.float32)
    np.testing.assert_allclose(flip_averaged(lambda x: x[:, 0] * 2, inputs), inputs[:, 0] * 2, rtol=1e-6)
    ramp = np.arange(48, dtype=np.float32).reshape(8, 6)  # ignores the input: not equivariant
    averaged = flip_averaged(lambda x: np.broadcast_to(ramp, (len(x), 8, 6)), inputs)
    np.testing.assert_allclose(
        averaged, np.broadcast_to(ramp.mean(), averaged.shape), rtol=1e-6
    )  # its four flips average out the ramp


def test_random_gamma_changes_only_the_image_channel_keeping_range_and_order():
    x = torch.rand(4, 2, 8, 8)
    y = random_gamma(x, np.random.default_rng(0), 0.4)
    assert torch.equal(y[:, 1], x[:, 1])
    assert y.min() >= 0 and y.max() <= 1
    flat_x, flat_y = x[:, 0].flatten(1), y[:, 0].flatten(1)
    assert torch.equal(flat_x.argsort(), flat_y.argsort())  # a monotone map per sample
    exponents = (flat_y.log() / flat_x.log()).median(dim=1).values
    assert exponents.min() > np.exp(-0.4) - 1e-4 and exponents.max() < np.exp(0.4) + 1e-4
    assert exponents.max() - exponents.min() > 0.05  # each sample draws its own exponent
    assert torch.allclose(random_gamma(x, np.random.default_rng(0), 0.0), x)


def test_intensity_changes_give_leading_channels_one_draw_and_leave_the_rest():
    x = 0.2 + 0.3 * torch.rand(4, 3, 16, 16)  # a slice, its neighbour (1.5x as bright), a target
    x[:, 1] = 1.5 * x[:, 0]
    gamma = random_gamma(x, np.random.default_rng(0), 0.4, channels=2)
    exponent = gamma[:, :2].log() / x[:, :2].log()
    assert torch.allclose(exponent[:, 0], exponent[:, 1], atol=1e-4)  # one exponent for both images
    biased = random_intensity(x, np.random.default_rng(0), bias_field=0.3, channels=2)
    assert torch.allclose(biased[:, 1] / x[:, 1], biased[:, 0] / x[:, 0], atol=1e-5)  # one field for both
    together = renormalise(x, channels=2)
    assert torch.allclose(together[:, 1].amax((1, 2)), torch.ones(4)) and together[:, 0].amax() < 0.9
    for out in (gamma, biased, together):
        assert torch.equal(out[:, 2], x[:, 2])


def test_random_affine_zoom_magnifies_within_its_log_range():
    x = torch.zeros(64, 1, 64, 64)
    x[:, :, 24:40, 24:40] = 1
    y = random_affine(x, np.random.default_rng(0), degrees=0, shift=0, zoom=(0.5, 2.0))
    areas = y.sum((1, 2, 3)) / x.sum((1, 2, 3))  # area ratio = magnification squared
    assert areas.min() > 0.25 * 0.9 and areas.max() < 4.0 * 1.1
    assert (areas < 0.7).any() and (areas > 1.5).any()


def test_random_intensity_changes_only_the_image_within_range_and_reproducibly():
    x = torch.rand(6, 2, 32, 32)
    settings = {"bias_field": 0.3, "low_resolution": 0.5, "blur": 1.2, "noise": 0.05}
    y = random_intensity(x, np.random.default_rng(3), **settings)
    assert torch.equal(y[:, 1], x[:, 1]) and y.min() >= 0 and y.max() <= 1
    assert not torch.allclose(y[:, 0], x[:, 0])
    assert torch.equal(y, random_intensity(x, np.random.default_rng(3), **settings))
    assert torch.equal(random_intensity(x, np.random.default_rng(3)), x)


def test_scar_painting_brightens_part_of_the_wall_and_nothing_else():
    from wsseg.config import SyntheticConfig
    from wsseg.data.synthetic import phantom_case

    images, labels = phantom_case(np.random.default_rng([0, 3]), SyntheticConfig(), False)
    wall = np.isin(labels, (2, 3, 4))
    x = torch.from_numpy(np.stack([images, wall], 1).astype(np.float32))
    y = paint_scar(x, np.random.default_rng(0), 1.0)
    changed = (y[:, 0] - x[:, 0]).abs() > 1e-6
    assert torch.equal(y[:, 1], x[:, 1])  # the target stays myocardium
    assert changed.any() and not (changed & ~torch.from_numpy(wall)).any()
    assert (y[:, 0][changed] - x[:, 0][changed]).mean() > 0.1  # brighter, towards the blood pool
    assert torch.equal(paint_scar(x, np.random.default_rng(0), 0.0), x)


def test_scar_painting_puts_the_same_sectors_into_every_image_channel_asked_for():
    from wsseg.config import SyntheticConfig
    from wsseg.data.synthetic import phantom_case

    images, labels = phantom_case(np.random.default_rng([0, 3]), SyntheticConfig(), False)
    wall = np.isin(labels, (2, 3, 4))
    x = torch.from_numpy(np.stack([images, 0.5 * images, wall], 1).astype(np.float32))  # a dimmer neighbour
    one, both = (paint_scar(x, np.random.default_rng(0), 1.0, channels) for channels in (1, 2))
    assert torch.equal(one[:, 1], x[:, 1]) and torch.equal(both[:, 0], one[:, 0])
    assert torch.equal(both[:, 2], x[:, 2])
    changed = (both[:, :2] - x[:, :2]).abs() > 1e-3
    overlap = (changed[:, 0] & changed[:, 1]).sum() / (changed[:, 0] | changed[:, 1]).sum()
    assert changed[:, 0].any() and overlap > 0.9  # the same sectors
    assert not (changed & ~torch.from_numpy(wall)[:, None]).any()
    painted = changed[:, 0]
    own, neighbour = ((both[:, c][painted] - x[:, c][painted]).mean() for c in (0, 1))
    assert 0 < neighbour < own  # each towards its own blood pool: the dimmer neighbour's is dimmer


def test_renormalise_maps_each_samples_image_percentiles_to_0_1_and_leaves_the_target_alone():
    x = torch.zeros(2, 2, 20, 20)
    x[0, 0] = torch.linspace(0.2, 0.4, 400).reshape(20, 20)  # a dim, low-contrast sample
    x[0, 1, 5:10, 5:10] = 1  # its target
    x[1, 0] = 0.3  # a flat one
    out = renormalise(x)
    assert out[0, 0].min() == 0 and out[0, 0].max() == 1
    assert abs(float(out[0, 0].median()) - 0.5) < 0.02  # a linear map: the middle stays in the middle
    assert torch.equal(out[:, 1], x[:, 1]) and torch.equal(out[1, 0], torch.zeros(20, 20))


class BlockMeanCAM:
    """A flip-equivariant stand-in CAM generator: 4x4 block means of the image; scores the image mean."""

    def generate(self, data):
        n, h, w = data.images.shape
        cams = data.images.reshape(n, h // 4, 4, w // 4, 4).mean(axis=(2, 4))
        scores = data.images.mean(axis=(1, 2))
        return CAMOutput(cams, scores, np.array([scores.max()]))


class LeftHalfCAM(BlockMeanCAM):
    """Not equivariant: only the left half of the CAM responds, and the score is the left half's mean."""

    def generate(self, data):
        out = super().generate(data)
        cams = out.cams.copy()
        cams[..., cams.shape[-1] // 2 :] = 0
        scores = data.images[..., : data.images.shape[-1] // 2].mean(axis=(1, 2))
        return CAMOutput(cams, scores, np.array([scores.max()]))


def weak_slices() -> WeakSet:
    rng = np.random.default_rng(0)
    images = rng.random((3, 16, 16)).astype(np.float32)
    return WeakSet(images, (images > 0.5).astype(np.float32), np.zeros(3, np.int64))


def test_explain_without_flips_is_the_generators_output():
    data = weak_slices()
    out, plain = explain(LeftHalfCAM(), data, flips=False), LeftHalfCAM().generate(data)
    np.testing.assert_array_equal(out.cams, plain.cams)
    np.testing.assert_array_equal(out.slice_scores, plain.slice_scores)


def test_explain_with_flips_maps_each_cam_back_before_averaging():
    data = weak_slices()
    equivariant = explain(BlockMeanCAM(), data, flips=True)  # each flipped CAM, flipped back, is the CAM
    np.testing.assert_allclose(equivariant.cams, BlockMeanCAM().generate(data).cams, rtol=1e-6)
    averaged = explain(LeftHalfCAM(), data, flips=True)  # two of the four flips put each half on the left
    np.testing.assert_allclose(averaged.cams, BlockMeanCAM().generate(data).cams / 2, rtol=1e-6)
    np.testing.assert_allclose(averaged.slice_scores, data.images.mean(axis=(1, 2)), rtol=1e-5)


def test_explain_over_scales_averages_on_the_largest_scales_grid_in_register():
    images = np.zeros((2, 16, 16), np.float32)
    images[:, :8, :8] = 1  # a bright top-left quadrant
    images[1] *= 0.5
    data = WeakSet(images, images.copy(), np.zeros(2, np.int64))
    out = explain(BlockMeanCAM(), data, flips=False, scales=(1.0, 2.0))
    assert out.cams.shape == (2, 8, 8)  # 32 px at scale 2, 4x4 blocks
    top_left = out.cams[:, :4, :4].sum(axis=(1, 2)) / out.cams.sum(axis=(1, 2))
    assert (top_left > 0.9).all()  # both scales' CAMs stay on the bright quadrant
    np.testing.assert_allclose(out.slice_scores, [0.25, 0.125], rtol=0.05)  # the image means, at both scales
    single = explain(BlockMeanCAM(), data, flips=False, scales=(1.0,))
    np.testing.assert_array_equal(single.cams, BlockMeanCAM().generate(data).cams)
