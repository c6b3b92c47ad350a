"""Ablations and options on the EMIDEC val split: one params switch per row, against the benchmark run.

Run after ``bash benchmarks/emidec/run.sh`` (from the repository root)::

    python benchmarks/emidec/ablations.py [NAME ...]

``WSSEG_SEED=1`` runs them against the seed-1 benchmark (``WSSEG_SEED=1 bash benchmarks/emidec/run.sh``).

Each variant is the benchmark's params.yaml with one override. It gets its own workspace under
``data/emidec/ablations/<name>/``; every artefact whose lineage (config hash) equals the benchmark
run's is hard-linked from it instead of recomputed, so e.g. a pseudo-label switch retrains only the
fibrosis U-Net; a stale one (made by other params or another wsseg) stops the variant before it
starts. Results go to ``data/emidec/ablations.json`` and a markdown table on stdout.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

from seeded_run import PARAMS, SEED, WORKDIR  # benchmarks/emidec/, beside this script

from wsseg.artefacts import check_current, read_artefact
from wsseg.config import Params, merge, read_mapping, validate_params
from wsseg.errors import CacheError
from wsseg.pipeline import Stage, artefact_path, lineage, planned_steps, run_stage
from wsseg.reference import REFERENCES
from wsseg.stages.evaluate import evaluate
from wsseg.stages.report import cam_figure, example_slices
from wsseg.training import resolve_device
from wsseg.workspace import Workspace

LEVELS = ("pixel", "slice", "stack")
OWN_STAGES = (
    "train-heart",
    "train-myo",
    "predict-myo",
    "train-cam",
    "predict-cam",
    "pseudo-label",
    "train-seg",
    "predict",
)

# name -> (supervision level, or the LEVELS tuple for all three from one run; overrides of the benchmark params)
VARIANTS: dict[str, tuple[str | tuple[str, ...], dict]] = {
    "myocardium from the 12 pixel-labelled cases only (paper-proportional)": (
        "pixel",
        {"myocardium": {"additions": {"myocardium_only_masks": False}}},
    ),
    "2D wall model, without the slices below and above (the earlier profile)": (
        LEVELS,
        {"myocardium": {"additions": {"neighbours": False}}},
    ),
    "heart box margin 0.3 (not 0.2), the wall model's crops too": (LEVELS, {"heart": {"margin": 0.3}}),
    "wall U-Net depth 4 (the previous profile)": (LEVELS, {"myocardium": {"config": {"depth": 4}}}),
    "option: wall U-Net trained 150 epochs (not 100)": (LEVELS, {"myocardium": {"config": {"epochs": 150}}}),
    "option: scar painted into the slices below and above too": (
        LEVELS,
        {"myocardium": {"config": {"scar_painting_channels": 3}}},
    ),
    "no drawn train walls, found-heart margin or minimum window (the previous profile)": (
        LEVELS,
        {
            "myocardium": {"additions": {"drawn_train_walls": False}},
            "heart": {"additions": {"found_margin": None, "min_window": 0.0}},
        },
    ),
    "drawn train walls without the found-heart margin and minimum window": (
        LEVELS,
        {"heart": {"additions": {"found_margin": None, "min_window": 0.0}}},
    ),
    "no self-attention": ("slice", {"cam": {"config": {"attention": False}}}),
    "pool divisor: myocardium area": ("slice", {"cam": {"config": {"pool_divisor": "myocardium"}}}),
    "no Multi-Otsu": ("slice", {"pseudo_label": {"config": {"otsu": False}}}),
    "no DenseCRF": ("slice", {"pseudo_label": {"config": {"crf": False}}}),
    "CAM not restricted to the myocardium on the image grid (the paper)": (
        "slice",
        {"pseudo_label": {"config": {"myocardium_threshold": None}}},
    ),
    "weak U-Nets on the image only (the paper)": ("slice", {"segmentation": {"additions": {"myocardium_channel": []}}}),
    "weak U-Nets on the image only (the paper), stack-level": (
        "stack",
        {"segmentation": {"additions": {"myocardium_channel": []}}},
    ),
    "option: stack classifier trained on its slices": ("stack", {"cam": {"config": {"stack_training": "slices"}}}),
    "option: stack classifier, multiple-instance (a stack is its highest slice)": (
        "stack",
        {"cam": {"config": {"stack_training": "mil"}}},
    ),
    "option: stack classifier, 8 stacks a batch": ("stack", {"cam": {"config": {"stack_batch_size": 8}}}),
    "stack classifier trained 40 epochs (the previous profile)": (
        "stack",
        {"cam": {"overrides": {"stack": {"epochs": 40}}}},
    ),
    "option: weak U-Nets as ensembles of 3 (mean of 3 seeds)": (
        ("slice", "stack"),
        {"segmentation": {"overrides": {"slice": {"ensemble": 3}, "stack": {"ensemble": 3}}}},
    ),
    "option: classifiers as ensembles of 3 (their mean CAM, 3 seeds)": (
        ("slice", "stack"),
        {"cam": {"config": {"ensemble": 3}}},
    ),
    "option: half the training walls lose the scar next to the cavity": (
        LEVELS,
        {"segmentation": {"additions": {"wall_scar_dropout": {"pixel": 0.5, "slice": 0.5, "stack": 0.5}}}},
    ),
    "option: fibrosis U-Nets see the slices below and above (2.5D)": (
        LEVELS,
        {"segmentation": {"additions": {"neighbours": list(LEVELS)}}},
    ),
    "option: slice-level fibrosis from the pseudo-labeler": (
        "slice",
        {"segmentation": {"additions": {"slice_level_labeler": True}}},
    ),
    "option: mixed supervision (true masks of the 12 pixel-labelled cases + pseudo-labels)": (
        "slice",
        {"segmentation": {"additions": {"mixed_supervision": ["slice"]}}},
    ),
    "stack-level U-Net on pseudo-labels only, without the 12 true masks (the paper)": (
        "stack",
        {"segmentation": {"additions": {"mixed_supervision": []}}},
    ),
    "option: fibrosis only on slices the slice classifier flags": (
        "slice",
        {"segmentation": {"additions": {"classifier_gate": ["slice"]}}},
    ),
    "option: fibrosis only on slices the slice classifier flags, stack-level": (
        "stack",
        {"segmentation": {"additions": {"classifier_gate": ["stack"]}}},
    ),
    "option: fibrosis only on slices the slice classifier flags, pixel-level": (
        "pixel",
        {"segmentation": {"additions": {"classifier_gate": ["pixel"]}}},
    ),
    "option: fibrosis only in cases the slice classifier flags": (
        "slice",
        {"segmentation": {"additions": {"case_gate": ["slice"]}}},
    ),
    "option: fibrosis only in cases the slice classifier flags, stack-level": (
        "stack",
        {"segmentation": {"additions": {"case_gate": ["stack"]}}},
    ),
    "option: fibrosis only in cases the slice classifier flags, pixel-level": (
        "pixel",
        {"segmentation": {"additions": {"case_gate": ["pixel"]}}},
    ),
    "option: lesions under 10 ROI pixels dropped": (
        "slice",
        {"segmentation": {"additions": {"min_lesion_pixels": 10}}},
    ),
    "option: lesions under 10 ROI pixels dropped, stack-level": (
        "stack",
        {"segmentation": {"additions": {"min_lesion_pixels": 10}}},
    ),
    "option: lesions under 10 ROI pixels dropped, pixel-level": (
        "pixel",
        {"segmentation": {"additions": {"min_lesion_pixels": 10}}},
    ),
    "option: slice-level cases under 2.5 % predicted scar burden cleared": (
        "slice",
        {"segmentation": {"additions": {"min_case_burden": {"slice": 2.5}}}},
    ),
    "option: pseudo-labels inside the wall above 0.3 (not 0.5)": (
        ("slice", "stack"),
        {"pseudo_label": {"config": {"myocardium_threshold": 0.3}}},
    ),
    "slice-level pseudo-labels from three Otsu classes (the previous profile)": (
        "slice",
        {"pseudo_label": {"overrides": {"slice": {"otsu_classes": 3}}}},
    ),
    "option: stack-level pseudo-labels from two Otsu classes (not 3)": (
        "stack",
        {"pseudo_label": {"overrides": {"stack": {"otsu_classes": 2}}}},
    ),
    "option: one round of self-training": ("slice", {"segmentation": {"additions": {"self_training": {"slice": 1}}}}),
    "option: CAMs averaged over scales 1 and 1.5": (("slice", "stack"), {"cam": {"additions": {"scales": [1.0, 1.5]}}}),
    "option: stack-level CAMs over scales 1 and 1.5, pseudo-labels inside the wall above 0.3": (
        "stack",
        {"cam": {"additions": {"scales": [1.0, 1.5]}}, "pseudo_label": {"config": {"myocardium_threshold": 0.3}}},
    ),
    "64 px regions of interest (CAM 16x16), the earlier profile": ("slice", {"data": {"roi_size": 64}}),
    "option: CAM test-time flips": ("slice", {"cam": {"additions": {"flips": True}}}),
    "option: CAM test-time flips, stack-level": ("stack", {"cam": {"additions": {"flips": True}}}),
    "option: fibrosis restricted to the predicted myocardium": (
        "slice",
        {"segmentation": {"additions": {"restrict_to_myocardium": True}}},
    ),
    "without ROI intensity normalisation": ("slice", {"data": {"additions": {"roi_normalise": False}}}),
    "without ROI intensity normalisation, pixel-level": ("pixel", {"data": {"additions": {"roi_normalise": False}}}),
    "without test-time flips": (
        "slice",
        {"myocardium": {"additions": {"flips": False}}, "segmentation": {"additions": {"flips": False}}},
    ),
    "without test-time flips, pixel-level": (
        "pixel",
        {"myocardium": {"additions": {"flips": False}}, "segmentation": {"additions": {"flips": False}}},
    ),
    "slice-level U-Nets 8 channels wide (the previous profile)": (
        "slice",
        {"segmentation": {"overrides": {"slice": {"base_channels": 8}}}},
    ),
    "option: slice-level U-Nets as ensembles of 5 (not 3)": (
        "slice",
        {"segmentation": {"overrides": {"slice": {"ensemble": 5}}}},
    ),
    "pixel-level U-Net 8 channels wide (the previous profile)": (
        "pixel",
        {"segmentation": {"overrides": {"pixel": {"base_channels": 8}}}},
    ),
    "option: stack-level U-Nets 16 channels wide (not 8)": (
        "stack",
        {"segmentation": {"overrides": {"stack": {"base_channels": 16}}}},
    ),
    "option: fibrosis U-Nets trained half as long (pixel 80 epochs, weak levels 20)": (
        LEVELS,
        {"segmentation": {"overrides": {"pixel": {"epochs": 80}, "slice": {"epochs": 20}, "stack": {"epochs": 20}}}},
    ),
    "option: pixel-level U-Net trained 80 epochs (not 160)": (
        "pixel",
        {"segmentation": {"overrides": {"pixel": {"epochs": 80}}}},
    ),
    "option: slice-level U-Nets trained with random gamma and a bias field (as the wall's)": (
        "slice",
        {"segmentation": {"overrides": {"slice": {"gamma": 0.5, "bias_field": 0.3}}}},
    ),
    "option: fibrosis U-Nets in bfloat16 (mixed precision)": (
        LEVELS,
        {"segmentation": {"config": {"mixed_precision": True}}},
    ),
    "option: fibrosis U-Nets on Dice + cross-entropy": (LEVELS, {"segmentation": {"config": {"bce_weight": 1}}}),
    "option: slice-level U-Nets on Dice + cross-entropy": (
        "slice",
        {"segmentation": {"overrides": {"slice": {"bce_weight": 1}}}},
    ),
    "option: classifiers in bfloat16 (mixed precision)": (
        ("slice", "stack"),
        {"cam": {"config": {"mixed_precision": True}}},
    ),
    "option: fibrosis U-Net depth 5": ("slice", {"segmentation": {"config": {"depth": 5}}}),
    "option: fibrosis U-Net depth 5, pixel-level": ("pixel", {"segmentation": {"config": {"depth": 5}}}),
    "pixel-level U-Net trained 40 epochs": ("pixel", {"segmentation": {"overrides": {"pixel": {"epochs": 40}}}}),
    "without test-time flips, pixel-level U-Net trained 40 epochs (the faithful default)": (
        "pixel",
        {
            "myocardium": {"additions": {"flips": False}},
            "segmentation": {"additions": {"flips": False}, "overrides": {"pixel": {"epochs": 40}}},
        },
    ),
}

VARIANTS.update(
    {
        f"option: {level}-level fibrosis threshold {threshold}": (
            level,
            {"segmentation": {"additions": {"level_thresholds": {level: threshold}}}},
        )
        for level in LEVELS
        for threshold in (0.3, 0.4, 0.5)
    }
)


def workspace(name: str) -> Workspace:
    return Workspace(WORKDIR / "ablations" / name.replace(" ", "-").replace(":", ""))


def attention_figure(base_raw: dict) -> Path | None:
    """CAMs of the benchmark's slice classifier beside those of the one trained without attention."""
    params, base = validate_params(base_raw), Workspace(WORKDIR)
    data = read_artefact(params, base, "dataset")
    sources = {"with attention": base.cams("slice"), "no attention": workspace("no self-attention").cams("slice")}
    return cam_figure(params, base, data, example_slices(data, ["val"], 4), base.report / "cams-attention.png", sources)


