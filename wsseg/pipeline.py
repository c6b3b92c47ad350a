"""The pipeline, described once: each stage, what it makes, what it reads, which params keys it uses.

:data:`STAGES` is the only place the pipeline is written down. From it come

- the order of ``wsseg run-all`` (:func:`planned_steps`),
- the lineage hash stamped on every artefact (:func:`lineage`): the stage's own params values
  and the lineages of the artefacts it reads, so a change anywhere upstream makes every later
  cache stale, and a change to one level's settings only that level's,
- the command that rebuilds an artefact, named in "stale cache" errors (:func:`rerun_command`),
- ``dvc.yaml`` (:func:`dvc_stages`, written by ``wsseg dvc``).

An option added later is one params key in :mod:`wsseg.config` and one entry in a stage's
``params`` here. A params key ending in ``[key]`` means that level's entry of the setting (a
mapping's value, or whether a list holds the level), so it changes only that level's lineage;
a key ending in ``.config`` of a plugin section means the plugin's validated config, defaults
filled in, so a changed plugin default also makes its artefacts stale. An ``additions`` key (an
option beyond the paper, off by default) counts only when it is not at its default: adding an
option keeps every artefact made without it.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from wsseg.config import PLUGIN_KINDS, Params
from wsseg.hashing import config_hash
from wsseg.workspace import Workspace

__all__ = [
    "STAGES",
    "Stage",
    "artefact_path",
    "dvc_stages",
    "dvc_yaml",
    "lineage",
    "planned_steps",
    "producer",
    "rerun_command",
    "run_stage",
    "stage_named",
]

Ref = tuple[str, "str | None"]
"""An artefact and its level or supervision (``None`` for artefacts made once)."""


def _once(params: Params) -> list[str | None]:
    return [None]


def _nothing(params: Params, key: str | None) -> list[Ref]:
    return []


@dataclass(frozen=True)
class Stage:
    """One step of the pipeline: a ``wsseg`` subcommand and a DVC stage."""

    command: str
    """The subcommand, e.g. ``train-cam``."""
    run: str
    """``module:function`` called as ``function(params, ws[, key][, device])``; returns the path it wrote."""
    makes: str
    """The artefact it writes: a :class:`~wsseg.workspace.Workspace` attribute (a method for per-key artefacts)."""
    summary: str
    """What the artefact is, for messages (``{key}`` is the level or supervision)."""
    kind: Literal["folder", "cache", "model", "metrics"]
    per: Literal["level", "supervision"] | None = None
    """Whether the stage runs once per CAM level or fibrosis supervision (``--level`` / ``--supervision``)."""
    params: tuple[str, ...] = ()
    """The params keys the stage reads itself."""
    upstream: Callable[[Params, str | None], list[Ref]] = _nothing
    """The artefacts it reads."""
    instances: Callable[[Params], list[str | None]] = _once
    """The keys that ``run-all`` runs it for (none: skipped)."""
    plugin: str | None = None
    """The params section whose plugin a training stage trains."""
    device: bool = False
    """Whether it takes ``--device``."""
    processes: bool = False
    """Whether it runs on the torchrun processes of params' ``distributed`` section."""
    reads_source: bool = False
    """Whether it reads the dataset folder, which no lineage covers (``run-all`` always runs it)."""
    extra_outs: Callable[[Workspace, str | None], list[Path]] = field(default=lambda ws, key: [])
    """Files it writes beside its artefact (kept out of DVC's cache); a model's training curves are implied."""

    def option(self, key: str | None) -> str:
        """The command-line option that selects ``key`` (empty for stages made once)."""
        return f" --{self.per} {key}" if self.per else ""


_ROI: tuple[Ref, ...] = (("dataset", None), ("myocardium", None))
"""What every stage on the regions of interest reads."""


def _levels(params: Params) -> list[str | None]:
    return list(params.cam.levels)


def _pseudo_labelled_levels(params: Params) -> list[str | None]:
    return [level for level in params.cam.levels if level in params.segmentation.supervisions]


def _supervisions(params: Params) -> list[str | None]:
    return list(params.segmentation.supervisions)


def _trained_supervisions(params: Params) -> list[str | None]:
    return [s for s in params.segmentation.supervisions if not params.predicts_with_labeler(s)]


def _fibrosis_labels(params: Params, supervision: str | None) -> list[Ref]:
    """What a fibrosis U-Net learns from: the real masks (pixel) or its level's pseudo-labels."""
    return [*_ROI] if supervision == "pixel" else [*_ROI, ("pseudo_labels", supervision)]


