"""`dvc repro` runs the pipeline from dvc.yaml; a second `dvc repro` does nothing."""

import json
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from tests.conftest import TINY_PARAMS, write_params
from wsseg.cli import app
from wsseg.config import load_params, validate_params
from wsseg.pipeline import dvc_yaml


def run(command: list[str], cwd) -> str:
    done = subprocess.run(command, cwd=cwd, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout + done.stderr


@pytest.mark.slow
def test_dvc_repro_runs_the_pipeline_once(tmp_path):
    """One level's pipeline (the stack level's classifier, pseudo-labels and U-Net; every stage a process)
    from the dvc.yaml that `wsseg dvc` writes for it; the next test ties the committed file to the generator."""
    if shutil.which("dvc") is None:
        pytest.skip("dvc is not installed")
    files = run(["git", "ls-files"], cwd=".").split()
    for name in files:
        if name.startswith((".dvc/", ".dvcignore", ".gitignore")):
            (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(name, tmp_path / name)
    params = {**TINY_PARAMS, "cam": {**TINY_PARAMS["cam"], "levels": ["stack"]}}
    params["segmentation"] = {**TINY_PARAMS["segmentation"], "supervisions": ["stack"]}
    write_params(tmp_path, params)
    (tmp_path / "dvc.yaml").write_text(dvc_yaml(validate_params(params)))
    run(["git", "init", "-q"], tmp_path)
    run(["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qam", "init", "--allow-empty"], tmp_path)
    first = run(["dvc", "repro"], tmp_path)
    assert "Running stage 'train-cam@stack'" in first and "Running stage 'report'" in first
    metrics = json.loads((tmp_path / "data" / "metrics.json").read_text())
    assert set(metrics["fibrosis"]) == {"stack"}
    assert (tmp_path / "data" / "report" / "report.md").exists()
    second = run(["dvc", "repro"], tmp_path)
    assert "Running stage" not in second
    shown = run(["dvc", "metrics", "show", "--json"], tmp_path)
    assert "fibrosis" in shown


def test_the_committed_dvc_yaml_is_the_one_wsseg_dvc_writes(tmp_path):
    """dvc.yaml is generated from the stage table; a stage or params key added there reaches it through `wsseg dvc`."""
    assert Path("dvc.yaml").read_text() == dvc_yaml(load_params("params.yaml"))
    result = CliRunner().invoke(app, ["dvc", "--out", str(tmp_path / "dvc.yaml")])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "dvc.yaml").read_text() == Path("dvc.yaml").read_text()


def test_dvc_yaml_follows_the_levels_and_the_labeler_option(tmp_path):
    raw = {
        "cam": {"levels": ["slice"]},
        "segmentation": {"supervisions": ["pixel", "slice"], "additions": {"slice_level_labeler": True}},
    }
    stages = yaml.safe_load(dvc_yaml(validate_params(raw)))["stages"]
    assert stages["train-cam"]["foreach"] == ["slice"]
    assert "train-seg-slice" not in stages and "train-seg" in str(stages)
    assert "data/cache/pseudo-slice.h5" in stages["predict-slice"]["deps"]
    (tmp_path / "profiles").mkdir()
    (tmp_path / "profiles" / "profile.yaml").write_text("extends: ../params.yaml\nseed: 1\n")
    (tmp_path / "params.yaml").write_text("seed: 0\n")
    result = CliRunner().invoke(
        app, ["dvc", "-p", str(tmp_path / "profiles" / "profile.yaml"), "--out", str(tmp_path / "dvc.yaml")]
    )
    assert result.exit_code == 2 and "cannot be a DVC params file" in result.output
    assert not (tmp_path / "dvc.yaml").exists()
