"""Tests of the built-in ``drn-attention`` CAM generator plugin (plugins/drn-attention)."""

from __future__ import annotations

import io
from importlib.metadata import entry_points

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from pydantic import ValidationError
from scipy.special import logit
from torch import nn

from wsseg.interfaces import CAMGenerator, WeakSet
from wsseg.metrics import auroc
from wsseg_drn_attention import (
    CAMNet,
    DRNAttentionCAM,
    DRNAttentionConfig,
    MyocardiumRestrictedPool,
    NonLocalAttention,
    drn_d_22,
    myocardium_mask,
    myocardium_restricted_pool,
    non_local_attention,
    restricted_average,
)

TINY = (4, 4, 8, 8, 8, 8, 8, 8)


def tiny_config(**overrides) -> dict:
    cfg = dict(channels=TINY, attention_reduction=2, epochs=1, batch_size=8, stack_batch_size=2)
    cfg.update(overrides)
    return cfg


def ring(
    size: int = 32, r_in: float = 5.0, r_out: float = 10.0, centre: tuple[float, float] | None = None
) -> np.ndarray:
    cy, cx = centre if centre is not None else ((size - 1) / 2, (size - 1) / 2)
    yy, xx = np.mgrid[:size, :size]
    r = np.hypot(yy - cy, xx - cx)
    return ((r >= r_in) & (r < r_out)).astype(np.float32)


