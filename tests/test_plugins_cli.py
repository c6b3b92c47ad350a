"""`wsseg plugins validate | new | disable | enable` through the CLI."""

import json
import os
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from wsseg import registry
from wsseg.cli import app

runner = CliRunner()


@pytest.fixture
def user_config(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.delenv(registry.DISABLED_ENV, raising=False)


def test_validate_reports_each_check_of_a_builtin():
    result = runner.invoke(app, ["plugins", "validate", "otsu-crf"])
    assert result.exit_code == 0, result.output
    assert "✓ negative weak label gives an empty mask" in result.output and "10/10 checks passed" in result.output


def test_validate_exits_1_on_a_failed_check_and_2_on_an_unknown_name():
    result = runner.invoke(app, ["plugins", "validate", "unet", "--config", "{epochs: 0}"])
    assert (
        result.exit_code == 1
        and "✗ config {'epochs': 0} validates: epochs: Input should be greater than or equal to 1" in result.output
    )
    result = runner.invoke(app, ["plugins", "validate", "nope"])
    assert result.exit_code == 2 and "no plugin named 'nope'" in result.output


def test_disable_shows_in_the_list_and_enable_undoes_it(user_config):
    assert runner.invoke(app, ["plugins", "disable", "cam-threshold"]).exit_code == 0
    rows = {r["name"]: r for r in json.loads(runner.invoke(app, ["plugins", "list", "--json"]).output)}
    assert rows["cam-threshold"]["status"] == "disabled"
    assert "disabled" in runner.invoke(app, ["plugins", "list"]).output
    assert runner.invoke(app, ["plugins", "enable", "cam-threshold"]).exit_code == 0
    result = runner.invoke(app, ["plugins", "disable", "nope"])
    assert result.exit_code == 2 and "no registered plugin matches 'nope'" in result.output


def test_new_refuses_a_bad_kind_name_or_existing_folder(tmp_path):
    assert "KIND" in runner.invoke(app, ["plugins", "new", "labeler", "x", "-o", str(tmp_path)]).output
    assert "lower-case" in runner.invoke(app, ["plugins", "new", "segmenter", "My_Net", "-o", str(tmp_path)]).output
    (tmp_path / "wsseg-taken").mkdir()
    result = runner.invoke(app, ["plugins", "new", "segmenter", "taken", "-o", str(tmp_path)])
    assert result.exit_code == 2 and "already exists" in result.output


def test_new_scaffolds_packages_that_install_and_pass_their_own_tests(tmp_path):
    kinds = {"cam-generator": "my-cam", "pseudo-labeler": "my-labeler", "segmenter": "my-net"}
    for kind, name in kinds.items():
        result = runner.invoke(app, ["plugins", "new", kind, name, "-o", str(tmp_path)])
        assert result.exit_code == 0, result.output
    packages = [str(tmp_path / f"wsseg-{name}") for name in kinds.values()]
    site = tmp_path / "site"
    pip = [
        sys.executable,
        "-m",
        "pip",
        "install",
        "-q",
        "--no-deps",
        "--no-build-isolation",
        "--target",
        str(site),
        *packages,
    ]
    subprocess.run(pip, check=True, capture_output=True)
    assert (
        (site / "wsseg_my_labeler-0.1.0.dist-info" / "entry_points.txt")
        .read_text()
        .startswith("[wsseg.pseudo_labelers]")
    )
    tests = [f"{package}/tests" for package in packages]
    env = {**os.environ, "PYTHONPATH": str(site)}
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *tests],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert "6 passed" in run.stdout
