"""Hostile input through the CLI: wsseg reads only inside the dataset folder, writes only under its
outputs, and answers every bad file with one `error:` line (exit 2), never a traceback.

Classes: paths that escape, config files that are not what they claim, absurd sizes, headers that
lie, names that look like markup, late refusals; then property tests of the readers and the
params loader (docs/reliability.md, "Trust boundary").
"""

from __future__ import annotations

import gzip
import os
import shutil
import struct
import sys
import zlib
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
import typer
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image
from rich.progress import TextColumn
from typer.testing import CliRunner

from tests.conftest import TINY_PHANTOMS, rewrite_csv
from tests.test_bad_input import as_volumes, assert_one_line_error, set_where
from wsseg.cli import _friendly_errors, app
from wsseg.config import Params, load_params
from wsseg.data.readers import load_image, read_folder
from wsseg.data.synthetic import write_phantom_set
from wsseg.data.volumes import read_volume
from wsseg.errors import ConfigError, DataError
from wsseg.progress import progress_bar

runner = CliRunner()

# ---------------------------------------------------------------- helpers

_opened: list[str] | None = None


def _audit(event: str, args: tuple) -> None:
    if _opened is not None and event == "open" and isinstance(args[0], (str, bytes, os.PathLike)):
        _opened.append(os.path.realpath(os.fsdecode(args[0])))


sys.addaudithook(_audit)  # audit hooks stay for the session; this one records only inside `opened_files`


@contextmanager
def opened_files():
    """The real paths of every file Python opens inside the block."""
    global _opened
    _opened = []
    try:
        yield _opened
    finally:
        _opened = None


def tree(root: Path) -> set[str]:
    """Every path under ``root``, relative to it."""
    return {str(p.relative_to(root)) for p in root.rglob("*")}


@pytest.fixture(scope="module")
def phantoms(tmp_path_factory):
    return write_phantom_set(tmp_path_factory.mktemp("src") / "set", TINY_PHANTOMS)


@pytest.fixture
def dataset(phantoms, tmp_path):
    """A copy of the tiny phantom set, and beside it a valid PNG that no table may reach."""
    folder = shutil.copytree(phantoms, tmp_path / "set")
    shutil.copy(folder / "images" / "case001_slice000.png", tmp_path / "outside.png")
    return folder


def ingest(folder: Path, tmp_path: Path, **data):
    params = tmp_path / "params.yaml"
    params.write_text(
        yaml.safe_dump({"device": "cpu", "data": {"source": str(folder), "image_size": 32, "roi_size": 16, **data}})
    )
    return runner.invoke(app, ["ingest", "-p", str(params), "-w", str(tmp_path / "work")])


def assert_refused_cleanly(result, message: str, tmp_path: Path, before: set[str]) -> None:
    """One error line with ``message``, exit 2, and no file or folder added anywhere under ``tmp_path``."""
    assert_one_line_error(result, message)
    assert tree(tmp_path) == before


# ---------------------------------------------------------------- 1. paths that escape

ESCAPES = {
    "image path with ..": (
        lambda f, out: rewrite_csv(f / "slices.csv", lambda rows: [dict(rows[0], image="../outside.png"), *rows[1:]]),
        "'../outside.png' lies outside the dataset folder",
    ),
    "absolute image path": (
        lambda f, out: rewrite_csv(f / "slices.csv", lambda rows: [dict(rows[0], image=str(out)), *rows[1:]]),
        "lies outside the dataset folder",
    ),
    "label path with ..": (
        lambda f, out: rewrite_csv(
            f / "slices.csv", lambda rows: set_where(rows, lambda r: bool(r["label"]), label="images/../../outside.png")
        ),
        "lies outside the dataset folder",
    ),
    "link to a file outside": (
        lambda f, out: [
            (f / "images" / "case001_slice000.png").unlink(),
            (f / "images" / "case001_slice000.png").symlink_to(out),
        ],
        "lies outside the dataset folder",
    ),
    "case id with ../": (
        lambda f, out: [
            rewrite_csv(
                f / name, lambda rows: set_where(rows, lambda r: r["case_id"] == "case001", case_id="../case001")
            )
            for name in ("cases.csv", "slices.csv")
        ],
        "case_id '../case001' is not a safe name",
    ),
    "case id that is closing markup": (
        lambda f, out: [
            rewrite_csv(f / name, lambda rows: set_where(rows, lambda r: r["case_id"] == "case001", case_id="[/red]"))
            for name in ("cases.csv", "slices.csv")
        ],
        "case_id '[/red]' is not a safe name",
    ),
    "NUL in a path": (
        lambda f, out: rewrite_csv(f / "slices.csv", lambda rows: [dict(rows[0], image="images/a\0.png"), *rows[1:]]),
        "is not a usable path",
    ),
}