def _predictor(params: Params, supervision: str | None) -> list[Ref]:
    """What ``predict`` runs: the level's fibrosis model (or the labeler on the slice CAMs) and the slice classifier.

    It finds the myocardium and the ROIs again as ``predict-myo`` does; depending on that cache
    carries their settings.
    """
    fibrosis: Ref = (
        ("pseudo_labels", "slice")
        if params.predicts_with_labeler(str(supervision))
        else ("fibrosis_model", supervision)
    )
    classifier: list[Ref] = [("cam_model", "slice")] if "slice" in params.cam.levels else []
    return [*_ROI, fibrosis, *classifier]


def _evaluated(params: Params, key: str | None) -> list[Ref]:
    return [
        ("dataset", None),
        *(("predictions", s) for s in params.segmentation.supervisions),
        *(("cams", level) for level in params.cam.levels),
    ]


STAGES: tuple[Stage, ...] = (
    Stage(
        command="synth",
        run="wsseg.stages.ingest:synth",
        makes="synthetic",
        summary="phantoms",
        kind="folder",
        params=("data.synthetic",),
        instances=lambda p: [None] if p.data.source == "synthetic" else [],
    ),
    Stage(
        command="ingest",
        run="wsseg.stages.ingest:ingest",
        makes="dataset",
        summary="dataset cache",
        kind="cache",
        params=("data.source", "data.field_of_view", "data.image_size", "data.pixel_spacing", "data.grid_spacing"),
        upstream=lambda p, key: [("synthetic", None)] if p.data.source == "synthetic" else [],
        reads_source=True,
    ),
    Stage(
        command="train-heart",
        run="wsseg.stages.myocardium:train_heart",
        makes="heart_model",
        summary="heart finder",
        kind="model",
        params=(
            "seed",
            "heart.plugin",
            "heart.config",
            "heart.image_size",
            "myocardium.additions.myocardium_only_masks",
        ),
        upstream=lambda p, key: [("dataset", None)],
        plugin="heart",
        device=True,
        processes=True,
    ),
    Stage(
        command="train-myo",
        run="wsseg.stages.myocardium:train_myocardium",
        makes="myocardium_model",
        summary="myocardium model",
        kind="model",
        params=(
            "seed",
            "myocardium.plugin",
            "myocardium.config",
            "myocardium.roi_size",
            "heart.margin",
            "data.additions.roi_normalise",
            "myocardium.additions.myocardium_only_masks",
            "myocardium.additions.cavity_class",
            "myocardium.additions.neighbours",
        ),
        upstream=lambda p, key: [("dataset", None)],
        plugin="myocardium",
        device=True,
        processes=True,
    ),
    Stage(
        command="predict-myo",
        run="wsseg.stages.myocardium:predict_myocardium",
        makes="myocardium",
        summary="myocardium cache",
        kind="cache",
        params=(
            "heart.threshold",
            "heart.zoom_in",
            "heart.additions.found_margin",
            "heart.additions.min_window",
            "myocardium.threshold",
            "myocardium.additions.flips",
            "myocardium.additions.drawn_train_walls",
            "data.roi_size",
            "data.roi_margin",
            "data.additions.roi_normalise",
        ),
        upstream=lambda p, key: [("dataset", None), ("heart_model", None), ("myocardium_model", None)],
        device=True,
        processes=True,
    ),
    Stage(
        command="train-cam",
        run="wsseg.stages.cams:train_cam",
        makes="cam_model",
        summary="{key}-level CAM model",
        kind="model",
        per="level",
        params=("seed", "cam.plugin", "cam.config", "cam.overrides[key]"),
        upstream=lambda p, key: [*_ROI],
        instances=_levels,
        plugin="cam",
        device=True,
        processes=True,
    ),
    Stage(
        command="predict-cam",
        run="wsseg.stages.cams:predict_cams",
        makes="cams",
        summary="{key}-level CAMs",
        kind="cache",
        per="level",
        params=("cam.additions.flips", "cam.additions.scales"),
        upstream=lambda p, key: [*_ROI, ("cam_model", key)],
        instances=_levels,
        device=True,
        processes=True,
    ),
    Stage(
        command="pseudo-label",
        run="wsseg.stages.pseudo_labels:pseudo_label",
        makes="pseudo_labels",
        summary="{key}-level pseudo-labels",
        kind="cache",
        per="level",
        params=("pseudo_label.plugin", "pseudo_label.config", "pseudo_label.overrides[key]"),
        upstream=lambda p, key: [*_ROI, ("cams", key)],
        instances=_pseudo_labelled_levels,
        processes=True,
    ),
    Stage(
        command="train-seg",
        run="wsseg.stages.fibrosis:train_fibrosis",
        makes="fibrosis_model",
        summary="{key}-level fibrosis model",
        kind="model",
        per="supervision",
        params=(
            "seed",
            "segmentation.plugin",
            "segmentation.config",
            "segmentation.overrides[key]",
            "segmentation.additions.myocardium_channel[key]",
            "segmentation.additions.neighbours[key]",
            "segmentation.additions.mixed_supervision[key]",
            "segmentation.additions.self_training[key]",
            "segmentation.additions.wall_scar_dropout[key]",
        ),
        upstream=_fibrosis_labels,
        instances=_trained_supervisions,
        plugin="segmentation",
        device=True,
        processes=True,
    ),
    Stage(
        command="predict",
        run="wsseg.stages.predict:predict_dataset",
        makes="predictions",
        summary="{key}-level predictions",
        kind="cache",
        per="supervision",
        params=(
            "segmentation.threshold",
            "segmentation.additions.restrict_to_myocardium",
            "segmentation.additions.flips",
            "segmentation.additions.classifier_gate[key]",
            "segmentation.additions.case_gate[key]",
            "segmentation.additions.min_lesion_pixels",
            "segmentation.additions.min_case_burden[key]",
            "segmentation.additions.level_thresholds[key]",
            "cam.additions.flips",
            "cam.additions.scales",
        ),
        upstream=_predictor,
        instances=_supervisions,
        device=True,
        processes=True,
    ),
    Stage(
        command="evaluate",
        run="wsseg.stages.evaluate:evaluate",
        makes="metrics",
        summary="metrics",
        kind="metrics",
        params=("evaluate",),
        upstream=_evaluated,
        extra_outs=lambda ws, key: [ws.per_case_metrics],
    ),
    Stage(
        command="report",
        run="wsseg.stages.report:report",
        makes="report",
        summary="report",
        kind="folder",
        upstream=lambda p, key: [("metrics", None)],
    ),
)

