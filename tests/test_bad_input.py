"""Each bad input of docs/reliability.md through the CLI: one line on stderr, exit 2, nothing written."""

import shutil
import warnings

import numpy as np
import pytest
import SimpleITK as sitk
import yaml
from PIL import Image
from typer.testing import CliRunner

from tests.conftest import TINY_PHANTOMS, rewrite_csv
from wsseg.cli import app
from wsseg.config import load_params
from wsseg.data.cache import read_cache, write_cache
from wsseg.data.readers import load_image, load_label, read_folder
from wsseg.data.roi import case_boxes
from wsseg.data.synthetic import write_phantom_set
from wsseg.pipeline import lineage

runner = CliRunner()


@pytest.fixture(scope="module")
def phantoms(tmp_path_factory):
    return write_phantom_set(tmp_path_factory.mktemp("src") / "set", TINY_PHANTOMS)


def set_where(rows, test, **values):
    return [dict(r, **values) if test(r) else r for r in rows]


def first(folder, test=lambda r: True):
    return next(r for r in read_folder(folder) if test(r))


def as_volumes(folder, suffix=".nii.gz"):
    """The same cases as one volume per case (images/ and labels/), in place of the PNG slices and slices.csv."""
    records = read_folder(folder)
    cases = {}
    for case in sorted({r.case_id for r in records}):
        slices = [r for r in records if r.case_id == case]
        labels = np.stack([load_label(r) for r in slices]) if slices[0].pixel_labels else None
        cases[case] = (np.stack([load_image(r) for r in slices]), labels)
    for name in ("images", "labels"):
        shutil.rmtree(folder / name)
        (folder / name).mkdir()
    (folder / "slices.csv").unlink()
    for case, (images, labels) in cases.items():
        sitk.WriteImage(sitk.GetImageFromArray(images), str(folder / "images" / f"{case}{suffix}"))
        if labels is not None:
            sitk.WriteImage(sitk.GetImageFromArray(labels), str(folder / "labels" / f"{case}{suffix}"))
    return folder


def truncate(path, keep=0.5):
    path.write_bytes(path.read_bytes()[: int(path.stat().st_size * keep)])


def non_finite_volume(folder, suffix, value):
    path = as_volumes(folder, suffix) / "images" / f"case002{suffix}"
    array = sitk.GetArrayFromImage(sitk.ReadImage(str(path)))
    array[1, 5, 5] = value
    sitk.WriteImage(sitk.GetImageFromArray(array), str(path))


def four_d_volume(folder):
    path = as_volumes(folder) / "images" / "case002.nii.gz"
    volume = sitk.ReadImage(str(path))
    sitk.WriteImage(sitk.JoinSeries([volume, volume]), str(path))


def short_label_volume(folder):
    path = next((as_volumes(folder) / "labels").iterdir())
    sitk.WriteImage(sitk.ReadImage(str(path))[:, :, :2], str(path))


def move_train_cases(folder, stack):
    """Send the train cases with ``stack_fibrosis == stack`` to val (keeping one pixel-labelled train case)."""
    rewrite_csv(
        folder / "cases.csv",
        lambda rows: set_where(rows, lambda r: r["split"] == "train" and r["stack_fibrosis"] == stack, split="val"),
    )


def positive_stack_row(folder):
    return first(folder, lambda r: r.slice_fibrosis == 1).case_id


def negative_stack_with_fibrosis_in_its_label_images(folder):
    case = first(folder, lambda r: r.pixel_labels and r.slice_fibrosis == 1).case_id
    rewrite_csv(folder / "cases.csv", lambda rows: set_where(rows, lambda r: r["case_id"] == case, stack_fibrosis="0"))
    rewrite_csv(folder / "slices.csv", lambda rows: set_where(rows, lambda r: r["case_id"] == case, slice_fibrosis=""))


def slice_label_contradicting_its_label_image(folder):
    record = first(folder, lambda r: r.pixel_labels and r.slice_fibrosis == 1)
    rewrite_csv(
        folder / "slices.csv",
        lambda rows: set_where(rows, lambda r: r["image"].endswith(record.image.name), slice_fibrosis="0"),
    )


FIRST_ROW = lambda r: r["case_id"] == "case001" and r["slice_index"] == "0"  # noqa: E731

