import csv
import io
import shutil

import numpy as np
import pytest
import SimpleITK as sitk
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from tests.conftest import TINY_PHANTOMS, rewrite_csv
from wsseg.config import validate_params
from wsseg.data.cache import read_cache
from wsseg.data.readers import (
    LABEL_VALUES,
    DataError,
    SliceRecord,
    list_slice_images,
    load_image,
    load_label,
    read_folder,
    read_volume,
)
from wsseg.data.synthetic import write_phantom_set
from wsseg.stages.ingest import ingest
from wsseg.workspace import Workspace


@pytest.fixture(scope="module")
def phantoms(tmp_path_factory):
    return write_phantom_set(tmp_path_factory.mktemp("src") / "set", TINY_PHANTOMS)


@pytest.fixture
def folder(phantoms, tmp_path):
    return shutil.copytree(phantoms, tmp_path / "set")


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
        (
            lambda rows: [dict(r, image="images/missing.png") if i == 0 else r for i, r in enumerate(rows)],
            "does not exist",
        ),
        (lambda rows: [dict(r, slice_index="-1") if i == 0 else r for i, r in enumerate(rows)], "non-negative integer"),
        (
            lambda rows: [dict(r, slice_index="\u00b2") if i == 0 else r for i, r in enumerate(rows)],
            "non-negative integer",
        ),
        (
            lambda rows: [dict(r, label="") if r is next(x for x in rows if x["label"]) else r for r in rows],
            "pixel_labels 1 but slice",
        ),
    ],
)
def test_bad_slice_tables_are_refused(folder, edit, message):
    rewrite_csv(folder / "slices.csv", edit)
    with pytest.raises(DataError, match=message):
        read_folder(folder)


@pytest.mark.parametrize(
    "chosen, column, value, message",
    [
        (
            lambda r: r.slice_fibrosis == 1,
            "stack_fibrosis",
            "0",
            "has stack_fibrosis 0",
        ),  # a positive slice in a negative stack
        (
            lambda r: r.stack_fibrosis == 0,
            "stack_fibrosis",
            "1",
            "has stack_fibrosis 1 but none",
        ),  # no positive slice in a positive stack
        (lambda r: r.pixel_labels, "pixel_labels", "0", "has pixel_labels 0 but label images"),
    ],
)
def test_a_cases_csv_that_contradicts_the_slices_is_refused(folder, chosen, column, value, message):
    case = next(r.case_id for r in read_folder(folder) if chosen(r))
    rewrite_csv(
        folder / "cases.csv", lambda rows: [dict(r, **{column: value}) if r["case_id"] == case else r for r in rows]
    )
    with pytest.raises(DataError, match=f"case {case} {message}"):
        read_folder(folder)


def test_bad_pixels_are_refused(folder):
    record = next(r for r in read_folder(folder) if r.pixel_labels)
    Image.fromarray(np.full((32, 32), 9, np.uint8)).save(record.label)
    with pytest.raises(DataError, match="label values"):
        load_label(record)
    Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(record.image)
    with pytest.raises(DataError, match=r"\.png: expected a grey image, got mode RGB$"):
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
            sitk.WriteImage(
                sitk.GetImageFromArray(np.stack([load_label(r) for r in slices])),
                str(volumes / "labels" / f"{case}.nii.gz"),
            )
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


def test_tables_that_are_not_utf8_or_empty_are_refused(folder):
    (folder / "slices.csv").write_bytes((folder / "slices.csv").read_bytes().replace(b"case", b"caf\xe9", 1))
    with pytest.raises(DataError, match="not UTF-8"):
        read_folder(folder)
    (folder / "cases.csv").write_text("case_id,split\n")
    with pytest.raises(DataError, match="cases.csv: no rows"):
        read_folder(folder)


def test_an_empty_folder_is_refused(tmp_path):
    with pytest.raises(DataError, match="is empty"):
        read_folder(tmp_path)


def _volume(array: np.ndarray, path) -> None:
    sitk.WriteImage(sitk.GetImageFromArray(array), str(path))


@pytest.mark.parametrize("suffix", [".nii.gz", ".nii", ".mha"])
@pytest.mark.parametrize("keep", [0.3, 0.9])
def test_truncated_volumes_are_refused_not_read_as_zeros(tmp_path, suffix, keep):
    path = tmp_path / f"v{suffix}"
    _volume(np.random.default_rng(0).random((3, 16, 16), dtype=np.float32), path)
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])
    with pytest.raises(DataError, match="cannot read volume"):
        read_volume(path)


