"""Shared fixtures: a tiny synthetic configuration and one pipeline run reused by several tests."""

import csv
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from wsseg.cli import app
from wsseg.config import SyntheticConfig

TINY_PHANTOMS = SyntheticConfig(  # a dataset of six small cases, for tests that only read or check data
    n_train_pixel=2,
    n_train_weak=2,
    n_val=1,
    n_test=1,
    min_slices=3,
    max_slices=3,
    image_size=32,
    fibrosis_free_fraction=0.5,
)

OVERRIDES = {
    "seed": 0,
    "device": "cpu",
    "data": {
        "synthetic": {
            "n_train_pixel": 3,
            "n_train_weak": 6,
            "n_val": 2,
            "n_test": 2,
            "min_slices": 4,
            "max_slices": 5,
            "image_size": 64,
        },
        "image_size": 64,
        "roi_size": 32,
    },
    "heart": {"image_size": 32, "config": {"epochs": 3, "base_channels": 4, "depth": 3}},
    "myocardium": {
        "roi_size": 32,
        "config": {"epochs": 3, "base_channels": 4, "depth": 3, "affine": False, "scar_painting": 0},
    },
    "cam": {"config": {"epochs": 2, "channels": [4, 4, 8, 8, 8, 8, 8, 8]}},
    "segmentation": {"config": {"epochs": 2, "base_channels": 4, "depth": 3}},
}


def merge(base: dict, overrides: dict) -> dict:
    """``base`` with ``overrides`` applied recursively."""
    merged = dict(base)
    for key, value in overrides.items():
        merged[key] = merge(base[key], value) if isinstance(value, dict) and isinstance(base.get(key), dict) else value
    return merged


# The repository's params.yaml, shrunk so the whole pipeline runs in about a minute.
TINY_PARAMS = merge(yaml.safe_load(Path("params.yaml").read_text()), OVERRIDES)


def rewrite_csv(path: Path, edit) -> None:
    """Rewrite the CSV at ``path`` with ``edit(rows)`` (a list of dicts in, a list of dicts out)."""
    with path.open() as f:
        rows = list(csv.DictReader(f))
    rows = edit(rows)
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def write_params(folder: Path, params: dict) -> Path:
    path = folder / "params.yaml"
    path.write_text(yaml.safe_dump(params))
    return path


@pytest.fixture(scope="session")
def pipeline_run(tmp_path_factory):
    """Run `wsseg run-all` once on the tiny synthetic set; return (params path, workdir, CLI result)."""
    folder = tmp_path_factory.mktemp("run")
    params = write_params(folder, TINY_PARAMS)
    result = CliRunner().invoke(app, ["run-all", "--params", str(params), "--workdir", str(folder / "data")])
    return params, folder / "data", result
