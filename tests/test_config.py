import pytest

from wsseg.config import ConfigError, Params, load_params, validate_params
from wsseg.workspace import lineage


def test_defaults_are_valid_and_name_the_builtin_plugins():
    params = validate_params({})
    assert (params.myocardium.plugin, params.cam.plugin, params.pseudo_label.plugin) == ("unet", "drn-attention", "otsu-crf")


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
            {"cam": {"levels": ["stack"]}, "segmentation": {"supervisions": ["stack"], "slice_level_labeller": True}},
            "slice_level_labeller needs cam.levels to include 'slice'",
        ),
        ({"cam": {"plugin": "no-such-cam"}}, "cam.plugin: no cam generator plugin named 'no-such-cam' (available: drn-attention"),
        ({"myocardium": {"config": {"epochs": "many"}}}, "myocardium.config.epochs: Input should be a valid integer"),
        ({"segmentation": {"config": {"unknown_key": 1}}}, "segmentation.config.unknown_key: Extra inputs are not permitted"),
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
    myo, seg = validate_params({"myocardium": {"flips": True}}), validate_params({"segmentation": {"flips": True}})
    assert lineage(myo, "myocardium_model") == lineage(base, "myocardium_model")  # the model is not retrained
    assert lineage(myo, "myocardium") != lineage(base, "myocardium")
    assert lineage(seg, "fibrosis", "slice") == lineage(base, "fibrosis", "slice")
    assert lineage(seg, "predictions", "slice") != lineage(base, "predictions", "slice")


def test_segmentation_overrides_change_one_supervision_level_only():
    base, longer = validate_params({}), validate_params({"segmentation": {"overrides": {"pixel": {"epochs": 160}}}})
    assert longer.plugin_config("segmentation", "pixel").epochs == 160
    assert longer.plugin_config("segmentation", "slice") == base.plugin_config("segmentation", "slice")
    assert lineage(longer, "fibrosis", "pixel") != lineage(base, "fibrosis", "pixel")
    assert lineage(longer, "fibrosis", "slice") == lineage(base, "fibrosis", "slice")
    with pytest.raises(ConfigError, match="segmentation.overrides.pixel.epochs: Input should be a valid integer"):
        validate_params({"segmentation": {"overrides": {"pixel": {"epochs": "many"}}}})


def test_the_slice_level_labeller_changes_the_lineage_of_slice_level_predictions_only():
    base, labeller = validate_params({}), validate_params({"segmentation": {"slice_level_labeller": True}})
    assert lineage(labeller, "predictions", "slice") != lineage(base, "predictions", "slice")
    for supervision in ("pixel", "stack"):
        assert lineage(labeller, "predictions", supervision) == lineage(base, "predictions", supervision)