@pytest.mark.parametrize("case", list(ESCAPES))
def test_a_path_that_escapes_the_dataset_folder_is_refused_unread(dataset, tmp_path, case):
    spoil, message = ESCAPES[case]
    outside = tmp_path / "outside.png"
    spoil(dataset, outside)
    before = tree(tmp_path) | {"params.yaml"}
    with opened_files() as opened:
        result = ingest(dataset, tmp_path)
    assert_refused_cleanly(result, message, tmp_path, before)
    assert str(outside.resolve()) not in opened


def test_a_volume_that_links_outside_is_refused(dataset, tmp_path):
    folder = as_volumes(dataset)
    volume = folder / "images" / "case002.nii.gz"
    shutil.move(volume, tmp_path / "elsewhere.nii.gz")
    volume.symlink_to(tmp_path / "elsewhere.nii.gz")
    before = tree(tmp_path) | {"params.yaml"}
    assert_refused_cleanly(ingest(folder, tmp_path), "case002.nii.gz lies outside the dataset folder", tmp_path, before)


def predict(inputs: Path, out: Path, workdir: Path, *extra: str):
    return runner.invoke(
        app, ["predict", str(inputs), "--out", str(out), "-w", str(workdir), "-p", str(workdir / "none.yaml"), *extra]
    )


def test_predict_never_names_an_output_after_an_unsafe_case_id(dataset, tmp_path):
    """`predict --split` on a dataset whose test case id climbs out of --out: refused before any model is read."""
    as_volumes(dataset)
    rewrite_csv(
        dataset / "cases.csv", lambda rows: set_where(rows, lambda r: r["split"] == "test", case_id="../../escaped")
    )
    before = tree(tmp_path)
    result = predict(dataset, tmp_path / "out", tmp_path / "no-models", "--split", "test")
    assert_refused_cleanly(result, "case_id '../../escaped' is not a safe name", tmp_path, before)


@pytest.mark.parametrize(
    ("names", "message"),
    [
        (["[bold]x_slice000.png"], "case id '[bold]x' is not a safe name"),
        (["a.nii", "a.nii.gz"], "two inputs would both write a_myocardium and a_fibrosis"),
        ([".._slice000.png"], "case id '..' is not a safe name"),
    ],
)
def test_predict_refuses_input_names_it_cannot_write_safely_before_reading_a_model(dataset, tmp_path, names, message):
    inputs = tmp_path / "in"
    inputs.mkdir()
    for name in names:
        if name.endswith(".png"):
            shutil.copy(dataset / "images" / "case001_slice000.png", inputs / name)
        else:
            sitk.WriteImage(sitk.GetImageFromArray(np.zeros((2, 8, 8), np.float32)), str(inputs / name))
    before = tree(tmp_path)
    assert_refused_cleanly(predict(inputs, tmp_path / "out", tmp_path / "no-models"), message, tmp_path, before)


def test_predict_refuses_an_input_that_links_outside(dataset, tmp_path):
    inputs = tmp_path / "in"
    inputs.mkdir()
    (inputs / "case001_slice000.png").symlink_to(tmp_path / "outside.png")
    before = tree(tmp_path)
    with opened_files() as opened:
        result = predict(inputs, tmp_path / "out", tmp_path / "no-models")
    assert_refused_cleanly(result, "lies outside the dataset folder", tmp_path, before)
    assert str((tmp_path / "outside.png").resolve()) not in opened


# ---------------------------------------------------------------- 2. config files that are not what they claim

ALIASES = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{c}: &{c} [*{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}]\n" for p, c in zip("abcdefgh", "bcdefghi")
)

