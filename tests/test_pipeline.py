"""End to end through the CLI on a tiny synthetic set (one shared `run-all`, see conftest)."""

import csv
import json
import shutil

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from tests.conftest import TINY_PARAMS, merge, write_params
from wsseg.artefacts import read_artefact, read_roi_data, write_artefact
from wsseg.checkpoint import load_plugin
from wsseg.cli import app
from wsseg.config import validate_params
from wsseg.data.cache import read_cache
from wsseg.data.geometry import crop
from wsseg.interfaces import CAMOutput
from wsseg.pipeline import planned_steps, run_stage, stage_named
from wsseg.registry import get_plugin
from wsseg.stages.fibrosis import self_labels, train_fibrosis, training_set
from wsseg.stages.predict import Predictor
from wsseg.workspace import Workspace
from wsseg_test_plugin import CAMThresholdLabeler

runner = CliRunner()


@pytest.mark.parametrize("native", [True, False])
def test_run_all_says_when_bfloat16_asked_for_runs_in_float32(pipeline_run, tmp_path, monkeypatch, native):
    import wsseg.cli as cli

    _, workdir, _ = pipeline_run
    monkeypatch.setattr(cli, "planned_steps", lambda params: [])  # the stages ran in the fixture
    monkeypatch.setattr(cli, "native_bfloat16", lambda device: native)
    shutil.copy(workdir / "metrics.json", tmp_path / "metrics.json")
    params = write_params(tmp_path, merge(TINY_PARAMS, {"heart": {"config": {"mixed_precision": True}}}))
    result = runner.invoke(app, ["run-all", "-p", str(params), "-w", str(tmp_path)])
    assert result.exit_code == 0, result.output
    said = "note: bfloat16 (mixed_precision) is asked for in heart, but this cpu does not compute it natively"
    assert (said in result.output) == (not native)
    assert json.loads((tmp_path / "timings.json").read_text())["native_bfloat16"] == native


def test_run_all_writes_metrics_report_and_summary(pipeline_run):
    _, workdir, result = pipeline_run
    assert result.exit_code == 0, result.output
    assert "run-all summary" in result.output and "total" in result.output
    timings = json.loads((workdir / "timings.json").read_text())
    assert [s["stage"] for s in timings["stages"]][:4] == ["synth", "ingest", "train-heart", "train-myo"]
    assert timings["peak_mib"] >= max(s["peak_mib_so_far"] for s in timings["stages"]) > 0
    metrics = json.loads((workdir / "metrics.json").read_text())
    assert set(metrics["fibrosis"]) == {"pixel", "slice", "stack"}
    assert set(metrics["classification"]) == {"slice", "stack"}
    assert set(metrics["label_free"]) == {"otsu", "otsu_gated"}
    assert metrics["label_free"]["otsu"]["dice"]["n"] == metrics["fibrosis"]["pixel"]["dice"]["n"]
    assert metrics["fibrosis"]["slice"]["burden"]["n"] == metrics["n_cases"]
    assert 0 <= metrics["myocardium"]["dice"]["mean"] <= 1
    per_case = json.loads((workdir / "metrics_per_case.json").read_text())
    assert len(per_case["myocardium"]) == metrics["n_cases"]
    assert len(per_case["fibrosis_slice"]) == metrics["n_cases"]
    assert len(per_case["fibrosis_otsu_gated"]) == metrics["n_cases"]
    report = (workdir / "report" / "report.md").read_text()
    assert "| Fibrosis | slice |" in report and "| Fibrosis | *label-free Otsu, gated* |" in report
    for figure in ("overlays.png", "cams.png", "curves.png"):
        assert (workdir / "report" / figure).stat().st_size > 10_000
    assert (workdir / "curves" / "cam-slice" / "plots" / "metrics" / "loss.tsv").exists()


@pytest.fixture
def copied_run(pipeline_run, tmp_path) -> Workspace:
    """A copy of the shared run's workspace, its dataset ingested again so that it names the copy's files."""
    ws = Workspace(tmp_path / "data")
    shutil.copytree(pipeline_run[1], ws.root)
    run_stage(stage_named("ingest"), validate_params(TINY_PARAMS), ws)
    return ws


