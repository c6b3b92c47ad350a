"""DICOM in, DICOM SEG and NIfTI out, on synthetic series written with pydicom (real tags, no patient data).

The series carry a made-up patient (:data:`PATIENT`); none of it may reach a message, a table, a
cache or a file name, only the DICOM SEG.
"""

import csv
import gzip
import re
import shutil
import warnings
from pathlib import Path

import highdicom as hd
import numpy as np
import pydicom
import pytest
import SimpleITK as sitk
import yaml
from PIL import Image
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import encapsulate
from pydicom.uid import ExplicitVRLittleEndian, MRImageStorage, RLELossless, generate_uid
from typer.testing import CliRunner

from tests.conftest import TINY_PHANTOMS
from wsseg.burden import scar_burden
from wsseg.cli import app
from wsseg.data.cache import read_cache
from wsseg.data.dicom import list_series, nifti_reference, read_series, series_id
from wsseg.data.readers import load_image, load_label, read_folder
from wsseg.data.synthetic import phantom_case, write_phantom_set
from wsseg.errors import DataError
from wsseg.stages.predict import Prediction

runner = CliRunner()

PATIENT = {"PatientName": "Doe^Jane", "PatientID": "PID4711", "PatientBirthDate": "19610203", "PatientSex": "F"}
SECRETS = ("Doe", "Jane", "PID4711", "19610203")
PATIENT_FOLDER = "Doe_Jane_19610203"  # how PACS exports often name folders


def plane(a: float, b: float) -> tuple[np.ndarray, np.ndarray]:
    """The row and column directions of a plane turned by ``b`` about x, then ``a`` about z (radians)."""
    ca, sa, cb, sb = np.cos(a), np.sin(a), np.cos(b), np.sin(b)
    turn = np.array([[ca, -sa, 0], [sa, ca, 0], [0, 0, 1]]) @ np.array([[1, 0, 0], [0, cb, -sb], [0, sb, cb]])
    return turn[:, 0], turn[:, 1]


OBLIQUE = plane(0.5, 0.8)  # a short-axis-like double oblique plane
AXIAL = plane(0.0, 0.0)
GAP, PIXEL_SPACING = 8.0, (1.25, 1.5)  # mm between slices; between rows, between columns


def write_series(
    folder: Path,
    images: np.ndarray,
    rng: np.random.Generator,
    *,
    axes=OBLIQUE,
    number: int = 3,
    origin=(-80.0, -60.0, 20.0),
    image_type=("ORIGINAL", "PRIMARY", "M"),
    compress: bool = False,
    edit=None,
) -> list[Dataset]:
    """Write ``images`` ``(Z, Y, X)`` as one MR series in ``folder``; return its datasets in slice order.

    The files get random names and are written in random order, and InstanceNumber runs against
    the positions, so only the positions tell the slice order. ``edit(z, ds)`` may spoil a slice.
    """
    folder.mkdir(parents=True, exist_ok=True)
    row, column = (np.round(axis, 6) for axis in axes)
    normal = np.cross(row, column)
    study, series, frame = generate_uid(), generate_uid(), generate_uid()
    datasets = []
    for z, image in enumerate(images):
        ds = Dataset()
        ds.file_meta = FileMetaDataset()
        ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID = MRImageStorage
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID = generate_uid()
        for keyword, value in PATIENT.items():
            setattr(ds, keyword, value)
        ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.FrameOfReferenceUID = study, series, frame
        ds.StudyDate, ds.StudyTime, ds.StudyID, ds.AccessionNumber = "20240102", "101500", "1", "ACC1"
        ds.ReferringPhysicianName, ds.Manufacturer = "", "Synthetic"
        ds.Modality, ds.SeriesNumber, ds.InstanceNumber = "MR", number, len(images) - z
        ds.ImageType = list(image_type)
        ds.ImageOrientationPatient = [float(v) for v in (*row, *column)]
        ds.ImagePositionPatient = [round(float(v), 4) for v in np.asarray(origin) + z * GAP * normal]
        ds.PixelSpacing = list(PIXEL_SPACING)
        ds.SliceThickness, ds.SpacingBetweenSlices = 6.0, GAP  # thinner slices than their spacing, as often
        ds.Rows, ds.Columns = image.shape
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
        ds.PixelData = np.ascontiguousarray(image, dtype=np.uint16).tobytes()
        if edit is not None:
            edit(z, ds)
        if compress:
            ds.compress(RLELossless)
        datasets.append(ds)
    for z in rng.permutation(len(datasets)):
        datasets[z].save_as(folder / f"{rng.integers(1 << 40):010x}", enforce_file_format=True)
    return datasets