BAD_DATA = {
    "truncated PNG": (lambda f: truncate(f / "images" / "case001_slice001.png"), "cannot read image"),
    "not an image": (lambda f: (f / "images" / "case001_slice001.png").write_bytes(b"GIF89a?"), "cannot read image"),
    "3-channel PNG": (
        lambda f: Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(f / "images" / "case001_slice001.png"),
        "expected a grey image, got mode RGB",
    ),
    "truncated NIfTI": (lambda f: truncate(as_volumes(f) / "images" / "case002.nii.gz"), "cannot read volume"),
    "4D NIfTI": (four_d_volume, "expected a 3D grey volume"),
    "NaN pixels (MHA)": (lambda f: non_finite_volume(f, ".mha", np.nan), "contains NaN or infinite values"),
    "NaN pixels (NIfTI)": (lambda f: non_finite_volume(f, ".nii.gz", np.nan), "contains NaN or infinite values"),
    "inf pixels (NIfTI)": (lambda f: non_finite_volume(f, ".nii", np.inf), "contains NaN or infinite values"),
    "empty folder": (lambda f: [shutil.rmtree(p) if p.is_dir() else p.unlink() for p in f.iterdir()], "is empty"),
    "CSV names a missing file": (
        lambda f: rewrite_csv(f / "slices.csv", lambda rows: set_where(rows, FIRST_ROW, image="images/gone.png")),
        "does not exist",
    ),
    "CSV names an unknown case": (
        lambda f: rewrite_csv(f / "slices.csv", lambda rows: set_where(rows, FIRST_ROW, case_id="case999")),
        "is not in cases.csv",
    ),
    "duplicate slice index": (lambda f: rewrite_csv(f / "slices.csv", lambda rows: rows + rows[:1]), "listed twice"),
    "slice label not 0/1": (
        lambda f: rewrite_csv(f / "slices.csv", lambda rows: set_where(rows, FIRST_ROW, slice_fibrosis="yes")),
        "expected 0 or 1, got 'yes'",
    ),
    "stack label not 0/1": (
        lambda f: rewrite_csv(f / "cases.csv", lambda rows: set_where(rows, lambda r: True, stack_fibrosis="2")),
        "expected 0 or 1, got '2'",
    ),
    "CSV not UTF-8": (
        lambda f: (f / "slices.csv").write_bytes(
            (f / "slices.csv").read_bytes() + "caf\u00e9,0,x,,0\n".encode("latin-1")
        ),
        "not UTF-8",
    ),
    "stack 0 with a positive slice": (
        lambda f: rewrite_csv(
            f / "cases.csv",
            lambda rows: set_where(rows, lambda r: r["case_id"] == positive_stack_row(f), stack_fibrosis="0"),
        ),
        "has stack_fibrosis 0 but a slice with fibrosis",
    ),
    "stack 0 with fibrosis in its label images": (
        negative_stack_with_fibrosis_in_its_label_images,
        "has stack_fibrosis 0 but a slice with fibrosis",
    ),
    "slice label contradicting its label image": (
        slice_label_contradicting_its_label_image,
        "shows fibrosis but slices.csv gives slice_fibrosis 0",
    ),
    "label values outside 0-4": (
        lambda f: Image.fromarray(np.full((32, 32), 7, np.uint8)).save(first(f, lambda r: r.pixel_labels).label),
        "label values must be in",
    ),
    "label image of another size": (
        lambda f: Image.fromarray(np.zeros((30, 32), np.uint8)).save(first(f, lambda r: r.pixel_labels).label),
        "differs from its image",
    ),
    "label volume of another depth": (short_label_volume, "differs from its image"),
    "no positive train case": (lambda f: move_train_cases(f, "1"), "the train split has no positive"),
    "no negative train case": (lambda f: move_train_cases(f, "0"), "the train split has no negative"),
}


def ingest(folder, tmp_path, params=None):
    params_file = tmp_path / "params.yaml"
    params_file.write_text(
        yaml.safe_dump(params or {"device": "cpu", "data": {"source": str(folder), "image_size": 32, "roi_size": 16}})
    )
    return runner.invoke(app, ["ingest", "-p", str(params_file), "-w", str(tmp_path / "data")])


def assert_one_line_error(result, message):
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and message in lines[0], result.stderr


@pytest.mark.parametrize("case", list(BAD_DATA))
def test_bad_data_gives_one_line_and_writes_nothing(phantoms, tmp_path, case):
    spoil, message = BAD_DATA[case]
    folder = shutil.copytree(phantoms, tmp_path / "set")
    spoil(folder)
    result = ingest(folder, tmp_path)
    assert_one_line_error(result, message)
    assert not (tmp_path / "data").exists()