def _run_all(ws: Workspace, monkeypatch, params: dict, *options: str) -> list[str]:
    """run-all on ``ws``: the steps it runs (really running ingest only, recording the others)."""
    import wsseg.cli as cli

    ran = []

    def record(stage, p, workspace, key, device):
        ran.append(stage.command + stage.option(key))
        if stage.command == "ingest":
            run_stage(stage, p, workspace, key, device)

    monkeypatch.setattr(cli, "run_stage", record)
    config = write_params(ws.root.parent, params)
    result = runner.invoke(app, ["run-all", "-p", str(config), "-w", str(ws.root), *options])
    assert result.exit_code == 0, result.output
    return ran


@pytest.mark.parametrize("force", [False, True])
def test_run_all_keeps_what_is_current_and_reruns_what_params_changed(copied_run, monkeypatch, force):
    changed = merge(TINY_PARAMS, {"segmentation": {"threshold": 0.6}})  # read by predict only
    ran = _run_all(copied_run, monkeypatch, changed, *(["--force"] * force))
    steps = [stage.command + stage.option(key) for stage, key in planned_steps(validate_params(changed))]
    predicts = [f"predict --supervision {s}" for s in ("pixel", "slice", "stack")]
    assert ran == (steps if force else ["synth", "ingest", *predicts, "evaluate", "report"])
    timings = json.loads(copied_run.timings.read_text())["stages"]
    assert [s["stage"] for s in timings if s["seconds"] is None] == [step for step in steps if step not in ran]


def test_run_all_reruns_every_stage_after_the_dataset_changed(copied_run, monkeypatch):
    image = next((copied_run.synthetic / "images").glob("*.png"))
    Image.fromarray(255 - np.asarray(Image.open(image))).save(image)
    ran = _run_all(copied_run, monkeypatch, TINY_PARAMS)
    assert ran == [stage.command + stage.option(key) for stage, key in planned_steps(validate_params(TINY_PARAMS))]


def test_weak_stages_never_pseudo_label_outside_the_train_split(pipeline_run):
    _, workdir, _ = pipeline_run
    data = read_cache(workdir / "cache" / "dataset.h5")
    pseudo = read_cache(workdir / "cache" / "pseudo-slice.h5")
    assert set(data["split"][pseudo["index"]]) == {"train"}
    negatives = data["slice_label"][pseudo["index"]] == 0
    assert pseudo["masks"][negatives].sum() == 0