PARAMS_FILES = {
    "not UTF-8": (b"seed: 0\ndata: {source: caf\xe9}\n", "params.yaml: not UTF-8 text (byte 26)"),
    "YAML syntax error": (
        b"seed: 0\ndata: [\n  image_size: 3\n",
        "params.yaml:4:1: not valid YAML: expected ',' or ']'",
    ),
    "aliases": (ALIASES.encode(), "params.yaml:2:8: not valid YAML: aliases (*name) are not allowed"),
    "a Python tag": (b"seed: !!python/object/apply:os.system ['true']\n", "not valid YAML"),
    "a huge rejected value": (
        yaml.safe_dump({"seed": "z" * 100_000}).encode(),
        "seed: Input should be a valid integer, unable to parse string as an integer (got 'zzzz",
    ),
    "a huge unknown key": (yaml.safe_dump({"k" * 100_000: 1}).encode(), "Extra inputs are not permitted"),
    "deep nesting": (b"seed: " + b"[" * 5000 + b"]" * 5000 + b"\n", "params.yaml"),
    "a list at the top": (b"- seed\n", "expected a mapping of sections"),
}


@pytest.mark.parametrize("case", list(PARAMS_FILES))
def test_a_params_file_that_is_not_what_it_claims_gives_one_short_line(dataset, tmp_path, case):
    content, message = PARAMS_FILES[case]
    (tmp_path / "params.yaml").write_bytes(content)
    before = tree(tmp_path)
    result = runner.invoke(app, ["ingest", "-p", str(tmp_path / "params.yaml"), "-w", str(tmp_path / "work")])
    assert_refused_cleanly(result, message, tmp_path, before)
    assert len(result.stderr) < 400


def test_a_params_path_that_is_a_folder_and_a_config_option_with_aliases_are_refused(tmp_path):
    assert_one_line_error(runner.invoke(app, ["ingest", "-p", str(tmp_path)]), "not a file")
    result = runner.invoke(app, ["plugins", "validate", "otsu-crf", "--config", "a: &x 1\nb: *x"])
    assert_one_line_error(result, "--config:2:4: not valid YAML: aliases (*name) are not allowed")


# ---------------------------------------------------------------- 3. valid types, absurd sizes

ABSURD = [
    ({"data": {"image_size": 100_000}}, "data.image_size: Input should be less than or equal to 1024"),
    ({"data": {"roi_size": 4096}}, "data.roi_size: Input should be less than or equal to 512"),
    ({"data": {"roi_margin": 1e300}}, "data.roi_margin: Input should be less than or equal to 4"),
    (
        {"data": {"synthetic": {"n_train_weak": 10**6}}},
        "data.synthetic.n_train_weak: Input should be less than or equal to 1000",
    ),
    (
        {"data": {"synthetic": {"image_size": 10**5}}},
        "data.synthetic.image_size: Input should be less than or equal to 1024",
    ),
    (
        {"data": {"synthetic": {"max_slices": 10**5}}},
        "data.synthetic.max_slices: Input should be less than or equal to 64",
    ),
    (
        {"myocardium": {"config": {"base_channels": 10**5}}},
        "myocardium.config.base_channels: Input should be less than or equal to 256",
    ),
    (
        {"myocardium": {"config": {"batch_size": 10**6}}},
        "myocardium.config.batch_size: Input should be less than or equal to 4096",
    ),
    (
        {"segmentation": {"config": {"epochs": 10**9}}},
        "segmentation.config.epochs: Input should be less than or equal to 100000",
    ),
    (
        {"segmentation": {"overrides": {"pixel": {"base_channels": 10**5}}}},
        "segmentation.overrides.pixel.base_channels: Input should be less than or equal to 256",
    ),
    (
        {"cam": {"config": {"channels": [10**5] * 8}}},
        "cam.config.channels.0: Input should be less than or equal to 1024",
    ),
    ({"cam": {"config": {"batch_size": 10**6}}}, "cam.config.batch_size: Input should be less than or equal to 4096"),
    (
        {"pseudo_label": {"config": {"crf_iterations": 10**6}}},
        "pseudo_label.config.crf_iterations: Input should be less than or equal to 100",
    ),
    (
        {"distributed": {"nproc_per_node": 10**6}},
        "distributed.nproc_per_node: Input should be less than or equal to 1024",
    ),
    ({"seed": 2**40}, "seed: Input should be less than or equal to 4294967295"),
    ({"myocardium": {"config": {"lr": float("inf")}}}, "myocardium.config.lr: Input should be a finite number"),
]


