import sys

import pytest

from wsseg import registry
from wsseg.interfaces import PseudoLabeler
from wsseg.registry import PluginError, get_plugin, list_plugins


def install_fake_distribution(root, name: str, entry_points: str, module: str = "", module_name: str = "") -> None:
    """A minimal installed distribution (dist-info with entry points) on sys.path, as pip would leave it."""
    info = root / f"{name.replace('-', '_')}-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(entry_points)
    if module:
        (root / f"{module_name}.py").write_text(module)


@pytest.fixture
def site(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(tmp_path))
    registry._load.cache_clear()
    yield tmp_path
    registry._load.cache_clear()
    for name in [m for m in sys.modules if m.startswith("fake_")]:
        del sys.modules[name]


def test_builtins_are_listed_with_their_distribution():
    rows = {(p.name, p.kind): p for p in list_plugins()}
    assert rows["drn-attention", "cam_generator"].distribution == "wsseg-drn-attention"
    assert rows["otsu-crf", "pseudo_labeler"].status == "ok"
    assert rows["unet", "segmenter"].version == "0.1.0"


def test_a_broken_plugin_shows_its_error_and_breaks_nothing_else(site):
    install_fake_distribution(site, "fake-broken", "[wsseg.pseudo_labelers]\nbroken = fake_missing_module:Thing\n")
    rows = {p.name: p for p in list_plugins()}
    assert rows["broken"].status == "error" and "fake_missing_module" in rows["broken"].error
    assert rows["otsu-crf"].status == "ok"
    with pytest.raises(PluginError, match="failed to import"):
        get_plugin("pseudo_labeler", "broken")


def test_a_class_of_the_wrong_kind_is_refused(site):
    install_fake_distribution(
        site, "fake-wrong", "[wsseg.segmenters]\nwrong = fake_wrong:Wrong\n", "class Wrong:\n    pass\n", "fake_wrong"
    )
    with pytest.raises(PluginError, match="not a subclass of wsseg.Segmenter"):
        get_plugin("segmenter", "wrong")


def test_two_distributions_with_one_name_are_an_error_naming_both(site):
    install_fake_distribution(site, "fake-one", "[wsseg.segmenters]\nunet = fake_one:X\n")
    with pytest.raises(PluginError, match="registered twice.*(wsseg-unet.*fake-one|fake-one.*wsseg-unet)"):
        get_plugin("segmenter", "unet")


def test_unknown_name_lists_the_alternatives():
    with pytest.raises(PluginError, match="available: .*otsu-crf"):
        get_plugin("pseudo_labeler", "nope")


def test_a_third_party_package_is_found_through_its_entry_point():
    cls = get_plugin("pseudo_labeler", "cam-threshold")
    assert issubclass(cls, PseudoLabeler) and cls.__module__ == "wsseg_test_plugin"


@pytest.fixture
def user_config(tmp_path, monkeypatch):
    """An empty user config folder and no disabled plugins in the environment."""
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.delenv(registry.DISABLED_ENV, raising=False)
    return tmp_path / "config"


def test_a_plugin_disabled_in_the_environment_is_listed_but_never_imported(user_config, monkeypatch):
    monkeypatch.setenv(registry.DISABLED_ENV, "cam-threshold, nothing-else")
    rows = {p.name: p for p in list_plugins()}
    assert rows["cam-threshold"].status == "disabled" and rows["otsu-crf"].status == "ok"
    assert "cam-threshold" not in registry.names("pseudo_labeler")
    with pytest.raises(PluginError, match="'cam-threshold' is disabled"):
        get_plugin("pseudo_labeler", "cam-threshold")


def test_disabling_one_distribution_resolves_a_name_clash(site, user_config):
    install_fake_distribution(site, "fake-one", "[wsseg.segmenters]\nunet = fake_one:X\n")
    with pytest.raises(PluginError, match="wsseg plugins disable"):
        get_plugin("segmenter", "unet")
    registry.disable("Fake_One:unet")  # distribution names compare as pip does
    assert get_plugin("segmenter", "unet").__module__ == "wsseg_unet.segmenter"
    assert {(p.distribution, p.status) for p in list_plugins() if p.name == "unet"} == {
        ("fake-one", "disabled"),
        ("wsseg-unet", "ok"),
    }
    registry.enable("Fake_One:unet")
    with pytest.raises(PluginError, match="registered twice"):
        get_plugin("segmenter", "unet")


def test_disable_and_enable_persist_in_the_user_file_and_refuse_unknown_entries(user_config, monkeypatch):
    path = registry.disable("cam-threshold")
    assert path == user_config / "wsseg" / "disabled-plugins.txt" and path.read_text() == "cam-threshold\n"
    assert registry.disabled() == {"cam-threshold"}
    registry.enable("cam-threshold")
    assert registry.disabled() == set()
    with pytest.raises(PluginError, match="no registered plugin matches 'nope'"):
        registry.disable("nope")
    with pytest.raises(PluginError, match="is not disabled"):
        registry.enable("cam-threshold")
    monkeypatch.setenv(registry.DISABLED_ENV, "otsu-crf")
    with pytest.raises(PluginError, match="environment variable"):
        registry.enable("otsu-crf")


LABELER = """
import numpy as np
from wsseg.interfaces import PseudoLabeler

class Labeler(PseudoLabeler):
{version}
    def label(self, cam, image, myocardium, weak_label):
        return np.zeros(image.shape, bool)
"""


@pytest.mark.parametrize(
    ("version", "message"),
    [
        ("    api_version = 99", "written for wsseg plugin API 99; this wsseg has API 1"),
        ("", "declares no api_version"),
    ],
)
def test_a_plugin_written_for_another_api_version_is_refused_with_a_clear_message(site, version, message):
    install_fake_distribution(
        site,
        "fake-old",
        "[wsseg.pseudo_labelers]\nold = fake_old:Labeler\n",
        LABELER.format(version=version),
        "fake_old",
    )
    with pytest.raises(PluginError, match=message):
        get_plugin("pseudo_labeler", "old")
    assert {p.name: p for p in list_plugins()}["old"].status == "error"


def test_a_plugin_of_this_api_version_loads(site):
    install_fake_distribution(
        site,
        "fake-new",
        "[wsseg.pseudo_labelers]\nnew = fake_new:Labeler\n",
        LABELER.format(version="    api_version = 1"),
        "fake_new",
    )
    assert get_plugin("pseudo_labeler", "new").api_version == 1