def blob_set(
    n: int, size: int = 32, seed: int = 0, depth: int | list[int] = 1, blobs: np.ndarray | None = None
) -> WeakSet:
    """Tiny separable problem: dark ring myocardium around a bright pool; positives hold a bright blob in the ring.

    ``blobs`` (one bool per slice) says which slices get a blob; default every other slice. Labels are
    the blobs, per slice; stacks are ``depth`` slices each (or the listed depths).
    """
    rng = np.random.default_rng(seed)
    blobs = np.arange(n) % 2 == 1 if blobs is None else np.asarray(blobs, bool)
    myo = ring(size)
    yy, xx = np.mgrid[:size, :size]
    c = (size - 1) / 2
    images = []
    for i in range(n):
        img = np.full((size, size), 0.3, np.float32)
        img[np.hypot(yy - c, xx - c) < 5] = 0.8
        img[myo > 0] = 0.1
        if blobs[i]:
            angle = rng.uniform(0, 2 * np.pi)
            by, bx = c + 7.5 * np.sin(angle), c + 7.5 * np.cos(angle)
            img[(np.hypot(yy - by, xx - bx) < 2.5) & (myo > 0)] = 0.9
        img += rng.normal(0, 0.02, img.shape).astype(np.float32)
        images.append(np.clip(img, 0, 1))
    depths = [depth] * -(-n // depth) if isinstance(depth, int) else depth
    stack_ids = np.repeat(np.arange(len(depths)), depths)[:n]
    return WeakSet(np.stack(images), np.repeat(myo[None], n, 0), stack_ids, blobs.astype(np.int64))


def stack_labels(data: WeakSet) -> WeakSet:
    """Replace each slice's label by its stack's label (max over the stack)."""
    labels = data.labels.copy()
    for idx in data.stacks():
        labels[idx] = labels[idx].max()
    return WeakSet(data.images, data.myocardium, data.stack_ids, labels)


# ---------------------------------------------------------------------------------------- backbone
@pytest.mark.parametrize("size", [(32, 32), (16, 48), (64, 20)])
def test_backbone_output_is_quarter_of_input(size):
    net = drn_d_22(2, TINY).eval()
    out = net(torch.rand(3, 2, *size))
    assert out.shape == (3, TINY[-1], size[0] // 4, size[1] // 4)


def test_backbone_layout_matches_drn_d_22():
    net = drn_d_22()  # reference channels
    assert net.channels == (16, 32, 64, 128, 128, 128, 128, 128)
    for i in (3, 4, 5, 6):
        assert len(getattr(net, f"layer{i}")) == 2  # two BasicBlocks each
    dil = {i: getattr(net, f"layer{i}")[1].conv1.dilation[0] for i in (3, 4, 5, 6)}
    assert dil == {3: 1, 4: 1, 5: 2, 6: 4}
    assert net.layer7[0].dilation == (2, 2) and net.layer8[0].dilation == (1, 1)
    assert net.layer4[0].conv1.stride == (1, 1)  # the stride change of the paper
    assert not any(isinstance(m, nn.Conv2d) and m.in_channels == 3 for m in net.modules())
    assert net.layer0[0].in_channels == 2


def test_cam_shape_and_grid_check():
    net = CAMNet(channels=TINY, attention_reduction=2).eval()
    cam = net(torch.rand(5, 2, 32, 24))
    assert cam.shape == (5, 1, 8, 6)
    with pytest.raises(ValueError, match="divisible by 4"):
        net(torch.rand(1, 2, 30, 32))


# --------------------------------------------------------------------------------------- attention
def test_attention_switch_changes_the_module():
    on = CAMNet(channels=TINY, attention=True, attention_reduction=2)
    off = CAMNet(channels=TINY, attention=False)
    assert isinstance(on.attention, NonLocalAttention)
    assert isinstance(off.attention, nn.Identity)
    n_on = sum(p.numel() for p in on.parameters())
    n_off = sum(p.numel() for p in off.parameters())
    c, inner = TINY[-1], TINY[-1] // 2
    assert n_on - n_off == 2 * (c * inner + inner) + (c * c + c)  # query, key, value 1x1 convs


def test_attention_matches_definition_and_gates_input():
    torch.manual_seed(0)
    block = NonLocalAttention(4, reduction=2).eval()
    x = torch.randn(2, 4, 3, 5)
    out = block(x)
    q, k, v = block.query(x), block.key(x), block.value(x)
    for n in range(2):  # explicit double loop over query/key positions
        qn, kn, vn = q[n].flatten(1), k[n].flatten(1), v[n].flatten(1)
        weights = torch.softmax(qn.T @ kn, dim=1)  # (positions, positions)
        attended = (vn @ weights.T).view(4, 3, 5)
        torch.testing.assert_close(out[n], x[n] * attended)
    zero = x.clone()
    zero[:, :, 0, 0] = 0
    assert torch.all(block(zero)[:, :, 0, 0] == 0)  # multiplied with the input feature map


def test_attention_is_per_image():
    torch.manual_seed(0)
    block = NonLocalAttention(8, reduction=4)
    x = torch.randn(3, 8, 4, 4)
    y = x.clone()
    y[1] = torch.randn(8, 4, 4) * 10
    a, b = block(x), block(y)
    torch.testing.assert_close(a[0], b[0], rtol=0, atol=1e-6)
    torch.testing.assert_close(a[2], b[2], rtol=0, atol=1e-6)
    assert not torch.allclose(a[1], b[1])
    q = torch.randn(2, 2, 2, 2)
    assert non_local_attention(torch.ones(2, 3, 2, 2), q, q, torch.ones(2, 3, 2, 2)).allclose(torch.ones(2, 3, 2, 2))


# ----------------------------------------------------------------------------------------- pooling
def test_pooling_ignores_cam_outside_mask():
    torch.manual_seed(0)
    myo = torch.from_numpy(ring(32))[None, None].repeat(2, 1, 1, 1)
    cam = torch.randn(2, 1, 8, 8)
    mask = myocardium_mask(myo, (8, 8))
    assert 0 < mask.sum() < mask.numel()
    for divisor in ("all", "myocardium"):
        logits, restricted = myocardium_restricted_pool(cam, myo, divisor=divisor)
        for outside in (1e30, -1e30, float("inf"), float("nan")):
            crazy = torch.where(mask > 0, cam, torch.full_like(cam, outside))
            logits2, restricted2 = myocardium_restricted_pool(crazy, myo, divisor=divisor)
            assert torch.equal(logits, logits2)
            assert torch.equal(restricted, restricted2)
        inside = cam + 5 * mask  # values inside do matter
        assert not torch.allclose(myocardium_restricted_pool(inside, myo, divisor=divisor)[0], logits)


def test_pooling_divisor_on_crafted_input():
    myo = torch.zeros(1, 1, 16, 16)
    myo[..., :8, :8] = 1.0  # exactly the 2x2 top-left cells of the 4x4 CAM grid
    cam = torch.full((1, 1, 4, 4), 3.0)
    mask = myocardium_mask(myo, (4, 4), threshold=0.4, dilation=1)
    assert mask.sum() == 4
    all_pixels = myocardium_restricted_pool(cam, myo, dilation=1, divisor="all")[0]
    myo_area = myocardium_restricted_pool(cam, myo, dilation=1, divisor="myocardium")[0]
    torch.testing.assert_close(all_pixels, torch.tensor([3.0 * 4 / 16]))
    torch.testing.assert_close(myo_area, torch.tensor([3.0]))
    empty = myocardium_restricted_pool(cam, torch.zeros_like(myo), divisor="myocardium")[0]
    assert torch.equal(empty, torch.zeros(1))  # empty mask: logit 0, not NaN


def test_mask_dilation_threshold_and_downsampling():
    myo = torch.zeros(1, 8, 8)
    myo[0, 5, 5] = 1.0
    assert myocardium_mask(myo, (8, 8), dilation=1).sum() == 1
    dilated = myocardium_mask(myo, (8, 8), dilation=3)
    assert dilated.sum() == 9 and dilated[0, 0, 4:7, 4:7].all()
    half = torch.full((1, 8, 8), 0.5)
    assert myocardium_mask(half, (2, 2), threshold=0.4).all()
    assert not myocardium_mask(half, (2, 2), threshold=0.6).any()
    pool = MyocardiumRestrictedPool(0.4, 3, "all")
    assert torch.equal(pool.mask(myo, (8, 8)), dilated)
    with pytest.raises(ValueError):
        MyocardiumRestrictedPool(divisor="mean")  # type: ignore[arg-type]


def test_stack_pooling_one_logit_per_stack_with_variable_depths():
    torch.manual_seed(0)
    depths = [1, 3, 2]
    groups = torch.repeat_interleave(torch.arange(3), torch.tensor(depths))
    cam = torch.randn(6, 1, 4, 4)
    mask = (torch.rand(6, 1, 4, 4) > 0.5).float()
    for divisor in ("all", "myocardium"):
        logits = restricted_average(cam, mask, divisor, groups, 3)
        assert logits.shape == (3,)
        start = 0
        for s, d in enumerate(depths):
            c, m = cam[start : start + d], mask[start : start + d]
            expected = (c * m).sum() / (m.numel() if divisor == "all" else m.sum().clamp(min=1))
            torch.testing.assert_close(logits[s], expected)
            start += d
    net = CAMNet(channels=TINY, attention_reduction=2).eval()
    x = torch.rand(6, 2, 16, 16)
    with torch.no_grad():
        stack = net.stack_logits(x, groups, 3)
        per_slice = net.slice_logits(x)
    assert stack.shape == (3,) and per_slice.shape == (6,)
    torch.testing.assert_close(stack[0], per_slice[0])  # a one-slice stack is just that slice
    torch.testing.assert_close(stack[1], per_slice[1:4].mean())  # "all": equal-size slices average


# ----------------------------------------------------------------------------------- stack = 3x3x1
def test_folded_conv_equals_conv3d_with_1x3x3_kernel():
    torch.manual_seed(0)
    conv2d = nn.Conv2d(3, 5, 3, padding=2, dilation=2, bias=False)
    conv3d = nn.Conv3d(3, 5, (1, 3, 3), padding=(0, 2, 2), dilation=(1, 2, 2), bias=False)
    conv3d.weight.data.copy_(conv2d.weight.data.unsqueeze(2))
    vol = torch.randn(2, 3, 4, 8, 8)  # (B, C, D, H, W)
    folded = vol.permute(0, 2, 1, 3, 4).reshape(8, 3, 8, 8)
    out2d = conv2d(folded).reshape(2, 4, 5, 8, 8).permute(0, 2, 1, 3, 4)
    torch.testing.assert_close(out2d, conv3d(vol), rtol=1e-5, atol=1e-5)
    bn2d, bn3d = nn.BatchNorm2d(3), nn.BatchNorm3d(3)  # train-mode statistics agree too
    torch.testing.assert_close(bn2d(folded).reshape(2, 4, 3, 8, 8).permute(0, 2, 1, 3, 4), bn3d(vol))


def test_stack_model_does_not_mix_slices_in_eval():
    data = blob_set(8, size=16, depth=[3, 5])
    gen = DRNAttentionCAM(tiny_config(), seed=0)
    gen.fit(data, "stack")
    before = gen.generate(data).cams
    images = data.images.copy()
    images[4] = np.random.default_rng(1).random(images[4].shape, dtype=np.float32)
    myo = data.myocardium.copy()
    myo[4] = 1.0
    after = gen.generate(WeakSet(images, myo, data.stack_ids, data.labels)).cams
    others = np.arange(8) != 4
    np.testing.assert_allclose(after[others], before[others], rtol=0, atol=1e-6)
    assert not np.allclose(after[4], before[4])
    net = gen.model.eval()  # the raw network as well
    x = torch.from_numpy(np.stack([data.images, data.myocardium], 1))
    y = x.clone()
    y[2] = torch.rand_like(y[2])
    with torch.no_grad():
        torch.testing.assert_close(net(x)[[0, 1, 3]], net(y)[[0, 1, 3]], rtol=0, atol=1e-6)


# ------------------------------------------------------------------------------------- generator
def test_generate_outputs_restricted_cams_and_scores():
    data = blob_set(6, size=16, depth=[2, 1, 3])
    data = WeakSet(data.images, data.myocardium, np.array([7, 7, 3, 5, 5, 5]), data.labels)
    for level in ("slice", "stack"):
        gen = DRNAttentionCAM(tiny_config(), seed=0)
        gen.fit(data, level)
        out = gen.generate(data)
        assert out.cams.shape == (6, 4, 4) and out.cams.dtype == np.float32
        assert out.slice_scores.shape == (6,) and out.stack_scores.shape == (3,)
        mask = myocardium_mask(torch.from_numpy(data.myocardium), (4, 4))[:, 0].numpy()
        assert np.all(out.cams[mask == 0] == 0)  # the restricted CAM
        logits = out.cams.reshape(6, -1).mean(1)  # divisor "all": mean of the restricted CAM
        np.testing.assert_allclose(out.slice_scores, 1 / (1 + np.exp(-logits)), rtol=1e-5, atol=1e-6)
        if level == "slice":
            expected = [out.slice_scores[i].max() for i in data.stacks()]
        else:
            expected = [1 / (1 + np.exp(-out.cams[i].mean())) for i in data.stacks()]
        np.testing.assert_allclose(out.stack_scores, expected, rtol=1e-5, atol=1e-6)


def test_bad_grid_and_missing_training_are_clear_errors():
    data = blob_set(4, size=18)
    gen = DRNAttentionCAM(tiny_config())
    with pytest.raises(ValueError, match="divisible by 4"):
        gen.fit(data, "slice")
    with pytest.raises(RuntimeError, match="fit or load_state_dict"):
        gen.generate(blob_set(2, size=16))
    with pytest.raises(ValueError, match="level"):
        gen.fit(blob_set(2, size=16), "pixel")  # type: ignore[arg-type]


def test_state_dict_round_trip_gives_identical_outputs():
    data = blob_set(6, size=16, depth=3)
    for level in ("slice", "stack"):
        cfg = tiny_config(attention=True)
        gen = DRNAttentionCAM(cfg, seed=3)
        gen.fit(data, level)
        buffer = io.BytesIO()
        torch.save(gen.state_dict(), buffer)
        buffer.seek(0)
        state = torch.load(buffer, weights_only=True)
        clone = DRNAttentionCAM(cfg, seed=99)
        clone.load_state_dict(state)
        assert clone.level == level
        a, b = gen.generate(data), clone.generate(data)
        for field in ("cams", "slice_scores", "stack_scores"):
            np.testing.assert_array_equal(getattr(a, field), getattr(b, field))
    with pytest.raises(ValueError, match="architecture"):
        DRNAttentionCAM(tiny_config(attention=False)).load_state_dict(state)


def test_an_ensemble_pools_the_mean_cam_of_its_members_and_survives_a_state_round_trip():
    data = blob_set(6, size=16, depth=3)
    for level in ("slice", "stack"):
        ensemble = DRNAttentionCAM(tiny_config(ensemble=2), seed=0)
        ensemble.fit(data, level)
        single = DRNAttentionCAM(tiny_config(), seed=0)
        single.fit(data, level)
        state = ensemble.state_dict()
        first, second = DRNAttentionCAM(tiny_config()), DRNAttentionCAM(tiny_config())
        first.load_state_dict({**state, "members": []})
        second.load_state_dict({**state, "model": state["members"][0], "members": []})
        a, b, both = first.generate(data), second.generate(data), ensemble.generate(data)
        np.testing.assert_array_equal(a.cams, single.generate(data).cams)  # the first member: seed 0
        assert not np.allclose(b.cams, a.cams)  # the second: its own seed
        np.testing.assert_allclose(both.cams, (a.cams + b.cams) / 2, rtol=1e-5, atol=1e-6)
        scores = [logit(out.slice_scores.astype(np.float64)) for out in (a, b, both)]
        np.testing.assert_allclose(scores[2], (scores[0] + scores[1]) / 2, rtol=1e-4, atol=1e-5)  # pooling is linear
        clone = DRNAttentionCAM(tiny_config(ensemble=2))
        clone.load_state_dict(state)
        np.testing.assert_array_equal(clone.generate(data).cams, both.cams)


def test_fit_is_seeded():
    data = blob_set(6, size=16)
    a, b, c = (DRNAttentionCAM(tiny_config(), seed=s) for s in (1, 1, 2))
    for gen in (a, b, c):
        gen.fit(data, "slice")
    sa, sb, sc = a.state_dict()["model"], b.state_dict()["model"], c.state_dict()["model"]
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert not all(torch.equal(sa[k], sc[k]) for k in sa)


def test_short_fit_learns_separable_problem():
    train = blob_set(40, size=32, seed=0)
    val = blob_set(20, size=32, seed=1)
    gen = DRNAttentionCAM(tiny_config(epochs=15, batch_size=8, lr=1e-3, augment=True), seed=0)
    gen.fit(train, "slice", val=val)
    assert [set(h) for h in gen.history] == [{"loss", "val_auroc"}] * 15
    assert gen.history[-1]["loss"] < gen.history[0]["loss"]
    assert auroc(gen.generate(train).slice_scores, train.labels) > 0.9
    assert gen.history[-1]["val_auroc"] > 0.9


@pytest.mark.parametrize("native", [True, False])
def test_mixed_precision_runs_in_bfloat16_only_where_the_device_has_it(monkeypatch, native):
    import wsseg_drn_attention.generator as module

    monkeypatch.setattr(module, "native_bfloat16", lambda device: native)
    train, val = blob_set(40, size=32, seed=0), blob_set(20, size=32, seed=1)
    gen = DRNAttentionCAM(tiny_config(epochs=15, lr=1e-3, mixed_precision=True), seed=0)
    gen.fit(train, "slice", val=val)
    weight = next(p for p in gen.model.parameters() if p.dim() == 4 and p.shape[1] > 1 and p.shape[-1] > 1)
    assert weight.dtype == torch.float32
    assert weight.is_contiguous(memory_format=torch.channels_last) == native
    assert gen.model.bfloat16 == native
    output = gen.generate(val)
    assert output.cams.dtype == np.float32
    assert auroc(output.slice_scores, val.labels) > 0.9


def test_stack_training_on_slices_is_slice_training_on_the_stack_labels():
    data = stack_labels(blob_set(6, size=16, depth=3))
    on_slices = DRNAttentionCAM(tiny_config(stack_training="slices"), seed=0)
    on_slices.fit(data, "stack")
    reference = DRNAttentionCAM(tiny_config(), seed=0)
    reference.fit(data, "slice")
    weights, expected = on_slices.state_dict()["model"], reference.state_dict()["model"]
    assert on_slices.level == "stack" and all(torch.equal(weights[k], expected[k]) for k in weights)
    out = on_slices.generate(data)
    np.testing.assert_allclose(out.stack_scores, [out.slice_scores[i].max() for i in data.stacks()], rtol=1e-6)


@pytest.mark.parametrize("stack_training", ["stack", "mil"])
def test_stack_level_fit_learns_with_weighted_bce(stack_training):
    rng = np.random.default_rng(5)
    depth, n_stacks = 3, 18
    positive = np.arange(n_stacks) % 3 == 0  # 6 positive stacks of 18: pos_weight 2
    blobs = np.zeros(n_stacks * depth, bool)
    for s in np.flatnonzero(positive):  # scar on one to three slices of a positive stack
        blobs[s * depth + rng.choice(depth, size=rng.integers(1, depth + 1), replace=False)] = True
    train = stack_labels(blob_set(n_stacks * depth, size=32, seed=4, depth=depth, blobs=blobs))
    gen = DRNAttentionCAM(tiny_config(epochs=20, lr=1e-3, stack_batch_size=2, stack_training=stack_training), seed=0)
    gen.fit(train, "stack")
    out = gen.generate(train)
    assert out.stack_scores.shape == (n_stacks,)
    assert auroc(out.stack_scores, positive) > 0.9
    if stack_training == "mil":  # a stack is scored by its highest slice
        np.testing.assert_allclose(out.stack_scores, [out.slice_scores[i].max() for i in train.stacks()], rtol=1e-6)


# -------------------------------------------------------------------------------- config / helpers
def test_config_validation():
    cfg = DRNAttentionConfig()
    assert len(cfg.channels) == 8 and cfg.pool_divisor == "all" and cfg.myo_threshold == 0.4 and cfg.myo_dilation == 3
    DRNAttentionConfig.model_validate({"channels": [1] * 8})  # lists from YAML are fine
    for bad in (
        {"channels": [8] * 7},
        {"channels": [0] * 8},
        {"unknown": 1},
        {"pool_divisor": "mean"},
        {"myo_dilation": 2},
        {"myo_threshold": 1.5},
        {"lr": 0},
        {"epochs": 0},
        {"stack_batch_size": 0},
    ):
        with pytest.raises(ValidationError):
            DRNAttentionConfig.model_validate(bad)
    assert isinstance(DRNAttentionCAM({"epochs": 2}).config, DRNAttentionConfig)


def test_entry_point_is_registered():
    eps = entry_points(group="wsseg.cam_generators")
    names = {ep.name: ep for ep in eps}
    assert "drn-attention" in names
    cls = names["drn-attention"].load()
    assert cls is DRNAttentionCAM and issubclass(cls, CAMGenerator)
    assert cls.levels == ("slice", "stack")


def test_binary_cross_entropy_weighting_is_negatives_over_positives(monkeypatch):
    seen = {}
    original = F.binary_cross_entropy_with_logits

    def spy(logits, target, *args, **kwargs):
        seen["pos_weight"] = kwargs.get("pos_weight")
        seen["n"] = logits.shape[0]
        return original(logits, target, *args, **kwargs)

    import wsseg_drn_attention.generator as generator

    monkeypatch.setattr(generator.F, "binary_cross_entropy_with_logits", spy)
    data = blob_set(10, size=16, depth=2)  # 5 stacks
    labels = np.repeat([1, 0, 0, 0, 1], 2)
    gen = DRNAttentionCAM(tiny_config(stack_batch_size=2), seed=0)
    gen.fit(WeakSet(data.images, data.myocardium, data.stack_ids, labels), "stack")
    assert float(seen["pos_weight"]) == pytest.approx(3 / 2)
    assert seen["n"] == 1  # last batch: the fifth stack alone -> one logit