def run_variant(name: str, supervisions: tuple[str, ...], overrides: dict, base_raw: dict, device: str) -> dict:
    """Run one variant; its result rows, one per supervision level, keyed by row name."""
    gated = {"classifier_gate", "case_gate"} & set(overrides.get("segmentation", {}).get("additions", {}))
    if "stack" not in supervisions:
        levels = ["slice"]
    else:
        levels = ["stack"] if supervisions == ("stack",) and not gated else ["slice", "stack"]
    raw = merge(
        base_raw, merge(overrides, {"cam": {"levels": levels}, "segmentation": {"supervisions": list(supervisions)}})
    )
    params, base_params = validate_params(raw), validate_params(base_raw)
    ws, base_ws = workspace(name), Workspace(WORKDIR)
    started = time.perf_counter()
    for stage, key, source in _steps(name, params, base_params, base_ws):
        if source is not None:
            path = artefact_path(ws, stage.makes, key)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.unlink(missing_ok=True)
            os.link(source, path)
        else:
            run_stage(stage, params, ws, key, device)
    metrics = json.loads(evaluate(params, ws).read_text())
    seconds = round(time.perf_counter() - started)
    rows = {}
    for supervision in supervisions:
        fibrosis = metrics["fibrosis"][supervision]
        row_name = name if len(supervisions) == 1 else f"{name}, {supervision}-level"
        rows[row_name] = {
            "name": row_name,
            "supervision": supervision,
            "overrides": overrides,
            "myocardium_dice": metrics["myocardium"]["dice"],
            "fibrosis_dice": fibrosis["dice"],
            "fibrosis_free_flagged": f"{fibrosis['fibrosis_free_flagged']}/{fibrosis['fibrosis_free_cases']}",
            "classification": metrics["classification"].get(supervision),
            "seconds": seconds,
        }
    return rows