@pytest.mark.parametrize(("params", "message"), ABSURD)
def test_absurd_sizes_are_refused_with_their_bound_before_any_work(tmp_path, params, message):
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    before = tree(tmp_path)
    result = runner.invoke(app, ["synth", "-p", str(tmp_path / "params.yaml"), "-w", str(tmp_path / "work")])
    assert_refused_cleanly(result, message, tmp_path, before)


# ---------------------------------------------------------------- 4. headers that lie


def _nifti_field(path: Path, fmt: str, offset: int, *values) -> None:
    raw = bytearray(gzip.decompress(path.read_bytes()))
    struct.pack_into("<" + fmt, raw, offset, *values)
    path.write_bytes(gzip.compress(bytes(raw)))


def _png_claiming(path: Path, width: int, height: int) -> None:
    """A valid 1x1 PNG whose header (CRC mended) claims ``width x height``."""
    Image.fromarray(np.zeros((1, 1), np.uint8)).save(path)
    raw = bytearray(path.read_bytes())
    struct.pack_into(">II", raw, 16, width, height)
    struct.pack_into(">I", raw, 29, zlib.crc32(bytes(raw[12:29])))
    path.write_bytes(bytes(raw))


def _metaimage(path: Path, data_file: str) -> None:
    path.with_suffix(".nii.gz").unlink()
    path.write_text(
        f"ObjectType = Image\nNDims = 3\nDimSize = 32 32 3\nElementType = MET_FLOAT\nElementDataFile = {data_file}\n"
    )


LIARS = {
    "NIfTI datatype and bitpix disagree": (
        lambda f: _nifti_field(f / "images" / "case002.nii.gz", "h", 72, 8),
        "NIfTI header gives datatype 16 (32 bits) but bitpix 8",
    ),
    "tiny NIfTI claiming a huge volume": (
        lambda f: _nifti_field(f / "images" / "case002.nii.gz", "8h", 40, 3, 600, 600, 400, 1, 1, 1, 1),
        "case002.nii.gz: its header claims 400x600x600 pixels, beyond wsseg's limits",
    ),
    "NIfTI with negative dimensions": (
        lambda f: _nifti_field(f / "images" / "case002.nii.gz", "8h", 40, 3, -32, 32, 3, 1, 1, 1, 1),
        "impossible dimensions",
    ),
    "MetaImage reading a file outside": (
        lambda f: _metaimage(f / "images" / "case002.mha", "../../outside.png"),
        "only a plain file name beside the header is read",
    ),
    "MetaImage reading an absolute path": (
        lambda f: _metaimage(f / "images" / "case002.mha", "/etc/hostname"),
        "its header names the data file '/etc/hostname'",
    ),
}


@pytest.mark.parametrize("case", list(LIARS))
def test_a_volume_header_that_lies_is_refused_before_its_voxels_are_read(dataset, tmp_path, case):
    spoil, message = LIARS[case]
    spoil(as_volumes(dataset))
    before = tree(tmp_path) | {"params.yaml"}
    assert_refused_cleanly(ingest(dataset, tmp_path), message, tmp_path, before)


def test_a_png_claiming_a_huge_image_is_refused_before_decoding(dataset, tmp_path):
    _png_claiming(dataset / "images" / "case001_slice000.png", 6000, 5000)
    before = tree(tmp_path) | {"params.yaml"}
    assert_refused_cleanly(
        ingest(dataset, tmp_path), "its header claims 5000x6000 pixels, beyond wsseg's limits", tmp_path, before
    )


def test_a_file_named_png_that_is_another_format_is_refused(dataset, tmp_path):
    Image.fromarray(np.zeros((32, 32), np.uint8)).save(dataset / "images" / "case001_slice000.png", format="TIFF")
    before = tree(tmp_path) | {"params.yaml"}
    assert_refused_cleanly(ingest(dataset, tmp_path), "case001_slice000.png: cannot read image", tmp_path, before)


class _Payload:
    """Unpickling this would touch ``path``: what a model file from elsewhere could do with weights_only=False."""

    def __init__(self, path: Path):
        self.path = path

    def __reduce__(self):
        return (Path.touch, (self.path,))


