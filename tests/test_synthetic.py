"""The synthetic LGE phantom generator writes an EMIDEC-format folder that agrees with itself."""

from __future__ import annotations

import csv
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image
from pydantic import ValidationError
from scipy.ndimage import binary_dilation, distance_transform_edt

from wsseg.data.synthetic import SyntheticConfig, phantom_case, write_phantom_set

TINY = SyntheticConfig(
    n_train_pixel=2,
    n_train_weak=3,
    n_val=2,
    n_test=2,
    image_size=64,
    min_slices=3,
    max_slices=5,
    fibrosis_free_fraction=0.5,
    seed=3,
)
CASE_COLUMNS = ["case_id", "split", "pixel_labels", "n_slices", "stack_fibrosis"]
SLICE_COLUMNS = ["case_id", "slice_index", "image", "label", "slice_fibrosis"]
FIBROSIS = [3, 4]


def read_csv(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    with path.open(newline="") as handle:
        reader = csv.DictReader(handle)
        return list(reader.fieldnames or []), list(reader)


def png(path: Path) -> np.ndarray:
    with Image.open(path) as image:
        assert image.mode == "L"
        return np.array(image)


@pytest.fixture(scope="module")
def phantom_set(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[dict[str, str]], list[dict[str, str]]]:
    root = write_phantom_set(tmp_path_factory.mktemp("synthetic") / "set", TINY)
    return root, read_csv(root / "cases.csv")[1], read_csv(root / "slices.csv")[1]


@pytest.fixture(scope="module")
def default_cases() -> list[tuple[np.ndarray, np.ndarray]]:
    """A dozen fibrotic full-size cases straight from ``phantom_case``."""
    config = SyntheticConfig()
    return [phantom_case(np.random.default_rng([7, i]), config, fibrosis=True) for i in range(12)]


def test_csv_columns_and_rows(phantom_set):
    root, cases, slices = phantom_set
    assert read_csv(root / "cases.csv")[0] == CASE_COLUMNS
    assert read_csv(root / "slices.csv")[0] == SLICE_COLUMNS
    assert len(cases) == 9
    assert sorted(c["case_id"] for c in cases) == [f"case{i:03d}" for i in range(1, 10)]
    assert len(slices) == sum(int(c["n_slices"]) for c in cases)
    for case in cases:
        rows = [s for s in slices if s["case_id"] == case["case_id"]]
        assert TINY.min_slices <= len(rows) == int(case["n_slices"]) <= TINY.max_slices
        assert [int(s["slice_index"]) for s in rows] == list(range(len(rows)))
        for s in rows:
            name = f"{case['case_id']}_slice{int(s['slice_index']):03d}.png"
            assert s["image"] == f"images/{name}"
            assert s["label"] == (f"labels/{name}" if case["pixel_labels"] == "1" else "")


def test_split_counts_and_shuffled_ids(phantom_set):
    _, cases, _ = phantom_set
    counts = Counter((c["split"], c["pixel_labels"]) for c in cases)
    assert counts == {("train", "1"): 2, ("train", "0"): 3, ("val", "1"): 2, ("test", "1"): 2}
    groups = [("train", "1"), ("train", "0"), ("val", "1"), ("test", "1")]
    in_id_order = [(c["split"], c["pixel_labels"]) for c in sorted(cases, key=lambda c: c["case_id"])]
    assert in_id_order != sorted(in_id_order, key=groups.index)


def test_pngs_have_the_right_size_and_only_labelled_cases_have_masks(phantom_set):
    root, cases, slices = phantom_set
    labelled = {c["case_id"] for c in cases if c["pixel_labels"] == "1"}
    for s in slices:
        image = png(root / s["image"])
        assert image.dtype == np.uint8 and image.shape == (TINY.image_size, TINY.image_size)
        if s["case_id"] in labelled:
            label = png(root / s["label"])
            assert label.dtype == np.uint8 and label.shape == image.shape
            assert set(np.unique(label)) <= {0, 1, 2, 3, 4}
    label_files = {p.name.split("_")[0] for p in (root / "labels").iterdir()}
    assert label_files == labelled
    assert len(list((root / "images").iterdir())) == len(slices)


def test_slice_and_stack_labels_agree_with_masks(phantom_set):
    root, cases, slices = phantom_set
    for case in cases:
        rows = [s for s in slices if s["case_id"] == case["case_id"]]
        slice_labels = [int(s["slice_fibrosis"]) for s in rows]
        assert int(case["stack_fibrosis"]) == max(slice_labels)
        if case["pixel_labels"] == "0":
            continue
        for s, slice_label in zip(rows, slice_labels):
            n_scar = int(np.isin(png(root / s["label"]), FIBROSIS).sum())
            assert slice_label == int(n_scar >= TINY.min_scar_pixels)
            assert n_scar == 0 or n_scar >= TINY.min_scar_pixels


def test_fibrosis_free_cases_exist_and_have_no_scar(phantom_set):
    root, cases, slices = phantom_set
    free = [c for c in cases if c["stack_fibrosis"] == "0"]
    assert len(free) == 1 + 2 + 1 + 1  # round(0.5 * n) per split group
    assert any(c["stack_fibrosis"] == "1" for c in cases)
    for case in free:
        for s in slices:
            if s["case_id"] == case["case_id"] and s["label"]:
                assert not np.isin(png(root / s["label"]), FIBROSIS).any()


def test_scar_lies_in_one_sector_of_the_myocardial_ring(default_cases):
    for _, labels in default_cases:
        for label in labels:
            cavity, scar = label == 1, np.isin(label, FIBROSIS)
            assert not (binary_dilation(cavity) & (label == 0)).any(), "the ring must close around the cavity"
            if not scar.any():
                continue
            assert distance_transform_edt(~cavity)[scar].max() <= 12, "scar beyond the wall thickness"
            cy, cx = np.argwhere(cavity | (label >= 2)).mean(axis=0)
            ys, xs = np.nonzero(scar)
            angles = np.sort(np.degrees(np.arctan2(ys - cy, xs - cx)))
            gaps = np.diff(np.concatenate([angles, angles[:1] + 360]))
            assert gaps.max() >= 360 - 140 - 40, "scar wider than one coronary territory"


def test_scar_and_blood_pool_are_brighter_than_healthy_myocardium(default_cases):
    for images, labels in default_cases:
        myocardium = images[labels == 2].mean()
        assert images[labels == 3].mean() > myocardium + 0.25
        assert images[labels == 1].mean() > myocardium + 0.25


def test_scar_occupies_a_contiguous_run_of_slices(default_cases):
    for _, labels in default_cases:
        scarred = np.flatnonzero(np.isin(labels, FIBROSIS).any(axis=(1, 2)))
        assert len(scarred) > 0
        assert np.array_equal(scarred, np.arange(scarred[0], scarred[-1] + 1))


def test_same_seed_same_bytes_other_seed_other_images(tmp_path):
    config = TINY.model_copy(update={"n_train_weak": 1, "n_val": 1, "n_test": 1})
    first = write_phantom_set(tmp_path / "a", config)
    second = write_phantom_set(tmp_path / "b", config)
    other = write_phantom_set(tmp_path / "c", config.model_copy(update={"seed": 4}))
    files = sorted(p.relative_to(first) for p in first.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(second) for p in second.rglob("*") if p.is_file())
    assert all((first / f).read_bytes() == (second / f).read_bytes() for f in files)
    images = sorted((first / "images").iterdir())
    assert any(
        not (other / "images" / p.name).exists() or p.read_bytes() != (other / "images" / p.name).read_bytes()
        for p in images
    )


def test_rewrite_replaces_the_folder_and_leaves_no_temporaries(tmp_path):
    config = TINY.model_copy(update={"n_train_pixel": 1, "n_train_weak": 0, "n_val": 0, "n_test": 0})
    out = tmp_path / "set"
    out.mkdir()
    (out / "stale.txt").write_text("old")
    assert write_phantom_set(out, config) == out
    assert not (out / "stale.txt").exists()
    assert (out / "cases.csv").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["set"]


def test_config_rejects_unknown_keys_and_bad_slice_range():
    with pytest.raises(ValidationError):
        SyntheticConfig(n_cases=3)
    with pytest.raises(ValidationError):
        SyntheticConfig(min_slices=8, max_slices=4)


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), fibrosis=st.booleans())
def test_phantom_case_shapes_ranges_and_fibrosis(seed, fibrosis):
    config = SyntheticConfig(image_size=64, min_slices=2, max_slices=4)
    images, labels = phantom_case(np.random.default_rng(seed), config, fibrosis)
    assert images.dtype == np.float32 and labels.dtype == np.uint8
    assert images.shape == labels.shape and images.shape[1:] == (64, 64)
    assert 2 <= len(images) <= 4
    assert images.min() >= 0 and images.max() <= 1
    assert set(np.unique(labels)) <= {0, 1, 2, 3, 4} and {1, 2} <= set(np.unique(labels))
    n_scar = np.isin(labels, FIBROSIS).sum(axis=(1, 2))
    assert np.all((n_scar == 0) | (n_scar >= config.min_scar_pixels))
    assert (n_scar.max() >= config.min_scar_pixels) == fibrosis
    scarred = np.flatnonzero(n_scar)
    assert np.array_equal(scarred, np.arange(scarred[0], scarred[-1] + 1)) if fibrosis else len(scarred) == 0