def test_predict_writes_the_contract_for_a_folder_of_slices(pipeline_run, tmp_path):
    params, workdir, _ = pipeline_run
    inputs = tmp_path / "in"
    inputs.mkdir()
    for png in sorted((workdir / "synthetic" / "images").glob("*.png"))[:5]:
        shutil.copy(png, inputs / png.name)
    big = Image.open(inputs / sorted(p.name for p in inputs.iterdir())[0]).resize((96, 80))
    big.save(inputs / "other_slice007.png")  # another size and case
    out = tmp_path / "out"
    result = runner.invoke(
        app,
        ["predict", str(inputs), "--out", str(out), "--supervision", "stack", "-p", str(params), "-w", str(workdir)],
    )
    assert result.exit_code == 0, result.output
    with (out / "predictions.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 6
    assert {"image", "case_id", "slice_index", "fibrosis_probability", "fibrosis_pixels", "myocardium_pixels"} <= set(
        rows[0]
    )
    for row in rows:
        stem = row["image"].removesuffix(".png")
        size = Image.open(inputs / row["image"]).size
        for kind, column in (("myocardium", "myocardium_pixels"), ("fibrosis", "fibrosis_pixels")):
            mask = np.asarray(Image.open(out / f"{stem}_{kind}.png"))
            assert mask.shape[::-1] == size
            assert int(row[column]) == (mask > 0).sum()
        assert 0 <= float(row["fibrosis_probability"]) <= 1
    assert rows[-1]["case_id"] == "other" and rows[-1]["slice_index"] == "7"


def test_predict_with_split_reads_only_that_split_of_a_dataset_folder(pipeline_run, tmp_path):
    params, workdir, _ = pipeline_run
    dataset = workdir / "synthetic"
    with (dataset / "cases.csv").open() as f:
        val_cases = {row["case_id"] for row in csv.DictReader(f) if row["split"] == "val"}
    out = tmp_path / "out"
    result = runner.invoke(
        app, ["predict", str(dataset), "--split", "val", "--out", str(out), "-p", str(params), "-w", str(workdir)]
    )
    assert result.exit_code == 0, result.output
    with (out / "predictions.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert {row["case_id"] for row in rows} == val_cases
    assert len(list(out.glob("*_fibrosis.png"))) == len(rows)
    result = runner.invoke(
        app, ["predict", str(dataset), "--split", "holdout", "--out", str(out), "-p", str(params), "-w", str(workdir)]
    )
    assert result.exit_code == 2 and "--split" in result.output


def test_a_third_party_pseudo_labeler_runs_in_the_pipeline_with_its_levels_overrides(pipeline_run, tmp_path):
    _, workdir, _ = pipeline_run
    copy = shutil.copytree(workdir, tmp_path / "data")
    labeling = {"plugin": "cam-threshold", "config": {"fraction": 0.6}, "overrides": {"slice": {"fraction": 0.3}}}
    raw = {**TINY_PARAMS, "pseudo_label": labeling}
    params = write_params(tmp_path, raw)
    cams = read_cache(copy / "cache" / "cams-slice.h5")
    shifted = {**cams, "cams": cams["cams"] - cams["cams"].min()}  # the tiny run's CAMs are all below 0
    write_artefact(validate_params(raw), Workspace(copy), "cams", "slice", shifted, level="slice")
    for command in (["pseudo-label", "--level", "slice"], ["train-seg", "--supervision", "slice"]):
        result = runner.invoke(app, [*command, "-p", str(params), "-w", str(copy)])
        assert result.exit_code == 0, result.output
    pseudo = read_cache(copy / "cache" / "pseudo-slice.h5")
    assert pseudo.attrs["plugin"] == "cam-threshold"
    labeler = CAMThresholdLabeler({"fraction": 0.3})
    blank = np.zeros(pseudo["masks"].shape[1:])
    expected = np.array([labeler.label(shifted["cams"][i], blank, blank, True) for i in pseudo["index"]])
    positives = read_cache(copy / "cache" / "dataset.h5")["slice_label"][pseudo["index"]] == 1
    assert expected[positives].any()
    np.testing.assert_array_equal(pseudo["masks"][positives], expected[positives])


def test_a_stale_upstream_cache_is_refused_naming_the_command_to_rerun(pipeline_run, tmp_path):
    _, workdir, _ = pipeline_run
    changed = {**TINY_PARAMS, "data": {**TINY_PARAMS["data"], "roi_margin": 0.5}}
    params = write_params(tmp_path, changed)
    result = runner.invoke(app, ["predict-cam", "--level", "slice", "-p", str(params), "-w", str(workdir)])
    assert result.exit_code == 2
    assert "another configuration" in result.output and "wsseg predict-myo" in result.output


def test_bad_params_fail_before_any_work_with_one_line(tmp_path):
    params = write_params(tmp_path, {**TINY_PARAMS, "cam": {"config": {"epochs": "ten"}}})
    result = runner.invoke(app, ["run-all", "-p", str(params), "-w", str(tmp_path / "data")])
    assert result.exit_code == 2
    assert "cam.config.epochs" in result.output and "Traceback" not in result.output
    assert not (tmp_path / "data").exists()


def test_unknown_plugin_and_level_are_named(tmp_path):
    params = write_params(tmp_path, {**TINY_PARAMS, "segmentation": {"plugin": "nnunet"}})
    result = runner.invoke(app, ["train-seg", "-p", str(params), "-w", str(tmp_path)])
    assert result.exit_code == 2 and "segmentation.plugin: no segmenter plugin named 'nnunet'" in result.output
    result = runner.invoke(
        app, ["train-cam", "--level", "patient", "-p", str(write_params(tmp_path, TINY_PARAMS)), "-w", str(tmp_path)]
    )
    assert result.exit_code == 2 and "--level" in result.output


def test_plugins_list_shows_the_builtins_as_table_and_json():
    result = runner.invoke(app, ["plugins", "list"])
    assert result.exit_code == 0
    for name in ("drn-attention", "otsu-crf", "unet"):
        assert name in result.output
    rows = json.loads(runner.invoke(app, ["plugins", "list", "--json"]).output)
    assert {(r["name"], r["kind"], r["status"]) for r in rows} >= {
        ("unet", "segmenter", "ok"),
        ("otsu-crf", "pseudo_labeler", "ok"),
    }


def test_predict_on_volumes_writes_volumes_with_the_input_geometry(pipeline_run, tmp_path):
    import SimpleITK as sitk

    params, workdir, _ = pipeline_run
    slices = sorted((workdir / "synthetic" / "images").glob("case001_slice*.png"))
    volume = sitk.GetImageFromArray(np.stack([np.asarray(Image.open(p)) for p in slices]).astype(np.int16))
    volume.SetSpacing((1.4, 1.4, 8.0))
    volume.SetOrigin((10.0, -5.0, 3.0))
    inputs = tmp_path / "in"
    inputs.mkdir()
    sitk.WriteImage(volume, str(inputs / "patient7.nii.gz"))
    out = tmp_path / "out"
    result = runner.invoke(app, ["predict", str(inputs), "--out", str(out), "-p", str(params), "-w", str(workdir)])
    assert result.exit_code == 0, result.output
    for kind in ("myocardium", "fibrosis"):
        mask = sitk.ReadImage(str(out / f"patient7_{kind}.nii.gz"))
        assert mask.GetSize() == volume.GetSize()
        np.testing.assert_allclose(mask.GetSpacing(), (1.4, 1.4, 8.0), rtol=1e-6)  # NIfTI keeps float32
        np.testing.assert_allclose(mask.GetOrigin(), (10.0, -5.0, 3.0), rtol=1e-6)
    with (out / "predictions.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert [r["slice_index"] for r in rows] == [str(z) for z in range(len(slices))]
    assert {r["case_id"] for r in rows} == {"patient7"}


def test_restricting_predictions_to_the_myocardium_only_removes_fibrosis(pipeline_run, tmp_path):
    _, workdir, _ = pipeline_run
    copy = shutil.copytree(workdir, tmp_path / "data")
    params = write_params(
        tmp_path,
        {**TINY_PARAMS, "segmentation": {**TINY_PARAMS["segmentation"], "additions": {"restrict_to_myocardium": True}}},
    )
    result = runner.invoke(app, ["predict", "--supervision", "pixel", "-p", str(params), "-w", str(copy)])
    assert result.exit_code == 0, result.output
    free = read_cache(workdir / "cache" / "predictions-pixel.h5")
    restricted = read_cache(copy / "cache" / "predictions-pixel.h5")
    for before, after in zip(free["fibrosis_masks"], restricted["fibrosis_masks"]):
        assert not (after & ~before).any()
    probability = read_cache(copy / "cache" / "myocardium.h5")["probability"]
    outside = (
        crop(probability, restricted["boxes"], TINY_PARAMS["data"]["roi_size"]) < TINY_PARAMS["myocardium"]["threshold"]
    )
    assert restricted["fibrosis_roi"][outside].max() == 0


@pytest.mark.parametrize(
    ("additions", "channels"),
    [({"myocardium_channel": ["slice"]}, 2), ({"myocardium_channel": ["slice"], "neighbours": ["slice"]}, 4)],
)
def test_extra_channels_reach_a_weak_segmenter_only_when_asked(pipeline_run, tmp_path, additions, channels):
    _, workdir, _ = pipeline_run
    copy = shutil.copytree(workdir, tmp_path / "data")
    segmentation = {**TINY_PARAMS["segmentation"], "additions": additions}
    params = write_params(tmp_path, {**TINY_PARAMS, "segmentation": segmentation})
    refused = runner.invoke(app, ["predict", "--supervision", "slice", "-p", str(params), "-w", str(copy)])
    assert refused.exit_code == 2 and "wsseg train-seg --supervision slice" in refused.output
    for command in (["train-seg", "--supervision", "slice"], ["predict", "--supervision", "slice"]):
        result = runner.invoke(app, [*command, "-p", str(params), "-w", str(copy)])
        assert result.exit_code == 0, result.output

    def first_layer_inputs(folder, supervision):
        return load_plugin(folder / "models" / f"fibrosis-{supervision}.pt").network.down[0][0].in_channels

    assert first_layer_inputs(workdir, "slice") == 1 and first_layer_inputs(copy, "slice") == channels
    assert first_layer_inputs(copy, "pixel") == 2


def test_drawn_train_walls_replace_the_predicted_wall_on_drawn_train_slices_only(pipeline_run, tmp_path):
    _, workdir, _ = pipeline_run
    copy = shutil.copytree(workdir, tmp_path / "data")
    myocardium = merge(TINY_PARAMS["myocardium"], {"additions": {"drawn_train_walls": True}})
    params = write_params(tmp_path, {**TINY_PARAMS, "myocardium": myocardium})
    result = runner.invoke(app, ["predict-myo", "-p", str(params), "-w", str(copy)])
    assert result.exit_code == 0, result.output
    data = read_cache(workdir / "cache" / "dataset.h5")
    predicted = read_cache(workdir / "cache" / "myocardium.h5")["probability"]
    drawn_run = read_cache(copy / "cache" / "myocardium.h5")["probability"]
    drawn = data["has_myocardium"] & (data["split"] == "train")
    assert drawn.any() and (~drawn).any()
    np.testing.assert_array_equal(drawn_run[drawn], data["myocardium_mask"][drawn])
    np.testing.assert_array_equal(drawn_run[~drawn], predicted[~drawn])
    assert not np.array_equal(drawn_run[drawn], predicted[drawn])


def test_the_slice_level_labeler_predicts_the_pseudo_labels_of_the_slices_the_classifier_flags(pipeline_run, tmp_path):
    _, workdir, _ = pipeline_run
    copy = shutil.copytree(workdir, tmp_path / "data")
    (copy / "models" / "fibrosis-slice.pt").unlink()  # the slice-level U-Net is not used
    raw = {
        **TINY_PARAMS,
        "pseudo_label": {"config": {"myocardium_threshold": None}},  # the tiny myocardium model stays below 0.5
        "segmentation": {**TINY_PARAMS["segmentation"], "additions": {"slice_level_labeler": True}},
    }
    result = runner.invoke(
        app, ["predict", "--supervision", "slice", "-p", str(write_params(tmp_path, raw)), "-w", str(copy)]
    )
    assert result.exit_code == 0, result.output

    params, ws = validate_params(raw), Workspace(copy)
    predictor = Predictor(params, ws, "slice")
    classifier = predictor.classifier

    class EveryOtherSliceFlagged:  # the tiny classifier's CAMs are negative and its scores below 0.5
        def generate(self, data):
            out = classifier.generate(data)
            return CAMOutput(np.ones_like(out.cams), np.arange(len(out.cams), dtype=np.float32) % 2, out.stack_scores)

    predictor.classifier = EveryOtherSliceFlagged()
    data, roi = read_artefact(params, ws, "dataset"), read_roi_data(params, ws)
    busiest = data["case_id"][roi.myocardium.sum(axis=(1, 2)).argmax()]  # the tiny myocardium model misses some cases
    rows = np.flatnonzero(data["case_id"] == busiest)
    predicted = predictor(
        data["images"][rows], data["case_id"][rows], data["original_shape"][rows], data["view"][rows]
    ).fibrosis_roi
    cam = np.ones_like(read_cache(copy / "cache" / "cams-slice.h5")["cams"][0])
    labeler = get_plugin("pseudo_labeler", params.pseudo_label.plugin)(params.plugin_config("pseudo_label"))
    expected = np.stack([labeler.label(cam, roi.images[i], roi.myocardium[i], j % 2 == 1) for j, i in enumerate(rows)])
    assert expected[1::2].any()
    np.testing.assert_array_equal(predicted > 0.5, expected)


@pytest.mark.parametrize("gate", ["classifier_gate", "case_gate"])
def test_the_classifier_gates_keep_fibrosis_where_the_classifier_flags_only(pipeline_run, gate):
    _, workdir, _ = pipeline_run
    segmentation = {**TINY_PARAMS["segmentation"], "additions": {gate: ["pixel"]}}
    gated_params, ws = validate_params({**TINY_PARAMS, "segmentation": segmentation}), Workspace(workdir)
    data = read_artefact(gated_params, ws, "dataset")
    rows = np.flatnonzero(data["split"] == "val")
    cases = data["case_id"][rows]
    flagged = np.arange(len(rows)) % 2 == 1  # slice gate: every other slice; case gate: one slice of the first case
    scores = flagged if gate == "classifier_gate" else np.arange(len(rows)) == 1
    kept = flagged if gate == "classifier_gate" else cases == cases[1]
    outputs = []
    for params in (validate_params(TINY_PARAMS), gated_params):
        predictor = Predictor(params, ws, "pixel")
        classifier = predictor.classifier

        class Flagging:
            def generate(self, data, classifier=classifier):
                out = classifier.generate(data)
                return CAMOutput(out.cams, scores.astype(np.float32), out.stack_scores)

        predictor.classifier = Flagging()
        outputs.append(predictor(data["images"][rows], cases, data["original_shape"][rows], data["view"][rows]))
    free, gated = (output.fibrosis_roi for output in outputs)
    assert 0 < kept.sum() < len(rows) and free[~kept].any() and not gated[~kept].any()
    np.testing.assert_array_equal(gated[kept], free[kept])


def first_val_case(pipeline_run) -> tuple[Workspace, tuple]:
    """The tiny run's workspace and a Predictor's arguments for the slices of its first val case."""
    _, workdir, _ = pipeline_run
    ws = Workspace(workdir)
    data = read_artefact(validate_params(TINY_PARAMS), ws, "dataset")
    rows = np.flatnonzero(data["case_id"] == data["case_id"][data["split"] == "val"][0])
    return ws, (data["images"][rows], data["case_id"][rows], data["original_shape"][rows], data["view"][rows])


def test_the_minimum_case_burden_clears_the_cases_of_its_own_level_only(pipeline_run):
    ws, args = first_val_case(pipeline_run)

    class Spot:  # fibrosis on one pixel of each slice: a burden far under 50 %
        def predict(self, inputs):
            spot = np.zeros((len(inputs), *inputs.shape[-2:]), np.float32)
            spot[:, 0, 0] = 0.9
            return spot

    class Everywhere:  # fibrosis on every pixel: a burden of 100 %
        def predict(self, inputs):
            return np.full((len(inputs), *inputs.shape[-2:]), 0.9, np.float32)

    def fibrosis(burden: dict, segmenter) -> np.ndarray:
        segmentation = {**TINY_PARAMS["segmentation"], "additions": {"min_case_burden": burden}}
        predictor = Predictor(validate_params({**TINY_PARAMS, "segmentation": segmentation}), ws, "pixel")
        find = predictor.myocardium  # the whole slice is wall
        predictor.myocardium = lambda images, cases: (np.full_like(find(images, cases)[0], 0.9), None)
        predictor.fibrosis = segmenter
        return predictor(*args).fibrosis_roi

    assert fibrosis({}, Spot()).any() and fibrosis({"slice": 50.0}, Spot()).any()
    assert not fibrosis({"pixel": 50.0}, Spot()).any()
    assert fibrosis({"pixel": 50.0}, Everywhere()).all()


def test_a_level_threshold_replaces_the_shared_one_for_its_own_level_only(pipeline_run):
    ws, args = first_val_case(pipeline_run)

    class Unsure:  # every pixel at 0.45: under the shared threshold of 0.5
        def predict(self, inputs):
            return np.full((len(inputs), *inputs.shape[-2:]), 0.45, np.float32)

    def fibrosis_masks(thresholds: dict) -> list[np.ndarray]:
        segmentation = {**TINY_PARAMS["segmentation"], "additions": {"level_thresholds": thresholds}}
        predictor = Predictor(validate_params({**TINY_PARAMS, "segmentation": segmentation}), ws, "pixel")
        predictor.fibrosis = Unsure()
        return predictor(*args).fibrosis_masks

    assert not any(mask.any() for mask in fibrosis_masks({}))
    assert not any(mask.any() for mask in fibrosis_masks({"slice": 0.4}))
    assert all(mask.any() for mask in fibrosis_masks({"pixel": 0.4}))


def test_mixed_supervision_trains_on_the_true_masks_where_they_are_drawn(pipeline_run):
    _, workdir, _ = pipeline_run
    segmentation = {**TINY_PARAMS["segmentation"], "additions": {"mixed_supervision": ["slice"]}}
    params, ws = validate_params({**TINY_PARAMS, "segmentation": segmentation}), Workspace(workdir)
    roi = read_roi_data(params, ws)
    index, masks = training_set(params, ws, roi, "slice")
    pseudo = read_artefact(params, ws, "pseudo_labels", "slice")["masks"]
    drawn = roi.dataset["has_mask"][index]
    assert drawn.any() and (~drawn).any()
    np.testing.assert_array_equal(masks[drawn], roi.fibrosis_masks(params.data.roi_size)[index[drawn]])
    np.testing.assert_array_equal(masks[~drawn], pseudo[~drawn])
    unmixed = training_set(validate_params(TINY_PARAMS), ws, roi, "slice")[1]
    np.testing.assert_array_equal(unmixed, pseudo)


def test_self_labels_are_the_predictions_on_positive_slices_with_true_masks_kept():
    class Disc:  # a centred disc (flip-symmetric), probability 0.9
        def predict(self, inputs):
            yy, xx = np.mgrid[:8, :8]
            disc = ((yy - 3.5) ** 2 + (xx - 3.5) ** 2 < 6).astype(np.float32) * 0.9
            return np.repeat(disc[None], len(inputs), axis=0)

    targets = np.zeros((3, 8, 8), np.float32)
    targets[2, 0, 0] = 1  # a true mask, kept
    labels = self_labels(
        Disc(),
        np.zeros((3, 1, 8, 8), np.float32),
        targets,
        np.array([True, False, True]),
        np.array([False, False, True]),
    )
    disc = Disc().predict(np.zeros((1, 1, 8, 8)))[0] > 0.5
    np.testing.assert_array_equal(labels[0], disc)
    assert not labels[1].any()
    np.testing.assert_array_equal(labels[2], targets[2])


def test_self_training_trains_the_level_again_on_its_labels_with_its_own_curves(pipeline_run, tmp_path, monkeypatch):
    _, workdir, _ = pipeline_run
    shutil.copytree(workdir, tmp_path / "data")
    segmentation = {**TINY_PARAMS["segmentation"], "additions": {"self_training": {"slice": 1}}}
    params, ws = validate_params({**TINY_PARAMS, "segmentation": segmentation}), Workspace(tmp_path / "data")
    calls = []

    def everywhere(segmenter, inputs, targets, positive, kept):  # round 1 learns fibrosis everywhere
        calls.append(positive)
        return np.ones_like(targets)

    monkeypatch.setattr("wsseg.stages.fibrosis.self_labels", everywhere)
    path = train_fibrosis(params, ws, "slice", "cpu")
    index = read_artefact(params, ws, "pseudo_labels", "slice")["index"]
    assert len(calls) == 1
    np.testing.assert_array_equal(calls[0], read_roi_data(params, ws).dataset["slice_label"][index] == 1)
    assert any(ws.curves(path.stem + "-round1").iterdir()) and not list(path.parent.glob("*.resume.pt"))
    inputs = np.random.default_rng(0).random((2, 1, 32, 32)).astype(np.float32)
    once, twice = load_plugin(workdir / path.relative_to(tmp_path / "data")), load_plugin(path)
    assert twice.predict(inputs).mean() > once.predict(inputs).mean()


def test_run_all_trains_no_slice_level_unet_when_the_labeler_predicts(tmp_path):
    def names(raw):
        return [stage.command + stage.option(key) for stage, key in planned_steps(validate_params(raw))]

    assert "train-seg --supervision slice" in names({})
    steps = names({"segmentation": {"additions": {"slice_level_labeler": True}}})
    assert "train-seg --supervision slice" not in steps and "predict --supervision slice" in steps
    assert {"train-seg --supervision pixel", "train-seg --supervision stack"} <= set(steps)
