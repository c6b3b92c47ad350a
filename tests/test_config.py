import re

import pytest

from wsseg.config import ConfigError, Params, load_params, validate_params
from wsseg.pipeline import lineage


def test_defaults_are_valid_and_name_the_builtin_plugins():
    params = validate_params({})
    assert (params.myocardium.plugin, params.cam.plugin, params.pseudo_label.plugin) == (
        "unet",
        "drn-attention",
        "otsu-crf",
    )


def test_params_yaml_of_the_repository_is_valid():
    assert isinstance(load_params("params.yaml"), Params)


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"seed": "zero"}, "seed: Input should be a valid integer"),
        ({"data": {"roi_size": 50}}, "data.roi_size: must be a multiple of 16"),
        ({"cam": {"levels": ["pixel"]}}, "cam.levels.0"),
        ({"typo_section": 1}, "typo_section: Extra inputs are not permitted"),
        ({"cam": {"levels": ["slice"]}}, "'stack' needs cam.levels to include it"),
        (
            {
                "cam": {"levels": ["stack"]},
                "segmentation": {"supervisions": ["stack"], "additions": {"slice_level_labeler": True}},
            },
            "slice_level_labeler needs cam.levels to include 'slice'",
        ),
        (
            {"cam": {"plugin": "no-such-cam"}},
            "cam.plugin: no cam generator plugin named 'no-such-cam' (available: drn-attention",
        ),
        ({"myocardium": {"config": {"epochs": "many"}}}, "myocardium.config.epochs: Input should be a valid integer"),
        (
            {"segmentation": {"config": {"unknown_key": 1}}},
            "segmentation.config.unknown_key: Extra inputs are not permitted",
        ),
    ],
)
def test_each_error_is_one_line_naming_the_key(raw, message):
    with pytest.raises(ConfigError) as error:
        validate_params(raw)
    assert message in str(error.value)
    assert "\n" not in str(error.value)


def test_yaml_that_is_not_a_mapping_is_refused(tmp_path):
    (tmp_path / "p.yaml").write_text("- just\n- a list\n")
    with pytest.raises(ConfigError, match="mapping"):
        load_params(tmp_path / "p.yaml")


def test_plugin_config_is_validated_into_the_plugins_model():
    params = validate_params({"segmentation": {"config": {"epochs": 3}}})
    assert params.plugin_config("segmentation").epochs == 3


def test_test_time_flips_change_the_lineage_of_what_they_predict():
    base = validate_params({})
    myo = validate_params({"myocardium": {"additions": {"flips": True}}})
    seg = validate_params({"segmentation": {"additions": {"flips": True}}})
    assert lineage(myo, "myocardium_model") == lineage(base, "myocardium_model")  # the model is not retrained
    assert lineage(myo, "myocardium") != lineage(base, "myocardium")
    assert lineage(seg, "fibrosis_model", "slice") == lineage(base, "fibrosis_model", "slice")
    assert lineage(seg, "predictions", "slice") != lineage(base, "predictions", "slice")


@pytest.mark.parametrize(
    ("section", "model", "changed", "kept", "key"),
    [
        ("segmentation", "fibrosis_model", "pixel", "slice", "epochs"),
        ("cam", "cam_model", "stack", "slice", "epochs"),
        ("pseudo_label", "pseudo_labels", "slice", "stack", "otsu_classes"),
    ],
)
def test_overrides_change_one_level_only(section, model, changed, kept, key):
    base, other = validate_params({}), validate_params({section: {"overrides": {changed: {key: 4}}}})
    assert getattr(other.plugin_config(section, changed), key) == 4
    assert other.plugin_config(section, kept) == base.plugin_config(section, kept)
    assert lineage(other, model, changed) != lineage(base, model, changed)
    assert lineage(other, model, kept) == lineage(base, model, kept)
    with pytest.raises(ConfigError, match=f"{section}.overrides.{changed}.{key}: Input should be a valid integer"):
        validate_params({section: {"overrides": {changed: {key: "many"}}}})


def test_the_slice_level_labeler_changes_the_lineage_of_slice_level_predictions_only():
    base, labeller = (
        validate_params({}),
        validate_params({"segmentation": {"additions": {"slice_level_labeler": True}}}),
    )
    assert lineage(labeller, "predictions", "slice") != lineage(base, "predictions", "slice")
    for supervision in ("pixel", "stack"):
        assert lineage(labeller, "predictions", supervision) == lineage(base, "predictions", supervision)


