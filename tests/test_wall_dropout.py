"""The fibrosis U-Nets' wall channel losing the scar next to the cavity (``wall_scar_dropout``)."""

import numpy as np
import pytest

from tests.conftest import TINY_PARAMS, merge
from wsseg.config import validate_params
from wsseg.errors import ConfigError
from wsseg.stages.fibrosis import drop_scar_from_wall, with_wall_dropout


def ring(size: int = 32, inner: float = 7, outer: float = 12) -> np.ndarray:
    yy, xx = np.mgrid[:size, :size] - size / 2
    r = np.hypot(yy, xx)
    return ((r >= inner) & (r < outer)).astype(np.float32)


def test_only_scar_reachable_from_the_cavity_within_the_depth_leaves_the_wall():
    wall = ring()
    wall[wall > 0] = 0.9  # a soft channel keeps its values where nothing is dropped
    yy, xx = np.mgrid[:32, :32] - 16
    r = np.hypot(yy, xx)
    subendocardial = (wall > 0) & (r < 10) & (xx > 3)  # touches the cavity
    subepicardial = (wall > 0) & (r >= 10) & (xx < -3)  # healthy wall between it and the cavity
    scar = (subendocardial | subepicardial).astype(np.float32)

    shallow = drop_scar_from_wall(wall, scar, 1)
    removed = (wall > 0) & (shallow == 0)
    assert removed.any() and (removed <= subendocardial).all()
    assert (r[removed] < 8.5).all()  # one step from the cavity only
    deep = drop_scar_from_wall(wall, scar, 10)
    assert ((deep == 0) & (wall > 0)).sum() == subendocardial.sum()
    keep = ~subendocardial
    np.testing.assert_array_equal(deep[keep], wall[keep])


def test_a_wall_without_a_cavity_keeps_its_scar():
    wall = np.zeros((16, 16), np.float32)
    wall[4:12, 4:12] = 1  # a solid blob (an apical cap): no cavity to reach the scar from
    scar = np.zeros_like(wall)
    scar[6:10, 6:10] = 1
    np.testing.assert_array_equal(drop_scar_from_wall(wall, scar, 4), wall)


def test_dropout_touches_the_wall_channel_of_the_chosen_share_only():
    wall, scar = ring(), np.zeros((32, 32), np.float32)
    scar[(wall > 0) & (np.mgrid[:32, :32][1] > 20)] = 1
    images = np.random.default_rng(0).random((8, 32, 32)).astype(np.float32)
    inputs = np.stack([images, np.repeat(wall[None], 8, 0)], axis=1)
    targets = np.repeat(scar[None], 8, 0)
    np.testing.assert_array_equal(with_wall_dropout(inputs, targets, 0.0, seed=0), inputs)
    dropped = with_wall_dropout(inputs, targets, 1.0, seed=0)
    np.testing.assert_array_equal(dropped[:, 0], inputs[:, 0])
    assert all((dropped[i, 1] < inputs[i, 1]).any() for i in range(8))
    again = with_wall_dropout(inputs, targets, 0.5, seed=3)
    np.testing.assert_array_equal(with_wall_dropout(inputs, targets, 0.5, seed=3), again)


def test_dropout_on_a_level_without_the_wall_channel_is_refused():
    additions = {"myocardium_channel": ["stack"], "wall_scar_dropout": {"pixel": 0.5, "slice": 0.5}}
    with pytest.raises(ConfigError, match="wall_scar_dropout: 'slice' needs the wall channel"):
        validate_params(merge(TINY_PARAMS, {"segmentation": {"additions": additions}}))
    additions["wall_scar_dropout"] = {"pixel": 0.5, "stack": 0.5}
    validate_params(merge(TINY_PARAMS, {"segmentation": {"additions": additions}}))
