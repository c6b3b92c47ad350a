"""The example third-party plugins (examples/), selected in params.yaml, in the pipeline."""

import shutil

import numpy as np
from typer.testing import CliRunner

from tests.conftest import TINY_PARAMS, write_params
from wsseg.cli import app
from wsseg.data.cache import read_cache

runner = CliRunner()


def run(commands, params, workdir):
    for command in commands:
        result = runner.invoke(app, [*command, "-p", str(params), "-w", str(workdir)])
        assert result.exit_code == 0, result.output


def test_gradcam_pp_generates_the_cams_of_the_pipeline(pipeline_run, tmp_path):
    _, workdir, _ = pipeline_run
    copy = shutil.copytree(workdir, tmp_path / "data")
    params = write_params(tmp_path, {**TINY_PARAMS, "cam": {**TINY_PARAMS["cam"], "plugin": "gradcam-pp"}})
    run(
        [["train-cam", "--level", "slice"], ["predict-cam", "--level", "slice"], ["pseudo-label", "--level", "slice"]],
        params,
        copy,
    )
    cams = read_cache(copy / "cache" / "cams-slice.h5")
    built_in = read_cache(workdir / "cache" / "cams-slice.h5")
    assert cams["cams"].shape == built_in["cams"].shape and (cams["cams"] >= 0).all()
    np.testing.assert_allclose(cams["slice_score"], built_in["slice_score"], atol=1e-5)  # the same classifier
    assert not np.allclose(cams["cams"], built_in["cams"])


def test_torch_crf_pseudo_labels_agree_with_otsu_crf_and_train_a_segmenter(pipeline_run, tmp_path):
    _, workdir, _ = pipeline_run
    copy = shutil.copytree(workdir, tmp_path / "data")
    config = {**TINY_PARAMS["pseudo_label"]["config"], "device": "cpu"}
    params = write_params(tmp_path, {**TINY_PARAMS, "pseudo_label": {"plugin": "torch-crf", "config": config}})
    run([["pseudo-label", "--level", "slice"], ["train-seg", "--supervision", "slice"]], params, copy)
    ours = read_cache(copy / "cache" / "pseudo-slice.h5")
    reference = read_cache(workdir / "cache" / "pseudo-slice.h5")
    assert ours.attrs["plugin"] == "torch-crf"
    np.testing.assert_array_equal(ours["index"], reference["index"])
    assert (ours["masks"] == reference["masks"]).mean() > 0.99
