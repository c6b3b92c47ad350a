import numpy as np
import pytest
import torch
from pydantic import ValidationError

from wsseg_unet import UNet, UNetSegmenter, bright_wall, dice_loss


def test_unet_keeps_the_grid_and_outputs_probabilities():
    out = UNet(in_channels=2, base_channels=4, depth=3)(torch.rand(3, 2, 32, 32))
    assert out.shape == (3, 1, 32, 32)
    assert 0 <= out.min() and out.max() <= 1


def test_dice_loss_matches_the_reference_formula():
    p = torch.tensor([1.0, 0.5, 0.0])
    t = torch.tensor([1.0, 1.0, 0.0])
    expected = 1 - (2 * 1.5 + 1) / (1.25 + 2 + 1)
    assert dice_loss(p, t).item() == pytest.approx(expected)
    assert dice_loss(t, t).item() == pytest.approx(0.0)


def bright_squares() -> tuple[np.ndarray, np.ndarray]:
    """32 dim 16x16 images, each with a bright 6x6 square, and the squares as targets."""
    rng = np.random.default_rng(0)
    images = rng.random((32, 1, 16, 16)).astype(np.float32) * 0.3
    targets = np.zeros((32, 16, 16), np.float32)
    for i in range(32):
        y, x = rng.integers(0, 10, 2)
        images[i, 0, y : y + 6, x : x + 6] += 0.7
        targets[i, y : y + 6, x : x + 6] = 1
    return images, targets


def dice(predicted: np.ndarray, targets: np.ndarray) -> float:
    return float(2 * (predicted & (targets > 0)).sum() / (predicted.sum() + targets.sum()))


def test_segmenter_learns_a_bright_square_and_survives_a_state_round_trip():
    images, targets = bright_squares()
    segmenter = UNetSegmenter({"epochs": 15, "base_channels": 4, "depth": 2, "lr": 1e-2}, seed=0)
    segmenter.fit(images, targets)
    predicted = segmenter.predict(images) > 0.5
    assert dice(predicted, targets) > 0.8
    clone = UNetSegmenter(segmenter.config)
    clone.load_state_dict(segmenter.state_dict())
    np.testing.assert_array_equal(clone.predict(images), segmenter.predict(images))


def test_an_ensemble_predicts_the_mean_of_its_members_and_survives_a_state_round_trip():
    images, targets = bright_squares()
    config = {"epochs": 3, "base_channels": 4, "depth": 2, "lr": 1e-2}
    ensemble = UNetSegmenter({**config, "ensemble": 2}, seed=0)
    ensemble.fit(images, targets)
    single = UNetSegmenter(config, seed=0)
    single.fit(images, targets)
    state = ensemble.state_dict()
    first, second = UNetSegmenter(config), UNetSegmenter(config)
    first.load_state_dict({**state, "members": []})
    second.load_state_dict({**state, "weights": state["members"][0], "members": []})
    np.testing.assert_array_equal(first.predict(images), single.predict(images))  # the first member: seed 0
    assert not np.allclose(second.predict(images), first.predict(images))  # the second: its own seed
    mean = (first.predict(images) + second.predict(images)) / 2
    np.testing.assert_allclose(ensemble.predict(images), mean, rtol=1e-6)
    clone = UNetSegmenter(ensemble.config)
    clone.load_state_dict(state)
    np.testing.assert_array_equal(clone.predict(images), ensemble.predict(images))


def test_context_classes_train_a_softmax_whose_prediction_is_the_highest_class():
    images, squares = bright_squares()
    inside = np.pad(squares[:, 1:-1, 1:-1] > 0, ((0, 0), (1, 1), (1, 1))) & (
        np.roll(squares, 1, 1) * np.roll(squares, -1, 1) * np.roll(squares, 1, 2) * np.roll(squares, -1, 2) > 0
    )
    targets = 2 * squares - inside  # 0 background, 1 the square's inside, 2 its one-pixel rim (a "wall")
    segmenter = UNetSegmenter({"epochs": 25, "base_channels": 4, "depth": 2, "lr": 1e-2, "bce_weight": 1}, seed=0)
    segmenter.fit(images, targets)
    rim = segmenter.predict(images) > 0.5
    assert dice(rim, targets == 2) > 0.7
    assert rim[inside].mean() < 0.2  # the bright inside is context, not the class predicted
    clone = UNetSegmenter(segmenter.config)
    clone.load_state_dict(segmenter.state_dict())
    assert clone.state_dict()["classes"] == 3
    np.testing.assert_array_equal(clone.predict(images), segmenter.predict(images))


def test_predict_before_training_is_a_clear_error():
    with pytest.raises(RuntimeError, match="not trained"):
        UNetSegmenter().predict(np.zeros((1, 1, 16, 16), np.float32))


@pytest.mark.parametrize("gamma", [0.0, 0.3])
def test_gamma_option_applies_random_gamma_to_the_training_batches_only_when_set(monkeypatch, gamma):
    import wsseg_unet.segmenter as module

    calls = []

    def spy(batch, rng, strength, channels):
        calls.append((tuple(batch.shape), strength, channels))
        return batch

    monkeypatch.setattr(module, "random_gamma", spy)
    images, targets = (
        np.random.default_rng(0).random((4, 2, 16, 16)).astype(np.float32),
        np.zeros((4, 16, 16), np.float32),
    )
    UNetSegmenter({"epochs": 2, "base_channels": 4, "depth": 2, "batch_size": 2, "gamma": gamma}, seed=0).fit(
        images, targets
    )
    assert calls == ([((2, 3, 16, 16), gamma, 1)] * 4 if gamma else [])


