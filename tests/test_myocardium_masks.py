"""Myocardium-only masks: a kind of supervision for the myocardium model, never a fibrosis label."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import SimpleITK as sitk
import yaml
from PIL import Image
from typer.testing import CliRunner

from tests.conftest import rewrite_csv
from tests.test_bad_input import assert_one_line_error, set_where
from wsseg.artefacts import read_artefact
from wsseg.cli import app
from wsseg.config import SyntheticConfig, validate_params
from wsseg.data.readers import load_label, load_myocardium_mask, read_folder
from wsseg.data.synthetic import write_phantom_set
from wsseg.pipeline import lineage
from wsseg.stages import myocardium as myocardium_stage
from wsseg.stages.ingest import ingest
from wsseg.workspace import Workspace

runner = CliRunner()
TINY = SyntheticConfig(
    n_train_pixel=2,
    n_train_weak=3,
    n_val=1,
    n_test=1,
    min_slices=3,
    max_slices=3,
    image_size=32,
    fibrosis_free_fraction=0.4,
    myocardium_masks=True,
)


@pytest.fixture(scope="module")
def phantoms(tmp_path_factory):
    return write_phantom_set(tmp_path_factory.mktemp("src") / "set", TINY)


@pytest.fixture
def folder(phantoms, tmp_path):
    return shutil.copytree(phantoms, tmp_path / "set")


def params_for(folder, **myocardium):
    return validate_params(
        {"data": {"source": str(folder), "image_size": 32, "roi_size": 16}, "myocardium": {"additions": myocardium}}
    )


def test_masks_are_read_for_the_weak_train_cases_and_hold_no_fibrosis(folder):
    records = read_folder(folder)
    with_masks = [r for r in records if r.myocardium is not None]
    assert {r.split for r in with_masks} == {"train"} and not any(r.pixel_labels for r in with_masks)
    assert len({r.case_id for r in with_masks}) == 3
    assert all(set(np.unique(load_myocardium_mask(r))) <= {0, 1, 2} for r in with_masks)
    assert any(r.slice_fibrosis == 1 for r in with_masks)  # scarred slices: the scar is merged into the wall


def test_ingest_gives_their_myocardium_and_no_fibrosis_mask(folder, tmp_path):
    params, ws = params_for(folder), Workspace(tmp_path / "data")
    ingest(params, ws)
    data = read_artefact(params, ws, "dataset")
    contour_only = data["has_myocardium"] & ~data["has_mask"]
    assert contour_only.sum() == 9 and (data["split"][contour_only] == "train").all()
    assert all(
        data["myocardium_original"][i].any() and data["fibrosis_original"][i].size == 0
        for i in np.flatnonzero(contour_only)
    )
    assert data["myocardium_mask"][contour_only].any(axis=(1, 2)).all()
    assert not data["fibrosis_mask"][contour_only].any()
    assert (data["has_myocardium"][data["has_mask"]]).all()


def test_the_myocardium_model_learns_from_them_only_when_asked(folder, tmp_path, monkeypatch):
    seen = {}

    class Recorder:
        def fit(self, inputs, targets, **kwargs):
            seen["slices"] = len(inputs)

    def train_model(params, ws, artefact, key, device, fit):
        fit(Recorder(), None)

    monkeypatch.setattr(myocardium_stage, "train_model", train_model)
    for switch in (False, True):
        params = params_for(folder, myocardium_only_masks=switch)
        ingest(params, Workspace(tmp_path / "data"))
        myocardium_stage.train_myocardium(params, Workspace(tmp_path / "data"), "cpu")
        seen[switch] = seen.pop("slices")
    assert (seen[False], seen[True]) == (2 * 3, 5 * 3)
    off, on = params_for(folder), params_for(folder, myocardium_only_masks=True)
    assert lineage(off, "myocardium_model") != lineage(on, "myocardium_model")
    assert lineage(off, "dataset") == lineage(on, "dataset")


def a_mask_row(folder):
    return next(r for r in read_folder(folder) if r.myocardium is not None)


def mask_with_value(folder, value):
    record = a_mask_row(folder)
    mask = load_myocardium_mask(record)
    mask[0, 0] = value
    Image.fromarray(mask).save(record.myocardium)


BAD_MASKS = {
    "a fibrosis value in a myocardium mask": (
        lambda f: mask_with_value(f, 3),
        "myocardium mask values must be in (0, 1, 2), found [3]",
    ),
    "no-reflow in a myocardium mask": (lambda f: mask_with_value(f, 4), "found [4]"),
    "a mask of another size": (
        lambda f: Image.fromarray(np.zeros((30, 32), np.uint8)).save(a_mask_row(f).myocardium),
        "differs from its image",
    ),
    "myocardium_labels 1 but a slice without a mask": (
        lambda f: rewrite_csv(
            f / "slices.csv",
            lambda rows: set_where(
                rows, lambda r: r["myocardium"] == f"myocardium/{a_mask_row(f).myocardium.name}", myocardium=""
            ),
        ),
        "has myocardium_labels 1 but slice 0 has no label image or myocardium mask",
    ),
    "myocardium_labels 0 but masks": (
        lambda f: rewrite_csv(
            f / "cases.csv",
            lambda rows: set_where(rows, lambda r: r["case_id"] == a_mask_row(f).case_id, myocardium_labels="0"),
        ),
        "has myocardium_labels 0 but myocardium masks",
    ),
    "a label image and a mask on one row": (
        lambda f: rewrite_csv(
            f / "slices.csv",
            lambda rows: set_where(
                rows, lambda r: bool(r["label"]), myocardium="myocardium/" + a_mask_row(f).myocardium.name
            ),
        ),
        "give a label image or a myocardium mask, not both",
    ),
    "a mask path outside the folder": (
        lambda f: rewrite_csv(
            f / "slices.csv", lambda rows: set_where(rows, lambda r: bool(r["myocardium"]), myocardium="../x.png")
        ),
        "'../x.png' lies outside the dataset folder",
    ),
}


@pytest.mark.parametrize("case", list(BAD_MASKS))
def test_bad_myocardium_masks_give_one_line_and_write_nothing(folder, tmp_path, case):
    spoil, message = BAD_MASKS[case]
    spoil(folder)
    (tmp_path / "params.yaml").write_text(
        yaml.safe_dump({"device": "cpu", "data": {"source": str(folder), "image_size": 32, "roi_size": 16}})
    )
    result = runner.invoke(app, ["ingest", "-p", str(tmp_path / "params.yaml"), "-w", str(tmp_path / "data")])
    assert_one_line_error(result, message)
    assert not (tmp_path / "data").exists()


def test_myocardium_mask_volumes_sit_beside_the_image_volumes(folder, tmp_path):
    records = read_folder(folder)
    volumes = tmp_path / "volumes"
    for name in ("images", "labels", "myocardium"):
        (volumes / name).mkdir(parents=True)
    shutil.copy(folder / "cases.csv", volumes / "cases.csv")
    for case in sorted({r.case_id for r in records}):
        slices = [r for r in records if r.case_id == case]
        sitk.WriteImage(
            sitk.GetImageFromArray(np.stack([np.asarray(Image.open(r.image)) for r in slices])),
            str(volumes / "images" / f"{case}.nii.gz"),
        )
        if slices[0].pixel_labels:
            sitk.WriteImage(
                sitk.GetImageFromArray(np.stack([load_label(r) for r in slices])),
                str(volumes / "labels" / f"{case}.nii.gz"),
            )
        if slices[0].myocardium is not None:
            masks = np.stack([load_myocardium_mask(r) for r in slices])
            sitk.WriteImage(sitk.GetImageFromArray(masks), str(volumes / "myocardium" / f"{case}.nii.gz"))
    read = read_folder(volumes)
    assert sum(r.myocardium is not None for r in read) == sum(r.myocardium is not None for r in records) == 9
    np.testing.assert_array_equal(
        load_myocardium_mask(next(r for r in read if r.myocardium is not None)),
        load_myocardium_mask(a_mask_row(folder)),
    )