def test_a_profile_lists_only_what_differs_from_the_file_it_extends(tmp_path):
    (tmp_path / "base.yaml").write_text(
        "seed: 3\nmyocardium: {config: {epochs: 7, depth: 3}}\n"
        "cam: {levels: [slice]}\nsegmentation: {supervisions: [pixel, slice]}\n"
    )
    (tmp_path / "profiles").mkdir()
    (tmp_path / "profiles" / "p.yaml").write_text("extends: ../base.yaml\nmyocardium: {config: {depth: 5}}\n")
    params = load_params(tmp_path / "profiles" / "p.yaml")
    assert (params.seed, params.cam.levels) == (3, ["slice"])
    assert (params.plugin_config("myocardium").epochs, params.plugin_config("myocardium").depth) == (7, 5)
    (tmp_path / "other.yaml").write_text("extends: [base.yaml]\nmyocardium: {plugin: unet, config: {}}\n")
    assert load_params(tmp_path / "other.yaml").plugin_config("myocardium").depth == 3  # same plugin: configs merge


def test_the_benchmark_profile_extends_the_repository_params():
    profile, base = load_params("benchmarks/emidec/params.yaml"), load_params("params.yaml")
    assert profile.data.source != base.data.source and profile.pseudo_label.overrides != base.pseudo_label.overrides
    assert profile.pseudo_label.config == base.pseudo_label.config  # the section is merged, not replaced


@pytest.mark.parametrize(
    ("files", "message"),
    [
        ({"a.yaml": "extends: a.yaml\n"}, "extends 'a.yaml', which extends it in turn"),
        ({"a.yaml": "extends: b.yaml\n", "b.yaml": "extends: a.yaml\n"}, "which extends it in turn"),
        ({"a.yaml": "extends: gone.yaml\n"}, "extends 'gone.yaml', which does not exist"),
        ({"a.yaml": "extends: {x: 1}\n"}, "extends: expected a file name or a list of file names"),
        ({"a.yaml": "extends: b.yaml\n", "b.yaml": "seed: [\n"}, "b.yaml:2:1: not valid YAML"),
    ],
)
def test_a_broken_extends_chain_is_one_line_naming_the_file(tmp_path, files, message):
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    with pytest.raises(ConfigError, match=re.escape(message)):
        load_params(tmp_path / "a.yaml")


def test_a_profile_that_changes_a_plugin_does_not_inherit_the_other_plugins_config(tmp_path):
    (tmp_path / "base.yaml").write_text("pseudo_label: {plugin: otsu-crf, config: {otsu: false}}\n")
    (tmp_path / "p.yaml").write_text("extends: base.yaml\npseudo_label: {plugin: cam-threshold}\n")
    assert load_params(tmp_path / "p.yaml").pseudo_label.config == {}


def test_an_addition_counts_in_a_lineage_only_when_it_is_on(monkeypatch):
    import dataclasses

    from wsseg import pipeline

    params = validate_params({})
    before = lineage(params, "myocardium_model")
    stage = pipeline.producer("myocardium_model")  # a release that adds the option flips to the stage:
    added = dataclasses.replace(stage, params=(*stage.params, "myocardium.additions.flips"))
    monkeypatch.setitem(pipeline._BY_ARTEFACT, "myocardium_model", added)
    assert lineage(params, "myocardium_model") == before
    flips = lineage(validate_params({"myocardium": {"additions": {"flips": True}}}), "myocardium_model")
    cavity = lineage(validate_params({"myocardium": {"additions": {"cavity_class": True}}}), "myocardium_model")
    assert len({before, flips, cavity}) == 3


def test_bfloat16_sections_are_those_whose_config_or_an_override_asks_for_it():
    raw = {
        "myocardium": {"config": {"mixed_precision": True}},
        "segmentation": {"overrides": {"stack": {"mixed_precision": True}}},
        "cam": {"config": {"mixed_precision": False}},
    }
    assert validate_params(raw).bfloat16_sections() == ["myocardium", "segmentation"]
    assert validate_params({}).bfloat16_sections() == []
