"""The conformance kit (wsseg.testing): the built-ins pass it, and it names what a broken plugin gets wrong."""

import numpy as np
import pytest

from wsseg.interfaces import PluginConfig, PseudoLabeler
from wsseg.registry import get_plugin
from wsseg.testing import assert_conforms, check_plugin

TINY = {
    "drn-attention": {"epochs": 1, "channels": [4, 4, 8, 8, 8, 8, 8, 8]},
    "unet": {"epochs": 1, "base_channels": 4, "depth": 3},
    "otsu-crf": {},
    "cam-threshold": {"fraction": 0.3},
}


@pytest.mark.parametrize(
    "kind, name",
    [
        ("cam_generator", "drn-attention"),
        ("segmenter", "unet"),
        ("pseudo_labeler", "otsu-crf"),
        ("pseudo_labeler", "cam-threshold"),
    ],
)
def test_the_installed_plugins_conform(kind, name):
    assert_conforms(get_plugin(kind, name), config=TINY[name])


class NoDefaultConfig(PluginConfig):
    fraction: float


class Sloppy(PseudoLabeler):
    """Everything wrong a pseudo-labeler can get wrong cheaply."""

    api_version = 1
    Config = NoDefaultConfig

    def label(self, cam, image, myocardium, weak_label):
        image *= 0.5  # modifies its input
        return np.full(cam.shape, 2.0)  # wrong grid, not binary, never empty


def test_a_broken_plugin_fails_the_checks_it_breaks_with_a_reason():
    checks = {c.name: c for c in check_plugin(Sloppy, {"fraction": 0.5})}
    failed = {name for name, c in checks.items() if not c.passed}
    assert failed == {
        "Config: pydantic model, defaults for every field, unknown keys refused",
        "label(): bool (H, W) mask on the image grid, square or not",
        "negative weak label gives an empty mask",
        "a clear CAM peak gives a mask on the lesion",
        "a CAM without positive values is handled",
        "inputs are not modified",
    }
    assert checks["Config: pydantic model, defaults for every field, unknown keys refused"].detail.endswith(
        "every field: fraction"
    )
    assert (
        "mask shape (8, 8) for an image of (32, 32)"
        in checks["label(): bool (H, W) mask on the image grid, square or not"].detail
    )
    with pytest.raises(AssertionError, match="Sloppy fails 6 conformance check"):
        assert_conforms(Sloppy, {"fraction": 0.5})


def test_an_invalid_config_skips_the_checks_that_need_an_instance():
    checks = check_plugin(get_plugin("pseudo_labeler", "otsu-crf"), {"otsu_classes": 9})
    assert not checks[2].passed and checks[2].detail.startswith("otsu_classes: Input should be less than or equal to 5")
    assert all(not c.passed and c.detail.startswith("skipped") for c in checks[3:])


def test_a_class_that_is_no_plugin_fails_one_check():
    (check,) = check_plugin(dict)
    assert not check.passed and "derives from none" in check.detail


def test_a_plugin_without_this_api_version_fails_that_check():
    class Unversioned(Sloppy):
        api_version = None

    checks = {c.name: c for c in check_plugin(Unversioned, {"fraction": 0.5})}
    assert not checks["derives from the interface, nothing abstract left"].passed
    assert (
        checks["derives from the interface, nothing abstract left"].detail
        == "api_version is None; set it to 1, the plugin API of this wsseg"
    )