def test_the_unspoilt_set_ingests(phantoms, tmp_path):
    result = ingest(shutil.copytree(phantoms, tmp_path / "set"), tmp_path)
    assert result.exit_code == 0, result.output
    assert (tmp_path / "data" / "cache" / "dataset.h5").is_file()


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"seed": "zero"}, "seed: Input should be a valid integer"),
        ({"data": {"image_sise": 64}}, "data.image_sise: Extra inputs are not permitted"),
        ({"pseudo_label": {"plugin": "otsu"}}, "pseudo_label.plugin: no pseudo labeler plugin named 'otsu'"),
        ({"cam": {"config": {"epochs": "ten"}}}, "cam.config.epochs: Input should be a valid integer"),
    ],
)
def test_bad_params_give_one_line_and_write_nothing(phantoms, tmp_path, params, message):
    result = ingest(phantoms, tmp_path, params)
    assert_one_line_error(result, message)
    assert not (tmp_path / "data").exists()


def test_a_cache_of_another_version_names_the_command_to_rerun(phantoms, tmp_path):
    import h5py

    assert ingest(shutil.copytree(phantoms, tmp_path / "set"), tmp_path).exit_code == 0
    with h5py.File(tmp_path / "data" / "cache" / "dataset.h5", "a") as f:
        f.attrs["wsseg_version"] = "0.0.1"
    result = runner.invoke(app, ["train-myo", "-p", str(tmp_path / "params.yaml"), "-w", str(tmp_path / "data")])
    assert_one_line_error(result, "was written by wsseg 0.0.1")
    assert "Run `wsseg ingest` first" in result.stderr
    assert not (tmp_path / "data" / "models").exists()


def test_a_failed_predict_leaves_no_output(pipeline_run, tmp_path):
    params, workdir, _ = pipeline_run
    inputs = tmp_path / "in"
    inputs.mkdir()
    for png in sorted((workdir / "synthetic" / "images").glob("*.png"))[:3]:
        shutil.copy(png, inputs / png.name)
    truncate(inputs / sorted(p.name for p in inputs.iterdir())[-1])
    result = runner.invoke(
        app, ["predict", str(inputs), "--out", str(tmp_path / "out"), "-p", str(params), "-w", str(workdir)]
    )
    assert_one_line_error(result, "cannot read image")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in"]
    empty = tmp_path / "empty"
    empty.mkdir()
    result = runner.invoke(
        app, ["predict", str(empty), "--out", str(tmp_path / "out"), "-p", str(params), "-w", str(workdir)]
    )
    assert_one_line_error(result, "holds no <case>_slice<NNN>.png files")
    assert not (tmp_path / "out").exists()


def test_a_case_without_predicted_myocardium_gets_a_centred_roi_and_a_warning(pipeline_run, tmp_path):
    """Blank slices: no myocardium anywhere in the case; later stages go on with a centred crop."""
    params, workdir, _ = pipeline_run
    data, p = read_cache(workdir / "cache" / "dataset.h5"), load_params(params)
    case = data["case_id"][(data["split"] == "train") & (data["slice_label"] == 1)][0]
    copy = shutil.copytree(workdir, tmp_path / "data")
    probability = read_cache(copy / "cache" / "myocardium.h5")["probability"]
    rows = data["case_id"] == case
    probability[rows] = 0
    with pytest.warns(UserWarning, match=f"case {case}: no myocardium predicted"):
        box = case_boxes(probability[rows], data["case_id"][rows], p)[0]
    centre, side = data["images"].shape[1] / 2, data["images"].shape[1] / 4
    np.testing.assert_allclose(box, [centre - side / 2] * 2 + [centre + side / 2] * 2)
    with warnings.catch_warnings():  # the tiny run's myocardium model misses other cases too
        warnings.simplefilter("ignore")
        boxes = case_boxes(probability, data["case_id"], p)
    write_cache(
        copy / "cache" / "myocardium.h5", {"probability": probability, "boxes": boxes}, config=lineage(p, "myocardium")
    )
    for step in (["predict-cam", "--level", "slice"], ["pseudo-label", "--level", "slice"]):
        result = runner.invoke(app, [*step, "-p", str(params), "-w", str(copy)])
        assert result.exit_code == 0, result.output
    pseudo = read_cache(copy / "cache" / "pseudo-slice.h5")
    assert pseudo["masks"][rows[pseudo["index"]]].sum() == 0  # nothing to restrict the CAM to


def test_an_unwritable_workdir_gives_one_line(phantoms, tmp_path):
    (tmp_path / "data").write_text("a file where the work folder should be")
    assert_one_line_error(ingest(shutil.copytree(phantoms, tmp_path / "set"), tmp_path), "Not a directory")