def test_volumes_that_are_not_3d_grey_or_hold_nan_are_refused(tmp_path):
    grey = np.ones((3, 8, 8), np.float32)
    sitk.WriteImage(sitk.JoinSeries([sitk.GetImageFromArray(grey)] * 2), str(tmp_path / "4d.nii.gz"))
    with pytest.raises(DataError, match="expected a 3D grey volume"):
        read_volume(tmp_path / "4d.nii.gz")
    grey[1, 2, 2] = np.nan
    for name in ("nan.mha", "nan.nii.gz"):  # SimpleITK alone reads NIfTI NaN as 0
        _volume(grey, tmp_path / name)
        with pytest.raises(DataError, match="NaN or infinite"):
            load_image(SliceRecord("a", 1, tmp_path / name, z=1))


def test_a_label_volume_of_another_depth_is_refused(folder, tmp_path):
    volumes = tmp_path / "volumes"
    (volumes / "images").mkdir(parents=True)
    (volumes / "labels").mkdir()
    shutil.copy(folder / "cases.csv", volumes / "cases.csv")
    for case in sorted({r.case_id for r in read_folder(folder)}):
        slices = [r for r in read_folder(folder) if r.case_id == case]
        _volume(np.stack([load_image(r) for r in slices]), volumes / "images" / f"{case}.nii.gz")
        if slices[0].pixel_labels:
            _volume(np.stack([load_label(r) for r in slices])[:-1], volumes / "labels" / f"{case}.nii.gz")
    with pytest.raises(DataError, match=r"size \(2, 32, 32\) differs from its image \(3, 32, 32\)"):
        read_folder(volumes)


# Property tests: whatever a user's table or file holds, the readers answer with data or a DataError.

CELLS = st.one_of(
    st.sampled_from(["0", "1", "", "1.0", "2", "-1", "yes", "NaN", " 1 ", "\u00b2", "case001", "case999", "007"]),
    st.text(max_size=8),
)


@pytest.fixture(scope="module")
def shared_folder(phantoms, tmp_path_factory):
    return shutil.copytree(phantoms, tmp_path_factory.mktemp("prop") / "set")


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    table=st.sampled_from(["cases.csv", "slices.csv"]), row=st.integers(0, 17), column=st.integers(0, 4), value=CELLS
)
def test_any_edited_cell_gives_records_or_a_data_error(shared_folder, table, row, column, value):
    path = shared_folder / table
    original = path.read_text()
    rows = [line.split(",") for line in original.splitlines()]
    row = 1 + row % (len(rows) - 1)
    with path.open("w", newline="") as f:
        csv.writer(f).writerows(
            rows[:row] + [[value if i == column else cell for i, cell in enumerate(rows[row])]] + rows[row + 1 :]
        )
    try:
        records = read_folder(shared_folder)
    except DataError as error:
        assert "\n" not in str(error)
    else:
        assert all(r.slice_fibrosis in (-1, 0, 1) and r.stack_fibrosis in (-1, 0, 1) for r in records)
        assert all(r.image.is_file() for r in records)
    finally:
        path.write_text(original)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(0, 255), min_size=16, max_size=16))
def test_label_images_load_exactly_when_every_value_is_documented(tmp_path_factory, values):
    path = tmp_path_factory.mktemp("label") / "x.png"
    array = np.array(values, np.uint8).reshape(4, 4)
    Image.fromarray(array).save(path)
    record = SliceRecord("a", 0, path, label=path)
    if set(values) <= set(LABEL_VALUES):
        np.testing.assert_array_equal(load_label(record), array)
    else:
        with pytest.raises(DataError, match="label values"):
            load_label(record)


@settings(max_examples=100, deadline=None)
@given(cut=st.floats(0, 1), flips=st.lists(st.tuples(st.floats(0, 1), st.integers(0, 255)), max_size=4))
def test_damaged_png_files_load_or_give_a_data_error(tmp_path_factory, cut, flips):
    buffer = io.BytesIO()
    Image.fromarray(np.arange(256, dtype=np.uint8).reshape(16, 16)).save(buffer, "PNG")
    data = bytearray(buffer.getvalue()[: max(1, int(len(buffer.getvalue()) * cut))])
    for where, byte in flips:
        data[int(where * (len(data) - 1))] = byte
    path = tmp_path_factory.mktemp("png") / "case_slice000.png"
    path.write_bytes(bytes(data))
    try:
        image = load_image(SliceRecord("case", 0, path))
    except DataError:
        return
    assert image.dtype == np.float32 and image.ndim == 2 and np.isfinite(image).all()