_BY_COMMAND = {stage.command: stage for stage in STAGES}
_BY_ARTEFACT = {stage.makes: stage for stage in STAGES}


def stage_named(command: str) -> Stage:
    """The stage run by ``wsseg command``."""
    return _BY_COMMAND[command]


def producer(artefact: str) -> Stage:
    """The stage that writes ``artefact``."""
    return _BY_ARTEFACT[artefact]


def artefact_path(ws: Workspace, artefact: str, key: str | None = None) -> Path:
    """Where ``artefact`` (of level or supervision ``key``) lives in ``ws``."""
    where = getattr(ws, artefact)
    return where(key) if producer(artefact).per else where


def rerun_command(artefact: str, key: str | None = None) -> str:
    """The command that rebuilds ``artefact``, e.g. ``wsseg train-cam --level slice``."""
    made_by = producer(artefact)
    return f"wsseg {made_by.command}{made_by.option(key)}"


def run_stage(made_by: Stage, params: Params, ws: Workspace, key: str | None = None, device: str = "cpu") -> Path:
    """Run ``made_by`` for ``key``: its function gets the key and the device when it takes them."""
    module, _, function = made_by.run.partition(":")
    run = getattr(importlib.import_module(module), function)
    return run(params, ws, *([key] if made_by.per else []), *([device] if made_by.device else []))


def planned_steps(params: Params) -> list[tuple[Stage, str | None]]:
    """Every (stage, key) that ``run-all`` runs for ``params``, in order."""
    return [(stage, key) for stage in STAGES for key in stage.instances(params)]


def _value(params: Params, name: str, key: str | None) -> Any:
    """The value of params key ``name`` as a lineage sees it (see the module docstring)."""
    path, _, selector = name.partition("[")
    section, _, rest = path.partition(".")
    if rest == "config" and section in PLUGIN_KINDS:
        return params.plugin_config(section).model_dump(mode="json")
    value: Any = params.model_dump(mode="json")
    for part in path.split("."):
        value = value[part]
    if selector:
        value = value.get(key) if isinstance(value, dict) else key in value
    return value


_DEFAULTS = Params()


def lineage(params: Params, artefact: str, key: str | None = None) -> str:
    """The hash of everything ``artefact`` (for level or supervision ``key``) depends on."""
    made_by = producer(artefact)
    upstream = [lineage(params, name, item) for name, item in made_by.upstream(params, key)]
    own = [_value(params, name, key) for name in made_by.params if ".additions." not in name]
    additions = {
        name: value
        for name in made_by.params
        if ".additions." in name and (value := _value(params, name, key)) != _value(_DEFAULTS, name, key)
    }
    return config_hash(artefact, key, upstream, own, additions)


