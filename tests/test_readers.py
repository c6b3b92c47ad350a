import csv
import shutil

import numpy as np
import pytest
import SimpleITK as sitk
from PIL import Image

from wsseg.config import validate_params
from wsseg.data.cache import read_cache
from wsseg.data.readers import DataError, list_slice_images, load_image, load_label, read_folder
from wsseg.data.synthetic import SyntheticConfig, write_phantom_set
from wsseg.stages.ingest import ingest
from wsseg.workspace import Workspace

TINY = SyntheticConfig(n_train_pixel=2, n_train_weak=2, n_val=1, n_test=1, min_slices=3, max_slices=3, image_size=32, fibrosis_free_fraction=0.5)


@pytest.fixture(scope="module")
def phantoms(tmp_path_factory):
    return write_phantom_set(tmp_path_factory.mktemp("src") / "set", TINY)


@pytest.fixture
def folder(phantoms, tmp_path):
    return shutil.copytree(phantoms, tmp_path / "set")


def rewrite_csv(path, edit):
    with path.open() as f:
        rows = list(csv.DictReader(f))
    rows = edit(rows)
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def test_reads_every_slice_with_its_labels(folder):
    records = read_folder(folder)
    assert len(records) == 6 * 3
    labelled = [r for r in records if r.pixel_labels]
    assert {r.split for r in labelled} == {"train", "val", "test"}
    assert all(load_label(r).shape == load_image(r).shape == (32, 32) for r in labelled)
    assert all(r.slice_fibrosis in (0, 1) for r in records)


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda rows: rows + [dict(rows[0])], "listed twice"),
        (lambda rows: [dict(r, case_id="case999") if i == 0 else r for i, r in enumerate(rows)], "not in cases.csv"),
        (lambda rows: [dict(r, slice_fibrosis="2") if i == 0 else r for i, r in enumerate(rows)], "expected 0 or 1"),
        (lambda rows: [dict(r, image="images/missing.png") if i == 0 else r for i, r in enumerate(rows)], "does not exist"),
    ],
)
def test_bad_slice_tables_are_refused(folder, edit, message):
    rewrite_csv(folder / "slices.csv", edit)
    with pytest.raises(DataError, match=message):
        read_folder(folder)


def test_a_negative_stack_with_a_positive_slice_is_refused(folder):
    positive = next(r.case_id for r in read_folder(folder) if r.slice_fibrosis == 1)
    rewrite_csv(folder / "cases.csv", lambda rows: [dict(r, stack_fibrosis="0") if r["case_id"] == positive else r for r in rows])
    with pytest.raises(DataError, match=f"case {positive} has stack_fibrosis 0"):
        read_folder(folder)


def test_bad_pixels_are_refused(folder):
    record = next(r for r in read_folder(folder) if r.pixel_labels)
    Image.fromarray(np.full((32, 32), 9, np.uint8)).save(record.label)
    with pytest.raises(DataError, match="label values"):
        load_label(record)
    Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(record.image)
    with pytest.raises(DataError, match="grey"):
        load_image(record)
    record.image.write_bytes(record.image.read_bytes()[:40])
    with pytest.raises(DataError, match="cannot read"):
        load_image(record)


def test_bare_folder_of_slices_for_predict(folder):
    records = list_slice_images(folder / "images")
    assert len(records) == 18 and records[0].slice_index == 0
    with pytest.raises(DataError, match="no <case>_slice"):
        list_slice_images(folder)


def test_volumes_read_like_slices(folder, tmp_path):
    volumes = tmp_path / "volumes"
    (volumes / "images").mkdir(parents=True)
    (volumes / "labels").mkdir()
    shutil.copy(folder / "cases.csv", volumes / "cases.csv")
    for case in sorted({r.case_id for r in read_folder(folder)}):
        slices = [r for r in read_folder(folder) if r.case_id == case]
        image = sitk.GetImageFromArray(np.stack([load_image(r) for r in slices]))
        image.SetSpacing((1.5, 1.5, 8.0))
        sitk.WriteImage(image, str(volumes / "images" / f"{case}.nii.gz"))
        if slices[0].pixel_labels:
            sitk.WriteImage(sitk.GetImageFromArray(np.stack([load_label(r) for r in slices])), str(volumes / "labels" / f"{case}.nii.gz"))
    records = read_folder(volumes)
    assert len(records) == 18 and records[1].z == 1
    reference = read_folder(folder)
    np.testing.assert_array_equal(load_image(records[4]), load_image(reference[4]))
    # slice labels come from the label volumes at ingest, stack labels from cases.csv
    params = validate_params({"data": {"source": str(volumes), "image_size": 32, "roi_size": 16}})
    data = read_cache(ingest(params, Workspace(tmp_path / "data")))
    labelled = data["has_mask"]
    expected = np.array([r.slice_fibrosis for r in reference])
    np.testing.assert_array_equal(data["slice_label"][labelled], expected[labelled])
    assert (data["slice_label"][~labelled] == -1).all()