def test_a_model_file_that_would_run_code_is_refused_without_running_it(dataset, tmp_path):
    import torch

    from wsseg import __version__

    assert ingest(dataset, tmp_path).exit_code == 0
    (tmp_path / "work" / "models").mkdir()
    torch.save(
        {"state": {}, "wsseg_version": __version__, "hook": _Payload(tmp_path / "ran")},
        tmp_path / "work" / "models" / "heart.pt",
    )
    result = runner.invoke(app, ["predict-myo", "-p", str(tmp_path / "params.yaml"), "-w", str(tmp_path / "work")])
    assert_one_line_error(result, "heart.pt is not a readable model file (UnpicklingError)")
    assert not (tmp_path / "ran").exists()


# ---------------------------------------------------------------- 5. names that look like markup


def test_names_in_brackets_are_printed_as_they_are(tmp_path):
    source = tmp_path / "scans [red]2024[/red] [/x]"
    (tmp_path / "params.yaml").write_text(yaml.safe_dump({"data": {"source": str(source)}}))
    result = runner.invoke(app, ["ingest", "-p", str(tmp_path / "params.yaml"), "-w", str(tmp_path / "work")])
    assert_one_line_error(result, f"{source} is not a folder")
    workdir = tmp_path / "run [bold]1[/bold]"
    (tmp_path / "params.yaml").write_text(yaml.safe_dump({"data": {"synthetic": TINY_PHANTOMS.model_dump()}}))
    result = runner.invoke(app, ["synth", "-p", str(tmp_path / "params.yaml"), "-w", str(workdir)])
    assert result.exit_code == 0, result.output
    assert f"phantoms written to {workdir / 'synthetic'}" in result.output


def test_warnings_and_progress_descriptions_are_not_read_as_markup():
    import warnings

    warner = typer.Typer()

    @warner.command()
    @_friendly_errors
    def warn() -> None:
        warnings.warn("case [red]x[/red] in [/bold]folder\nsecond line", stacklevel=1)

    result = runner.invoke(warner, [])
    assert result.exit_code == 0
    assert result.stderr.strip() == "warning: case [red]x[/red] in [/bold]folder\\nsecond line"
    progress = progress_bar()
    progress.add_task("predict [red]case[/red] [/x]", total=1, status="[bold]loss[/bold]")
    shown = [column.render(progress.tasks[0]).plain for column in progress.columns if isinstance(column, TextColumn)]
    assert "predict [red]case[/red] [/x]" in shown and "[bold]loss[/bold]" in shown


# ---------------------------------------------------------------- 6. late refusals


def test_predict_refuses_an_out_that_is_a_file_before_reading_a_model(dataset, tmp_path):
    (tmp_path / "out").write_text("not a folder")
    before = tree(tmp_path)
    result = predict(dataset / "images", tmp_path / "out", tmp_path / "no-models")
    assert_refused_cleanly(result, "--out: ", tmp_path, before)
    assert "exists and is not a folder" in result.stderr


@pytest.mark.parametrize("device", ["gpu", "cuda:x", "[red]cpu"])
def test_a_device_torch_does_not_know_is_one_line(tmp_path, device):
    result = runner.invoke(
        app, ["train-myo", "--device", device, "-p", str(tmp_path / "none.yaml"), "-w", str(tmp_path / "work")]
    )
    assert_one_line_error(result, f"--device: expected auto, cpu, cuda or cuda:N, got '{device}'")
    assert not (tmp_path / "work").exists()


# ---------------------------------------------------------------- property tests: clean refusal or clean accept

PATH_CELLS = st.one_of(
    st.sampled_from(
        [
            "../outside.png",
            "/etc/hostname",
            "images/../../outside.png",
            "images/./case001_slice000.png",
            "images",
            "",
            "a" * 300,
            "images/\0x",
        ]
    ),
    st.text(max_size=12),
)


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(column=st.sampled_from(["image", "label", "case_id"]), row=st.integers(0, 17), value=PATH_CELLS)
def test_any_path_cell_gives_records_inside_the_folder_or_a_data_error(phantoms, tmp_path_factory, column, row, value):
    folder = shutil.copytree(phantoms, tmp_path_factory.mktemp("fuzz") / "set")
    rewrite_csv(
        folder / "slices.csv",
        lambda rows: [dict(r, **{column: value}) if i == row % len(rows) else r for i, r in enumerate(rows)],
    )
    try:
        records = read_folder(folder)
    except DataError as error:
        assert "\n" not in str(error) and len(str(error)) < 400
        return
    root = folder.resolve()
    assert all(
        r.image.resolve().is_relative_to(root) and (r.label is None or r.label.resolve().is_relative_to(root))
        for r in records
    )


