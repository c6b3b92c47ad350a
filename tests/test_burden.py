"""Scar burden (wsseg.burden) on masks of known volume, and the cases.csv that `wsseg predict` writes."""

import csv

import numpy as np
import pytest
import SimpleITK as sitk
from PIL import Image

from tests.conftest import TINY_PHANTOMS
from tests.test_dicom import ThresholdPredictor, expected_masks, phantom_stack, predict
from wsseg.burden import BURDEN_COLUMNS, burden_agreement, scar_burden
from wsseg.data.readers import FIBROSIS_LABELS, MYOCARDIUM_LABELS
from wsseg.data.synthetic import phantom_case


def test_a_known_mask_gives_its_volumes_and_share():
    myocardium = np.zeros((3, 10, 10), np.uint8)
    myocardium[:, 2:8, 2:8] = 1  # 36 pixels a slice
    fibrosis = np.zeros_like(myocardium)
    fibrosis[1, 2:5, 2:8] = 1  # 18 pixels, inside the wall
    burden = scar_burden(myocardium, fibrosis, (8.0, 1.25, 1.5))  # 15 mm^3 = 0.015 mL a voxel
    assert (burden.slices, burden.myocardium_pixels, burden.fibrosis_pixels) == (3, 108, 18)
    assert burden.myocardium_ml == pytest.approx(1.62)
    assert burden.fibrosis_ml == pytest.approx(0.27)
    assert burden.fibrosis_percent == pytest.approx(100 * 18 / 108)
    assert burden.row("c1") == ["c1", 3, 108, 18, "1.620", "0.270", "16.67"]
    assert len(burden.row("c1")) == len(BURDEN_COLUMNS)


def test_scar_outside_the_predicted_wall_counts_as_wall():
    myocardium = np.zeros((1, 4, 4), np.uint8)
    myocardium[0, 0] = 1  # 4 pixels
    fibrosis = np.zeros_like(myocardium)
    fibrosis[0, :2, 0] = 1  # one inside the wall, one outside
    burden = scar_burden(myocardium, fibrosis, (1.0, 1.0, 1.0))
    assert (burden.myocardium_pixels, burden.fibrosis_pixels, burden.fibrosis_percent) == (5, 2, 40.0)


def test_a_phantom_burden_matches_its_label_volume():
    images, labels = phantom_case(np.random.default_rng(3), TINY_PHANTOMS, fibrosis=True)
    wall, scar = np.isin(labels, MYOCARDIUM_LABELS), np.isin(labels, FIBROSIS_LABELS)
    burden = scar_burden(wall, scar, (10.0, 2.0, 2.0))  # 40 mm^3 a voxel
    assert 0 < scar.sum() < wall.sum()
    assert burden.myocardium_ml == pytest.approx(wall.sum() * 0.04)
    assert burden.fibrosis_ml == pytest.approx(scar.sum() * 0.04)
    assert burden.fibrosis_percent == pytest.approx(100 * scar.sum() / wall.sum())


def test_without_spacing_or_myocardium_the_unknowns_stay_empty():
    sizes = [np.ones((4, 4), np.uint8), np.ones((6, 3), np.uint8)]  # PNG slices may differ in size
    assert scar_burden(sizes, [np.zeros_like(s) for s in sizes], None).row("c") == ["c", 2, 34, 0, "", "", "0.00"]
    empty = [np.zeros((4, 4), np.uint8)]
    assert scar_burden(empty, empty, (1.0, 1.0, 1.0)).row("c") == ["c", 1, 0, 0, "0.000", "0.000", ""]


@pytest.mark.parametrize(
    ("myocardium", "fibrosis", "spacing", "message"),
    [
        (np.zeros((2, 4, 4)), np.zeros((3, 4, 4)), None, "2 myocardium slices but 3 fibrosis slices"),
        (np.zeros((1, 4, 4)), np.zeros((1, 4, 5)), None, "beside a fibrosis slice of shape"),
        (np.zeros((1, 4, 4)), np.zeros((1, 4, 4)), (1.0, 0.0, 1.0), "spacing must be three positive numbers"),
    ],
)
def test_inconsistent_masks_or_spacing_are_refused(myocardium, fibrosis, spacing, message):
    with pytest.raises(ValueError, match=message):
        scar_burden(myocardium, fibrosis, spacing)


def read_cases(path):
    with path.open() as f:
        return {row["case"]: row for row in csv.DictReader(f)}


def test_predict_writes_the_burden_of_volumes_and_of_png_slices(monkeypatch, tmp_path):
    monkeypatch.setattr("wsseg.stages.predict_folder.Predictor", ThresholdPredictor)
    monkeypatch.chdir(tmp_path)  # default params (no params.yaml), no models needed
    images = phantom_stack(4, 5)
    volume = sitk.GetImageFromArray(images.astype(np.int16))
    volume.SetSpacing((1.5, 1.25, 8.0))
    (tmp_path / "volumes").mkdir()
    sitk.WriteImage(volume, str(tmp_path / "volumes" / "patient7.nii.gz"))
    result = predict(tmp_path / "volumes", tmp_path / "v")
    assert result.exit_code == 0, result.output
    masks = expected_masks(images)
    wall, scar = int((masks[..., 0] | masks[..., 1]).sum()), int(masks[..., 1].sum())
    row = read_cases(tmp_path / "v" / "cases.csv")["patient7"]
    assert (int(row["slices"]), int(row["myocardium_pixels"]), int(row["fibrosis_pixels"])) == (5, wall, scar)
    assert float(row["myocardium_ml"]) == pytest.approx(wall * 0.015, abs=5e-4)  # 1.25 x 1.5 x 8 mm^3 a voxel
    assert float(row["fibrosis_ml"]) == pytest.approx(scar * 0.015, abs=5e-4)
    assert float(row["fibrosis_percent"]) == pytest.approx(100 * scar / wall, abs=5e-3)

    (tmp_path / "pngs").mkdir()
    for z, image in enumerate(images):
        Image.fromarray(image).save(tmp_path / "pngs" / f"case001_slice{z:03d}.png")
    result = predict(tmp_path / "pngs", tmp_path / "p")
    assert result.exit_code == 0, result.output
    pixels_only = read_cases(tmp_path / "p" / "cases.csv")
    assert list(pixels_only) == ["case001"]
    assert (pixels_only["case001"]["myocardium_ml"], pixels_only["case001"]["fibrosis_ml"]) == ("", "")
    assert int(pixels_only["case001"]["myocardium_pixels"]) == wall
    result = predict(tmp_path / "pngs", tmp_path / "s", "--pixel-spacing", "2", "--slice-spacing", "10")
    assert result.exit_code == 0, result.output
    assert float(read_cases(tmp_path / "s" / "cases.csv")["case001"]["myocardium_ml"]) == pytest.approx(wall * 0.04)


def test_burden_agreement_gives_the_mean_absolute_difference_and_the_correlation():
    agreement = burden_agreement([10.0, 20.0, 40.0], [12.0, 26.0, 42.0])
    assert agreement["mean_abs_diff_pp"] == pytest.approx((2 + 6 + 2) / 3)
    assert agreement["pearson_r"] == pytest.approx(np.corrcoef([10, 20, 40], [12, 26, 42])[0, 1])
    assert agreement["n"] == 3
    assert np.isnan(burden_agreement([5.0, 5.0], [1.0, 9.0])["pearson_r"])  # a constant prediction
    with pytest.raises(ValueError, match="as many"):
        burden_agreement([1.0], [1.0, 2.0])