def _dvc_entry(
    made_by: Stage, params: Params, ws: Workspace, params_file: str, key: str | None, shown: str | None
) -> dict[str, Any]:
    """One DVC stage for ``key``, with ``shown`` (the key, or DVC's ``${item}``) in its command and paths."""

    def as_shown(item: str | None) -> str | None:
        return shown if item is not None and item == key else item

    default = params_file == "params.yaml"
    entry: dict[str, Any] = {
        "cmd": f"wsseg {made_by.command}{made_by.option(shown)}" + ("" if default else f" --params {params_file}")
    }
    deps = [str(artefact_path(ws, name, as_shown(item))) for name, item in made_by.upstream(params, key)]
    if made_by.command == "ingest" and params.data.source != "synthetic":
        deps.append(params.data.source)
    if deps:
        entry["deps"] = deps
    keys = list(dict.fromkeys(name.partition("[")[0] for name in made_by.params))
    if keys:
        entry["params"] = keys if default else [{params_file: keys}]
    output = str(artefact_path(ws, made_by.makes, shown))
    extra = [str(path) for path in made_by.extra_outs(ws, shown)]
    if made_by.kind == "model":
        extra.append(str(ws.curves(Path(output).stem)))  # train_model's monitor writes them there
    if made_by.kind == "metrics":
        entry["metrics"] = [{output: {"cache": False}}]
        entry["outs"] = [{path: {"cache": False}} for path in extra]
    else:
        entry["outs"] = [output, *extra]
    return entry


def _with_item(value: Any, key: str | None) -> Any:
    """``value`` with DVC's ``${item}`` replaced by ``key`` in every string."""
    if isinstance(value, dict):
        return {_with_item(k, key): _with_item(v, key) for k, v in value.items()}
    if isinstance(value, list):
        return [_with_item(v, key) for v in value]
    return value.replace("${item}", str(key)) if isinstance(value, str) else value


def dvc_stages(params: Params, ws: Workspace, params_file: str = "params.yaml") -> dict[str, Any]:
    """The content of ``dvc.yaml``: the steps of :func:`planned_steps` as DVC stages.

    A stage made per level or supervision becomes one ``foreach`` stage when its instances differ
    only in the key (DVC names them ``<command>@<key>``), else one stage per key
    (``<command>-<key>``). Each lists its upstream artefacts as dependencies, its params keys (a
    ``[key]`` selection tracks the whole setting), its artefact and training curves as outputs,
    and the metrics file as a DVC metric.
    """
    stages: dict[str, Any] = {}
    plots = []
    for made_by in STAGES:
        keys = made_by.instances(params)
        if not keys:
            continue
        if made_by.per is None:
            stages[made_by.command] = _dvc_entry(made_by, params, ws, params_file, None, None)
        else:
            exact = {key: _dvc_entry(made_by, params, ws, params_file, key, key) for key in keys}
            templates = (_dvc_entry(made_by, params, ws, params_file, key, "${item}") for key in keys)
            shared = next((t for t in templates if all(_with_item(t, key) == exact[key] for key in keys)), None)
            if shared is not None:
                stages[made_by.command] = {"foreach": keys, "do": shared}
            else:
                stages.update({f"{made_by.command}-{key}": entry for key, entry in exact.items()})
        if made_by.kind == "model":
            curves = [ws.curves(artefact_path(ws, made_by.makes, key).stem) for key in keys]
            plots += [{f"{path}/plots/metrics": {"x": "step"}} for path in curves]
    return {"stages": stages, "plots": plots}


DVC_HEADER = """\
# The wsseg pipeline as DVC stages, written by `wsseg dvc` from wsseg/pipeline.py: do not edit by hand.
# `dvc repro` runs the stages that `wsseg run-all` runs for {params_file}; a second `dvc repro` does
# nothing. Each command also follows the params' `distributed` section, running itself on torchrun
# when it asks for several processes; that section is not a dependency.
"""


def dvc_yaml(params: Params, params_file: str = "params.yaml") -> str:
    """The text of ``dvc.yaml`` for ``params`` (read from ``params_file``), outputs under ``data/``."""
    body = yaml.safe_dump(dvc_stages(params, Workspace(), params_file), sort_keys=False, width=120)
    return DVC_HEADER.format(params_file=params_file) + body