def _steps(
    name: str, params: Params, base_params: Params, base_ws: Workspace
) -> list[tuple[Stage, str | None, Path | None]]:
    """The variant's steps up to ``predict``, each with the benchmark run's artefact that serves it (or None).

    One serves where its lineage is the variant's; every such artefact is checked current (a plugin
    config key added since the run changes every lineage from its stage on) before anything runs.
    """
    steps = []
    for stage, key in planned_steps(params):
        if stage.command in ("evaluate", "report"):
            continue
        base_path, expected = artefact_path(base_ws, stage.makes, key), lineage(base_params, stage.makes, key)
        linked = lineage(params, stage.makes, key) == expected and base_path.exists()
        if linked:
            try:
                check_current(base_params, base_ws, stage.makes, key)
            except CacheError as error:
                raise SystemExit(f"the benchmark run is stale: {error} Rerun benchmarks/emidec/run.sh.") from None
        elif stage.command not in OWN_STAGES:
            raise SystemExit(f"{name}: {base_path} must come from the benchmark run; run benchmarks/emidec/run.sh")
        steps.append((stage, key, base_path if linked else None))
    return steps


def main(names: list[str]) -> None:
    if {"-h", "--help"} & set(names):
        print(__doc__, "Variants:", *VARIANTS, sep="\n  ")
        return
    unknown = [name for name in names if name not in VARIANTS]
    if unknown:
        sys.exit(f"unknown variant {unknown[0]!r}; the variants are:\n  " + "\n  ".join(VARIANTS))
    base_raw = merge(read_mapping(PARAMS), {"seed": SEED})
    device = str(resolve_device(base_raw.get("device", "auto")))
    results_path = WORKDIR / "ablations.json"
    results = json.loads(results_path.read_text()) if results_path.exists() else {}
    for name in names or VARIANTS:
        supervision, overrides = VARIANTS[name]
        print(f"== {name}", flush=True)
        supervisions = (supervision,) if isinstance(supervision, str) else supervision
        results.update(run_variant(name, supervisions, overrides, base_raw, device))
        results_path.write_text(json.dumps(results, indent=2))
    if "no self-attention" in results:
        print(f"figure: {attention_figure(base_raw)}")
    print(markdown_table(json.loads((WORKDIR / "metrics.json").read_text()), results))