def quiet_list(folder: Path):
    """``list_series(folder)`` and the texts of the warnings it gave."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        found = list_series(folder)
    return found, [str(w.message) for w in caught]


def assert_private(text: str, *uids: str) -> None:
    for secret in (*SECRETS, PATIENT_FOLDER, *uids):
        assert secret not in text, secret


def test_series_are_grouped_by_uid_and_ordered_along_the_normal(tmp_path):
    rng = np.random.default_rng(0)
    oblique = rng.integers(0, 1000, (5, 12, 10))
    axial = rng.integers(0, 1000, (4, 12, 10))

    def rescale(z, ds):
        ds.RescaleSlope, ds.RescaleIntercept = 2, -5

    a = write_series(tmp_path / "in", oblique, rng, edit=rescale)
    b = write_series(tmp_path / "in" / PATIENT_FOLDER / "LGE", axial, rng, axes=AXIAL, number=4, origin=(1, 2, 3))
    found, messages = quiet_list(tmp_path / "in")
    assert messages == []
    assert [s.case_id for s in found] == sorted(series_id(ds[0].SeriesInstanceUID) for ds in (a, b))
    by_number = {s.number: s for s in found}
    np.testing.assert_array_equal(read_series(by_number[3]), oblique * 2 - 5)
    np.testing.assert_array_equal(read_series(by_number[4]), axial)
    assert [pydicom.dcmread(f).SOPInstanceUID for f in by_number[3].files] == [ds.SOPInstanceUID for ds in a]
    assert by_number[3].shape == (5, 12, 10)
    np.testing.assert_allclose(by_number[3].spacing, (GAP, *PIXEL_SPACING), atol=1e-3)  # not SliceThickness
    np.testing.assert_allclose(by_number[4].origin, (1, 2, 3))
    assert re.fullmatch(r"series-[0-9a-f]{10}", found[0].case_id)


def test_the_nifti_grid_of_a_series_is_the_dicom_geometry(tmp_path):
    rng = np.random.default_rng(1)
    datasets = write_series(tmp_path, rng.integers(0, 1000, (4, 12, 10)), rng)
    (series,) = list_series(tmp_path)
    grid = nifti_reference(series)
    assert grid.GetSize() == (10, 12, 4)
    row, column = np.reshape(datasets[0].ImageOrientationPatient, (2, 3))
    for z, r, c in ((0, 0, 0), (1, 3, 2), (3, 11, 9)):
        # DICOM: pixel (r, c) lies at the position + c x column spacing x row axis + r x row spacing x column axis
        position = np.array(datasets[z].ImagePositionPatient)
        expected = position + c * PIXEL_SPACING[1] * row + r * PIXEL_SPACING[0] * column
        np.testing.assert_allclose(grid.TransformIndexToPhysicalPoint((c, r, z)), expected, atol=1e-3)


def _frames(z, ds):
    ds.NumberOfFrames = 2
    ds.PixelData = ds.PixelData * 2


def _shift(by):
    def edit(z, ds):
        if z == 2:
            row, column = np.reshape(ds.ImageOrientationPatient, (2, 3))
            ds.ImagePositionPatient = list(np.array(ds.ImagePositionPatient) + by * np.cross(row, column))

    return edit


def _at(z0, **values):
    def edit(z, ds):
        if z == z0:
            for keyword, value in values.items():
                setattr(ds, keyword, value)

    return edit


UNUSABLE = {
    "localiser": (1, {"image_type": ("ORIGINAL", "PRIMARY", "LOCALIZER")}, "a localiser (ImageType LOCALIZER)"),
    "single image": (1, {}, "a single image, not a stack of slices"),
    "multi-frame": (2, {"edit": _frames}, "multi-frame images (2 frames)"),
    "mixed orientations": (4, {"edit": _at(1, ImageOrientationPatient=[1, 0, 0, 0, 1, 0])}, "mixed orientations"),
    "uneven spacing": (4, {"edit": _shift(3.0)}, "inconsistent slice spacing (5.00 to 11.00 mm)"),
    "two images at one position": (4, {"edit": _shift(-GAP)}, "several images at one slice position"),
    "pixel spacings": (4, {"edit": _at(3, PixelSpacing=[1.0, 1.0])}, "different (or non-positive) pixel spacings"),
    "sizes": (3, {"edit": _at(1, Rows=6, PixelData=bytes(6 * 10 * 2))}, "images of different sizes"),
    "not MR": (3, {"edit": _at(0, Modality="CT")}, "modality 'CT, MR', not MR"),
    "MONOCHROME1": (3, {"edit": _at(2, PhotometricInterpretation="MONOCHROME1")}, "not a grey image"),
}


@pytest.mark.parametrize("kind", list(UNUSABLE))
def test_an_unusable_series_is_skipped_with_a_warning_naming_only_its_safe_id(tmp_path, kind):
    slices, options, reason = UNUSABLE[kind]
    rng = np.random.default_rng(2)
    good = write_series(tmp_path / "in" / "good", rng.integers(0, 1000, (3, 12, 10)), rng)
    bad = write_series(tmp_path / "in" / PATIENT_FOLDER, rng.integers(0, 1000, (slices, 12, 10)), rng, **options)
    found, messages = quiet_list(tmp_path / "in")
    assert [s.uid for s in found] == [good[0].SeriesInstanceUID]
    assert len(messages) == 1
    assert messages[0].startswith(f"skipped {series_id(bad[0].SeriesInstanceUID)} (series number 3): {reason}")
    assert_private(messages[0], bad[0].SeriesInstanceUID)


def test_a_folder_of_unusable_series_is_one_error_and_unreadable_files_a_warning(tmp_path):
    rng = np.random.default_rng(3)
    scans = tmp_path / "scans"
    localiser = write_series(scans, rng.integers(0, 1000, (1, 12, 10)), rng, image_type=("DERIVED", "LOCALIZER"))
    (scans / "damaged").write_bytes(bytes(128) + b"DICM" + bytes(range(256)) * 3)
    (scans / "notes.txt").write_text("not DICOM, ignored")
    with pytest.raises(DataError, match=f"{scans}: its DICOM files hold no single-frame 2D MR series"):
        quiet_list(scans)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(DataError):
            list_series(scans)
    assert [str(w.message) for w in caught] == [
        f"{scans}: skipped 1 DICOM file(s) that are unreadable or belong to no series",
        f"skipped {series_id(localiser[0].SeriesInstanceUID)} (series number 3): a localiser (ImageType LOCALIZER)",
    ]
    (tmp_path / "pngs").mkdir()
    (tmp_path / "pngs" / "case_slice000.png").write_bytes(b"\x89PNG")
    assert list_series(tmp_path / "pngs") == []  # no DICOM file: predict goes on to PNG slices


def test_rle_compressed_series_read_like_uncompressed_ones(tmp_path):
    rng = np.random.default_rng(4)
    images = rng.integers(0, 4000, (3, 12, 10))
    write_series(tmp_path / "rle", images, rng, compress=True)
    (series,) = list_series(tmp_path / "rle")
    assert pydicom.dcmread(series.files[0]).file_meta.TransferSyntaxUID == RLELossless
    np.testing.assert_array_equal(read_series(series), images)


def test_an_undecodable_transfer_syntax_is_one_error_naming_the_series(tmp_path):
    def jpeg2000_part2(z, ds):
        ds.file_meta.TransferSyntaxUID = "1.2.840.10008.1.2.4.92"
        ds.PixelData = encapsulate([bytes(8)])
        ds["PixelData"].VR = "OB"

    rng = np.random.default_rng(5)
    datasets = write_series(tmp_path, rng.integers(0, 1000, (3, 12, 10)), rng, edit=jpeg2000_part2)
    label = f"{series_id(datasets[0].SeriesInstanceUID)} (series number 3)"
    with pytest.raises(DataError, match=re.escape(f"{label}: transfer syntax '1.2.840.10008.1.2.4.92' is not one")):
        list_series(tmp_path)


def test_damaged_pixel_data_is_one_error_naming_the_series_and_slice(tmp_path):
    rng = np.random.default_rng(6)
    datasets = write_series(tmp_path, rng.integers(0, 1000, (3, 12, 10)), rng, edit=_at(1, PixelData=bytes(10)))
    (series,) = list_series(tmp_path)
    label = f"{series_id(datasets[0].SeriesInstanceUID)} (series number 3)"
    with pytest.raises(DataError, match=re.escape(f"{label}: slice 2 of 3: cannot decode its pixels")):
        read_series(series)


def phantom_stack(seed: int, slices: int) -> np.ndarray:
    """A synthetic LGE stack ``(slices, 32, 32)`` as the 12-bit grey values a scanner stores."""
    config = TINY_PHANTOMS.model_copy(update={"min_slices": slices, "max_slices": slices})
    images, _ = phantom_case(np.random.default_rng(seed), config, fibrosis=True)
    return np.round(images * 4000).astype(np.uint16)


class ThresholdPredictor:
    """Stands in for the trained models: myocardium above a slice's mean, fibrosis above its 90th percentile.

    Its masks follow each slice's own pixels, so a slice out of place shows in every output.
    """

    spacings: list = []

    def __init__(self, *args, **kwargs):
        pass

    def predict_raw(self, raws, case_ids, spacings):
        ThresholdPredictor.spacings += spacings
        myocardium = [(raw > raw.mean()).astype(np.uint8) for raw in raws]
        fibrosis = [(raw > np.percentile(raw, 90)).astype(np.uint8) for raw in raws]
        n = len(raws)
        empty = np.zeros((n, 1, 1), np.float32)
        return Prediction(empty, np.zeros((n, 4)), empty, np.full(n, 0.5, np.float32), myocardium, fibrosis)


def expected_masks(images: np.ndarray) -> np.ndarray:
    """The masks ``(Z, Y, X, 2)`` that :class:`ThresholdPredictor` gives for a stack in slice order."""
    images = images.astype(np.float32)
    means, tops = images.mean(axis=(1, 2)), np.percentile(images, 90, axis=(1, 2))
    return np.stack([images > means[:, None, None], images > tops[:, None, None]], axis=-1).astype(np.uint8)


def predict(inputs: Path, out: Path, *options: str):
    return runner.invoke(app, ["predict", str(inputs), "--out", str(out), *options], catch_exceptions=False)


def test_predict_on_a_dicom_folder_writes_seg_nifti_and_burden(monkeypatch, tmp_path):
    monkeypatch.setattr("wsseg.stages.predict_folder.Predictor", ThresholdPredictor)
    monkeypatch.setattr(ThresholdPredictor, "spacings", [])
    monkeypatch.chdir(tmp_path)  # default params (no params.yaml), no models needed
    rng = np.random.default_rng(7)
    inputs = tmp_path / "in"
    stacks = [phantom_stack(1, 5), phantom_stack(2, 4)]
    oblique = write_series(inputs / PATIENT_FOLDER / "LGE", stacks[0], rng)
    axial = write_series(inputs, stacks[1], rng, axes=AXIAL, number=5, compress=True)
    localiser = write_series(inputs, np.zeros((1, 32, 32)), rng, number=1, image_type=("ORIGINAL", "LOCALIZER"))
    out = tmp_path / "out"
    result = predict(inputs, out)
    assert result.exit_code == 0, result.output
    assert result.stderr.strip().splitlines() == [
        f"warning: skipped {series_id(localiser[0].SeriesInstanceUID)} (series number 1): a localiser "
        "(ImageType LOCALIZER)"
    ]
    assert ThresholdPredictor.spacings == [np.mean(PIXEL_SPACING)] * 9  # the in-plane spacing reaches the models
    cases = {series_id(datasets[0].SeriesInstanceUID): datasets for datasets in (oblique, axial)}
    kinds = ("myocardium.nii.gz", "fibrosis.nii.gz", "seg.dcm")
    assert sorted(p.name for p in out.iterdir()) == sorted(
        ["cases.csv", "predictions.csv", *(f"{case}_{kind}" for case in cases for kind in kinds)]
    )
    with (out / "cases.csv").open() as f:
        burden = {row["case"]: row for row in csv.DictReader(f)}
    with (out / "predictions.csv").open() as f:
        rows = list(csv.DictReader(f))
    for (case, datasets), images in zip(cases.items(), stacks):
        masks = [sitk.ReadImage(str(out / f"{case}_{kind}")) for kind in kinds[:2]]
        arrays = np.stack([sitk.GetArrayFromImage(mask) for mask in masks], axis=-1)
        np.testing.assert_array_equal(arrays, expected_masks(images))  # slices in the order of their positions
        grid = nifti_reference(next(s for s in quiet_list(inputs)[0] if s.case_id == case))
        for mask in masks:
            assert mask.GetSize() == grid.GetSize() == (32, 32, len(datasets))
            np.testing.assert_allclose(mask.GetOrigin(), datasets[0].ImagePositionPatient, atol=1e-4)
            np.testing.assert_allclose(mask.GetDirection(), grid.GetDirection(), atol=1e-5)
            np.testing.assert_allclose(mask.GetSpacing(), (PIXEL_SPACING[1], PIXEL_SPACING[0], GAP), rtol=1e-5)
        seg = hd.seg.segread(out / f"{case}_seg.dcm")
        assert seg.SegmentationType == "BINARY" and seg.NumberOfFrames == 2 * len(datasets)
        assert [s.SegmentLabel for s in seg.SegmentSequence] == ["Myocardium", "Fibrosis"]
        assert seg.SegmentSequence[1].SegmentedPropertyTypeCodeSequence[0].CodeValue == "112674009"  # SCT Fibrosis
        assert {uid for _, _, uid in seg.get_source_image_uids()} == {ds.SOPInstanceUID for ds in datasets}
        assert (seg.PatientName, seg.PatientID) == ("Doe^Jane", "PID4711")
        assert (seg.StudyInstanceUID, seg.FrameOfReferenceUID) == (
            datasets[0].StudyInstanceUID,
            datasets[0].FrameOfReferenceUID,
        )
        by_source = seg.get_pixels_by_source_instance(
            [ds.SOPInstanceUID for ds in datasets], combine_segments=False, skip_overlap_checks=True
        )
        np.testing.assert_array_equal(by_source, arrays)  # each frame on its own source image
        case_rows = [r for r in rows if r["case_id"] == case]
        assert [int(r["slice_index"]) for r in case_rows] == list(range(len(datasets)))
        assert [int(r["fibrosis_pixels"]) for r in case_rows] == arrays[..., 1].sum(axis=(1, 2)).tolist()
        expected = scar_burden(arrays[..., 0], arrays[..., 1], (GAP, *PIXEL_SPACING))
        assert list(burden[case].values()) == [str(v) for v in expected.row(case)]
        assert float(burden[case]["fibrosis_ml"]) > 0
    texts = [result.output, (out / "cases.csv").read_text(), (out / "predictions.csv").read_text()]
    texts += [p.name for p in out.iterdir()]
    texts += [gzip.decompress(p.read_bytes()).decode("latin-1") for p in out.glob("*.gz")]
    for text in texts:
        assert_private(text, *(ds[0].SeriesInstanceUID for ds in (oblique, axial, localiser)))


def test_a_dicom_series_that_cannot_be_decoded_leaves_no_output(monkeypatch, tmp_path):
    monkeypatch.setattr("wsseg.stages.predict_folder.Predictor", ThresholdPredictor)
    monkeypatch.chdir(tmp_path)
    rng = np.random.default_rng(10)
    write_series(tmp_path / "in" / "a", phantom_stack(1, 3), rng)
    damaged = write_series(tmp_path / "in" / "b", phantom_stack(2, 3), rng, edit=_at(2, PixelData=bytes(10)))
    result = predict(tmp_path / "in", tmp_path / "out")
    assert result.exit_code == 2
    label = f"{series_id(damaged[0].SeriesInstanceUID)} (series number 3)"
    assert result.stderr.startswith(f"error: {label}: slice 3 of 3: cannot decode its pixels")
    assert not (tmp_path / "out").exists()


def test_the_trained_models_predict_a_dicom_series(pipeline_run, tmp_path):
    params, workdir, _ = pipeline_run
    rng = np.random.default_rng(11)
    slices = sorted((workdir / "synthetic" / "images").glob("case001_slice*.png"))
    datasets = write_series(tmp_path / "in", np.stack([np.asarray(Image.open(p)) for p in slices]), rng)
    result = predict(tmp_path / "in", tmp_path / "out", "-p", str(params), "-w", str(workdir))
    assert result.exit_code == 0, result.output
    case = series_id(datasets[0].SeriesInstanceUID)
    seg = hd.seg.segread(tmp_path / "out" / f"{case}_seg.dcm")
    assert seg.NumberOfFrames == 2 * len(slices)
    with (tmp_path / "out" / "cases.csv").open() as f:
        assert [row["case"] for row in csv.DictReader(f)] == [case]


def as_dicom_dataset(png_set: Path, folder: Path) -> Path:
    """The cases of a PNG dataset folder as DICOM series (half named by UID, half by sub-folder) + NIfTI labels."""
    rng = np.random.default_rng(8)
    records = read_folder(png_set)
    with (png_set / "cases.csv").open() as f:
        cases = list(csv.DictReader(f))
    (folder / "labels").mkdir(parents=True)
    for i, row in enumerate(cases):
        slices = [r for r in records if r.case_id == row["case_id"]]
        sub = f"{PATIENT_FOLDER}_{i}/study"
        datasets = write_series(folder / "images" / sub, np.stack([load_image(r) for r in slices]), rng)
        row["series"] = datasets[0].SeriesInstanceUID if i % 2 else sub
        if slices[0].pixel_labels:
            (series,) = list_series(folder / "images" / sub)
            label = sitk.GetImageFromArray(np.stack([load_label(r) for r in slices]))
            label.CopyInformation(nifti_reference(series))
            sitk.WriteImage(label, str(folder / "labels" / f"{row['case_id']}.nii.gz"))
    with (folder / "cases.csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(cases[0]))
        writer.writeheader()
        writer.writerows(cases)
    with (png_set / "slices.csv").open() as f, (folder / "slices.csv").open("w", newline="") as g:
        writer = csv.writer(g)
        writer.writerow(["case_id", "slice_index", "slice_fibrosis"])
        writer.writerows([r["case_id"], r["slice_index"], r["slice_fibrosis"]] for r in csv.DictReader(f))
    return folder


@pytest.fixture(scope="module")
def dicom_set(tmp_path_factory):
    root = tmp_path_factory.mktemp("dicom")
    png_set = write_phantom_set(root / "png", TINY_PHANTOMS)
    return png_set, as_dicom_dataset(png_set, root / "dicom")


def ingest(folder: Path, tmp_path: Path) -> dict:
    tmp_path.mkdir()
    params = tmp_path / "params.yaml"
    params.write_text(
        yaml.safe_dump({"device": "cpu", "data": {"source": str(folder), "image_size": 32, "roi_size": 16}})
    )
    result = runner.invoke(app, ["ingest", "-p", str(params), "-w", str(tmp_path / "data")])
    assert result.exit_code == 0, result.output
    return read_cache(tmp_path / "data" / "cache" / "dataset.h5")


def test_ingest_reads_a_dicom_dataset_as_it_reads_the_same_cases_as_png(dicom_set, tmp_path):
    png_set, dicom = dicom_set
    from_png, from_dicom = ingest(png_set, tmp_path / "png"), ingest(dicom, tmp_path / "dicom")
    for key in ("case_id", "slice_index", "split", "slice_label", "stack_label", "has_mask", "original_shape"):
        np.testing.assert_array_equal(from_dicom[key], from_png[key], err_msg=key)
    for key in ("images", "heart_mask", "myocardium_mask", "fibrosis_mask"):
        np.testing.assert_allclose(from_dicom[key], from_png[key], atol=1e-6, err_msg=key)
    np.testing.assert_allclose(from_dicom["spacing"], np.mean(PIXEL_SPACING))
    assert_private(" ".join(from_dicom["source"].astype(str)))


def test_a_dicom_dataset_refuses_labels_off_the_grid_and_ambiguous_series(dicom_set, tmp_path):
    _, dicom = dicom_set
    folder = shutil.copytree(dicom, tmp_path / "set")
    label = next((folder / "labels").iterdir())
    moved = sitk.ReadImage(str(label))
    moved.SetOrigin((0.0, 0.0, 0.0))
    sitk.WriteImage(moved, str(label))
    with pytest.raises(DataError, match="does not lie on the voxel grid of its series series-[0-9a-f]{10}"):
        read_folder(folder)
    shutil.copytree(dicom / "labels", folder / "labels", dirs_exist_ok=True)
    rows = (folder / "cases.csv").read_text().splitlines()
    case, sub = rows[1].split(",")[0], rows[1].split(",")[-1]
    rng = np.random.default_rng(9)
    write_series(folder / "images" / sub / "second", rng.integers(0, 255, (3, 32, 32)), rng)
    with pytest.raises(DataError, match=f"cases.csv:2: the series of case {case} is not .* holds 2"):
        read_folder(folder)
    (folder / "cases.csv").write_text("\n".join([rows[0], rows[1].replace(sub, "1.2.3.4"), *rows[2:]]) + "\n")
    with pytest.raises(DataError, match=f"cases.csv:2: the series of case {case} is not .* holds 0") as error:
        read_folder(folder)
    assert_private(str(error.value))


def test_predict_split_of_a_dicom_dataset_names_slices_by_series(dicom_set, monkeypatch, tmp_path):
    _, dicom = dicom_set
    monkeypatch.setattr("wsseg.stages.predict_folder.Predictor", ThresholdPredictor)
    monkeypatch.chdir(tmp_path)
    result = predict(dicom, tmp_path / "out", "--split", "test")
    assert result.exit_code == 0, result.output
    records = [r for r in read_folder(dicom) if r.split == "test"]
    case, series = records[0].case_id, records[0].series
    masks = expected_masks(np.stack([load_image(r) for r in records]))
    out = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert out == sorted(
        ["cases.csv", "predictions.csv"]
        + [f"{case}_slice{z:03d}_{kind}.png" for z in range(len(records)) for kind in ("myocardium", "fibrosis")]
    )
    with (tmp_path / "out" / "predictions.csv").open() as f:
        assert {row["image"] for row in csv.DictReader(f)} == {series.case_id}
    with (tmp_path / "out" / "cases.csv").open() as f:
        (burden,) = csv.DictReader(f)
    expected = scar_burden(masks[..., 0], masks[..., 1], (GAP, *PIXEL_SPACING))
    assert list(burden.values()) == [str(v) for v in expected.row(case)]
    assert_private(" ".join(out) + (tmp_path / "out" / "predictions.csv").read_text(), series.uid)


def test_a_link_to_a_file_outside_the_folder_is_refused_before_it_is_read(tmp_path):
    rng = np.random.default_rng(12)
    write_series(tmp_path / "elsewhere", rng.integers(0, 1000, (2, 12, 10)), rng)
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "link").symlink_to(next((tmp_path / "elsewhere").iterdir()))
    with pytest.raises(DataError, match=f"a file in {tmp_path / 'in'} lies outside the dataset folder"):
        list_series(tmp_path / "in")
    (tmp_path / "in" / "link").unlink()
    (tmp_path / "in" / "folder").symlink_to(tmp_path / "elsewhere", target_is_directory=True)
    assert list_series(tmp_path / "in") == []  # links to folders are not followed