@pytest.fixture(scope="module")
def nifti_bytes(tmp_path_factory):
    path = tmp_path_factory.mktemp("nifti") / "v.nii"
    sitk.WriteImage(sitk.GetImageFromArray(np.random.default_rng(0).random((3, 8, 8), dtype=np.float32)), str(path))
    return path.read_bytes()


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    edits=st.lists(st.tuples(st.integers(0, 351), st.integers(0, 255)), max_size=6),
    keep=st.floats(0, 1.2),
    compress=st.booleans(),
)
def test_damaged_nifti_headers_give_a_volume_or_a_data_error(nifti_bytes, tmp_path_factory, edits, keep, compress):
    raw = bytearray(nifti_bytes)
    for where, byte in edits:
        raw[where] = byte
    raw = bytes(raw[: int(len(raw) * min(keep, 1.0))]) if keep < 1 else bytes(raw)
    path = tmp_path_factory.mktemp("damaged") / ("v.nii.gz" if compress else "v.nii")
    path.write_bytes(gzip.compress(raw) if compress else raw)
    try:
        array, spacing = read_volume(path)
    except DataError as error:
        assert "\n" not in str(error)
        return
    assert array.dtype == np.float32 and array.ndim == 3 and array.size <= 2**27 and len(spacing) == 3


META_LINES = st.sampled_from(
    [
        "NDims = 3", "NDims = 9", "DimSize = 8 8 3", "DimSize = 100000 100000 100", "DimSize = -1 8 3",
        "ElementType = MET_FLOAT", "ElementType = MET_UCHAR", "ElementNumberOfChannels = 3", "CompressedData = True",
        "HeaderSize = -1", "ElementDataFile = LOCAL", "ElementDataFile = ../outside.raw",
        "ElementDataFile = /etc/hostname", "ElementDataFile = LIST", "ElementDataFile = v%03d.raw 1 3 1",
        "ElementDataFile = data.raw",
    ]
)  # fmt: skip


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(lines=st.lists(META_LINES, min_size=1, max_size=6), payload=st.binary(max_size=900))
def test_any_metaimage_header_gives_a_volume_or_a_data_error(tmp_path_factory, lines, payload):
    folder = tmp_path_factory.mktemp("mha")
    (folder / "data.raw").write_bytes(payload)
    path = folder / "v.mha"
    path.write_bytes(("ObjectType = Image\n" + "\n".join(lines) + "\n").encode() + payload)
    try:
        array, _ = read_volume(path)
    except DataError as error:
        assert "\n" not in str(error)
        return
    assert array.dtype == np.float32 and array.ndim == 3


YAML_TOKENS = st.sampled_from(
    [
        "seed",
        "data",
        "image_size",
        ":",
        " ",
        "\n",
        "  ",
        "-",
        "[",
        "]",
        "{",
        "}",
        ",",
        "&a",
        "*a",
        "!!str",
        "'",
        '"',
        "#",
        "1e999",
        "-1",
        "0",
        "64",
        "null",
        "~",
        "\t",
        "\xe9",
        "<<",
    ]
)


@settings(max_examples=200, deadline=None)
@given(text=st.one_of(st.lists(YAML_TOKENS, max_size=30).map("".join).map(str.encode), st.binary(max_size=200)))
def test_any_params_file_gives_params_or_a_config_error(tmp_path_factory, text):
    path = tmp_path_factory.mktemp("params") / "params.yaml"
    path.write_bytes(text)
    try:
        assert isinstance(load_params(path), Params)
    except ConfigError as error:
        assert "\n" not in str(error) and len(str(error)) < 400


def test_images_read_through_the_boundary_are_what_the_table_names(dataset):
    """The happy path is untouched: a path through ./ inside the folder still reads the same pixels."""
    rewrite_csv(
        dataset / "slices.csv",
        lambda rows: [dict(rows[0], image="images/./" + rows[0]["image"].split("/")[-1]), *rows[1:]],
    )
    record = read_folder(dataset)[0]
    np.testing.assert_array_equal(
        load_image(record), np.asarray(Image.open(dataset / "images" / "case001_slice000.png"), np.float32)
    )