@pytest.mark.parametrize(("asked", "touched"), [(1, 1), (2, 2), (5, 2)])
def test_intensity_channels_reach_the_augmentations_and_never_the_target(monkeypatch, asked, touched):
    import wsseg_unet.segmenter as module

    seen = []

    def spy(batch, *_, channels, **settings):
        seen.append(channels)
        return batch

    monkeypatch.setattr(module, "random_intensity", spy)
    monkeypatch.setattr(module, "renormalise", spy)
    images, targets = (
        np.random.default_rng(0).random((4, 2, 16, 16)).astype(np.float32),
        np.zeros((4, 16, 16), np.float32),
    )
    config = {"epochs": 1, "base_channels": 4, "depth": 2, "batch_size": 4, "bias_field": 0.3, "renormalise": True}
    UNetSegmenter({**config, "intensity_channels": asked}, seed=0).fit(images, targets)
    assert seen == [touched, touched]  # two input channels: a larger ask stops short of the target


@pytest.mark.parametrize("native", [True, False])
def test_mixed_precision_runs_in_bfloat16_only_where_the_device_has_it(monkeypatch, native):
    import wsseg_unet.segmenter as module

    monkeypatch.setattr(module, "native_bfloat16", lambda device: native)
    images, targets = bright_squares()
    config = {"epochs": 15, "base_channels": 4, "depth": 2, "lr": 1e-2, "mixed_precision": True}
    segmenter = UNetSegmenter(config, seed=0)
    segmenter.fit(images, targets)
    weight = next(p for p in segmenter.network.parameters() if p.dim() == 4 and p.shape[1] > 1 and p.shape[-1] > 1)
    assert weight.is_contiguous(memory_format=torch.channels_last) == native
    probabilities = segmenter.predict(images)
    assert probabilities.dtype == np.float32
    predicted = probabilities > 0.5
    assert dice(predicted, targets) > 0.8


@pytest.mark.parametrize("on", [False, True])
def test_renormalise_option_normalises_every_training_batch_only_when_set(monkeypatch, on):
    import wsseg_unet.segmenter as module

    seen = []

    def spy(batch, channels):
        seen.append(tuple(batch.shape))
        return batch

    monkeypatch.setattr(module, "renormalise", spy)
    images = np.full((4, 1, 16, 16), 0.1, np.float32)
    UNetSegmenter({"epochs": 2, "base_channels": 4, "depth": 2, "batch_size": 2, "renormalise": on}, seed=0).fit(
        images, np.zeros((4, 16, 16), np.float32)
    )
    assert seen == ([(2, 2, 16, 16)] * 4 if on else [])


def ring_with_scar() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A 32x32 image: a dark ring (0.2) around a bright cavity (0.8), one bright sector of the ring
    (0.9, "scar") and one sector just below halfway to the cavity (0.45); the ring, and the scar."""
    yy, xx = np.mgrid[:32, :32] - 15.5
    radius = np.hypot(yy, xx)
    wall, cavity = (radius >= 6) & (radius < 10), radius < 6
    image = np.where(cavity, 0.8, 0.1).astype(np.float32)
    image[wall] = 0.2
    scar, dim = wall & (xx > 4), wall & (xx < -4)
    image[scar], image[dim] = 0.9, 0.45
    return image, wall, scar


def test_bright_wall_is_the_wall_brighter_than_halfway_to_what_it_encloses():
    image, wall, scar = ring_with_scar()
    open_wall = wall & (np.mgrid[:32, :32][0] > 16)  # a half ring encloses nothing
    walls = torch.tensor(np.stack([wall, open_wall]), dtype=torch.float32)
    found = bright_wall(torch.tensor(np.stack([image, image])), walls)
    np.testing.assert_array_equal(found[0].numpy(), scar)
    assert not found[1].any()


@pytest.mark.parametrize("weight", [0.0, 4.0])
def test_bright_wall_weight_weights_the_cross_entropy_of_every_batch_only_when_set(monkeypatch, weight):
    import wsseg_unet.segmenter as module

    seen = []

    def spy(images, walls):
        seen.append((tuple(images.shape), tuple(walls.shape)))
        return bright_wall(images, walls)

    monkeypatch.setattr(module, "bright_wall", spy)
    image, wall, _ = ring_with_scar()
    config = {"epochs": 2, "base_channels": 4, "depth": 2, "batch_size": 2, "bce_weight": 1}
    config["bright_wall_weight"] = weight
    UNetSegmenter(config, seed=0).fit(np.tile(image, (4, 1, 1, 1)), np.tile(wall, (4, 1, 1)).astype(np.float32))
    assert seen == ([((2, 32, 32), (2, 32, 32))] * 4 if weight else [])


def test_bright_wall_weight_without_cross_entropy_is_refused():
    with pytest.raises(ValidationError, match="set bce_weight"):
        UNetSegmenter({"bright_wall_weight": 3})
