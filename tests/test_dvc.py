"""`dvc repro` runs the pipeline from dvc.yaml; a second `dvc repro` does nothing."""

import json
import shutil
import subprocess

import pytest

from tests.conftest import TINY_PARAMS, write_params


def run(command: list[str], cwd) -> str:
    done = subprocess.run(command, cwd=cwd, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout + done.stderr


@pytest.mark.slow
def test_dvc_repro_runs_the_pipeline_once(tmp_path):
    if shutil.which("dvc") is None:
        pytest.skip("dvc is not installed")
    files = run(["git", "ls-files"], cwd=".").split()
    for name in files:
        if name.startswith(("dvc.yaml", ".dvc/", ".dvcignore", ".gitignore")):
            (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(name, tmp_path / name)
    write_params(tmp_path, TINY_PARAMS)
    run(["git", "init", "-q"], tmp_path)
    run(["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qam", "init", "--allow-empty"], tmp_path)
    first = run(["dvc", "repro"], tmp_path)
    assert "Running stage 'train-cam@stack'" in first
    metrics = json.loads((tmp_path / "data" / "metrics.json").read_text())
    assert set(metrics["fibrosis"]) == {"pixel", "slice", "stack"}
    assert (tmp_path / "data" / "report" / "report.md").exists()
    second = run(["dvc", "repro"], tmp_path)
    assert "Running stage" not in second
    shown = run(["dvc", "metrics", "show", "--json"], tmp_path)
    assert "fibrosis" in shown