def markdown_table(baseline: dict, results: dict) -> str:
    """The benchmark's row for each supervision used, then one row per variant."""
    header = (
        "| variant | supervision | myocardium Dice | fibrosis Dice | fibrosis-free flagged | slice AUROC | minutes |"
    )
    lines = [header, "|---|---|---|---|---|---|---|"]
    myo = baseline["myocardium"]["dice"]
    for supervision in dict.fromkeys(row["supervision"] for row in results.values()):
        fib = baseline["fibrosis"][supervision]
        auroc = baseline["classification"]["slice"]["slice_auroc"] if supervision == "slice" else None
        lines.append(
            _row(
                "benchmark",
                supervision,
                myo,
                fib["dice"],
                f"{fib['fibrosis_free_flagged']}/{fib['fibrosis_free_cases']}",
                auroc,
                None,
            )
        )
    for name, reference in baseline.get("label_free", {}).items():
        flagged = f"{reference['fibrosis_free_flagged']}/{reference['fibrosis_free_cases']}"
        lines.append(_row(REFERENCES[name], "none", myo, reference["dice"], flagged, None, None))
    for row in results.values():
        auroc = (row["classification"] or {}).get("slice_auroc")
        myo_row = row.get("myocardium_dice", myo)
        lines.append(
            _row(
                row["name"],
                row["supervision"],
                myo_row,
                row["fibrosis_dice"],
                row["fibrosis_free_flagged"],
                auroc,
                row["seconds"] / 60,
            )
        )
    return "\n".join(lines)


def _row(
    name: str, supervision: str, myocardium: dict, dice: dict, flagged: str, auroc: float | None, minutes: float | None
) -> str:
    auroc_text = f"{auroc:.3f}" if auroc is not None else ""
    minutes_text = f"{minutes:.1f}" if minutes is not None else ""
    figures = f"{myocardium['mean']:.3f} | {dice['mean']:.3f} ± {dice['std']:.3f}"
    return f"| {name} | {supervision} | {figures} | {flagged} | {auroc_text} | {minutes_text} |"


if __name__ == "__main__":
    main(sys.argv[1:])
