"""The ``wsseg`` command line: one subcommand per pipeline stage, ``run-all``, and ``plugins``."""

from __future__ import annotations

import functools
import json
import resource
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, cast

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from wsseg import distributed
from wsseg.config import Params, Supervision, load_params, parse_yaml
from wsseg.errors import ConfigError, PluginError, WssegError, excerpt, one_line
from wsseg.pipeline import STAGES, artefact_path, dvc_yaml, planned_steps, run_stage, stage_named
from wsseg.registry import GROUPS, Kind, disable, enable, get_plugin, kinds_of, list_plugins
from wsseg.training import native_bfloat16, resolve_device
from wsseg.workspace import Workspace

app = typer.Typer(
    help=(
        "Weakly-supervised myocardial fibrosis segmentation in LGE cardiac MRI.\n\n"
        f"Pipeline: {' -> '.join(stage.command for stage in STAGES)}. `wsseg run-all` runs it all with params.yaml, "
        "`wsseg dvc` writes it as dvc.yaml.\n\n"
        "Several processes or GPUs: set `distributed` in params.yaml, or start a command with "
        "`torchrun ... -m wsseg`; see docs/distributed.md."
    ),
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode="markdown",
)
plugins_app = typer.Typer(
    rich_markup_mode="markdown",
    help="List, validate, scaffold, disable and enable plugins (CAM generators, pseudo-labelers, segmenters); "
    "see docs/plugins.md.",
    no_args_is_help=True,
)
app.add_typer(plugins_app, name="plugins")
console = Console()
errors = Console(stderr=True)

ParamsOption = Annotated[
    Path, typer.Option("--params", "-p", help="params.yaml to read (missing file = all defaults).")
]
WorkdirOption = Annotated[Path, typer.Option("--workdir", "-w", help="Folder for caches, models, metrics and report.")]
DeviceOption = Annotated[
    str | None,
    typer.Option(
        "--device", help="auto | cpu | cuda (default: params.yaml's device, itself 'auto': CUDA when present)."
    ),
]
LevelOption = Annotated[str, typer.Option("--level", "-l", help="Weak-label level: slice or stack.")]
KEYS = {"level": ("slice", "stack"), "supervision": ("pixel", "slice", "stack")}
SupervisionOption = Annotated[
    str, typer.Option("--supervision", "-s", help="Fibrosis supervision: pixel, slice or stack.")
]


def _rank_prefix() -> str:
    """``[rank N] `` on processes other than rank 0 under torchrun, so that their lines can be told apart."""
    return f"[rank {distributed.rank()}] " if not distributed.is_main() else ""


def _say(console: Console, label: str, text: object) -> None:
    """Print ``label`` (rich markup) and ``text`` on one line; ``text`` is shown as it is, never read as markup."""
    console.print(f"{label} {escape(one_line(_rank_prefix() + str(text)))}", highlight=False, soft_wrap=True)


def _warn_in_one_line(message, category, filename, lineno, file=None, line=None) -> None:
    _say(errors, "[yellow]warning:[/yellow]", message)


def _friendly_errors(command: Callable) -> Callable:
    """Turn expected failures (config, data, stale caches, plugins, I/O) and warnings into one line on stderr."""

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        try:
            with warnings.catch_warnings():
                warnings.showwarning = _warn_in_one_line
                return command(*args, **kwargs)
        except (WssegError, OSError) as exc:
            _say(errors, "[red]error:[/red]", exc)
            raise typer.Exit(2) from None
        except KeyboardInterrupt:
            errors.print(
                "[red]interrupted[/red]: rerun the command to go on (training resumes after its last finished epoch)",
                highlight=False,
            )
            raise typer.Exit(130) from None

    return wrapper


def _device(value: str) -> str:
    """The device that ``--device`` (or params' ``device``) names; a bad or missing one is a :class:`ConfigError`."""
    try:
        return str(resolve_device(value))
    except ValueError as exc:
        raise ConfigError(str(exc)) from None


def _setup(
    params_path: Path, workdir: Path, device: str | None = None, *, processes: bool = False
) -> tuple[Params, Workspace, str]:
    """Params, workspace and device of a command; with ``processes``, the command follows params' ``distributed``.

    That is: started plainly with more than one process asked for, it runs itself again under
    torchrun and exits with its code; started by torchrun, it joins the process group.
    """
    params = load_params(params_path)
    resolved = _device(device or params.device)
    wanted = params.distributed
    if processes and wanted.processes > 1 and not distributed.launched():
        console.print(f"running on torchrun: {wanted.nproc_per_node} process(es) per node x {wanted.nnodes} node(s)")
        raise typer.Exit(distributed.relaunch(wanted.nproc_per_node, wanted.nnodes, wanted.rdzv_endpoint))
    resolved = distributed.setup(resolved)
    console.quiet = not distributed.is_main()
    return params, Workspace(workdir), resolved


def _choice(value: str, allowed: tuple[str, ...], option: str) -> str:
    if value not in allowed:
        raise ConfigError(f"{option}: expected one of {', '.join(allowed)}, got {excerpt(value)}")
    return value


def _done(message: str) -> None:
    _say(console, "[green]✓[/green]", message)


def _run(command: str, params_path: Path, workdir: Path, device: str | None = None, key: str | None = None) -> None:
    """Run one stage of the pipeline table (:data:`wsseg.pipeline.STAGES`) and say what it wrote."""
    made_by = stage_named(command)
    if made_by.per is not None:
        key = _choice(str(key), KEYS[made_by.per], f"--{made_by.per}")
    p, ws, dev = _setup(params_path, workdir, device if made_by.device else "cpu", processes=made_by.processes)
    path = run_stage(made_by, p, ws, key, dev)
    _done(f"{made_by.summary.format(key=key)} written to {path}" + (f" ({dev})" if made_by.plugin else ""))


@app.command()
@_friendly_errors
def synth(params: ParamsOption = Path("params.yaml"), workdir: WorkdirOption = Path("data")) -> None:
    """Write the seeded synthetic LGE phantom set (data.synthetic in params.yaml) as a dataset folder."""
    _run("synth", params, workdir)


@app.command()
@_friendly_errors
def ingest(params: ParamsOption = Path("params.yaml"), workdir: WorkdirOption = Path("data")) -> None:
    """Check and resample the dataset folder (data.source: 'synthetic' or a path) into dataset.h5.

    The folder holds cases.csv, slices.csv, images/ and labels/ (PNG slices, one NIfTI/MHA/NRRD
    volume per case, or DICOM files with each case's series named in cases.csv's `series` column:
    its SeriesInstanceUID or a sub-folder of images/); see the README for the columns.
    """
    _run("ingest", params, workdir)


@app.command("train-heart")
@_friendly_errors
def train_heart(
    params: ParamsOption = Path("params.yaml"), workdir: WorkdirOption = Path("data"), device: DeviceOption = None
) -> None:
    """Train the heart finder (myocardium step 1) on whole slices, with strong zoom and contrast augmentation."""
    _run("train-heart", params, workdir, device)


@app.command("train-myo")
@_friendly_errors
def train_myo(
    params: ParamsOption = Path("params.yaml"), workdir: WorkdirOption = Path("data"), device: DeviceOption = None
) -> None:
    """Train the wall model (myocardium step 2) on the heart boxes of the train cases with a drawn myocardium."""
    _run("train-myo", params, workdir, device)


@app.command("predict-myo")
@_friendly_errors
def predict_myo(
    params: ParamsOption = Path("params.yaml"), workdir: WorkdirOption = Path("data"), device: DeviceOption = None
) -> None:
    """Find each case's heart, segment the myocardium of every slice, and the region of interest of every case."""
    _run("predict-myo", params, workdir, device)


@app.command("train-cam")
@_friendly_errors
def train_cam(
    level: LevelOption = "slice",
    params: ParamsOption = Path("params.yaml"),
    workdir: WorkdirOption = Path("data"),
    device: DeviceOption = None,
) -> None:
    """Train the fibrosis classifier (CAM generator) on slice- or stack-level weak labels."""
    _run("train-cam", params, workdir, device, level)


@app.command("predict-cam")
@_friendly_errors
def predict_cam(
    level: LevelOption = "slice",
    params: ParamsOption = Path("params.yaml"),
    workdir: WorkdirOption = Path("data"),
    device: DeviceOption = None,
) -> None:
    """Compute class activation maps and classifier scores for every slice."""
    _run("predict-cam", params, workdir, device, level)


@app.command("pseudo-label")
@_friendly_errors
def pseudo_label(
    level: LevelOption = "slice", params: ParamsOption = Path("params.yaml"), workdir: WorkdirOption = Path("data")
) -> None:
    """Turn the train cases' CAMs into pixel pseudo-labels (negative weak label -> empty mask)."""
    _run("pseudo-label", params, workdir, key=level)


@app.command("train-seg")
@_friendly_errors
def train_seg(
    supervision: SupervisionOption = "slice",
    params: ParamsOption = Path("params.yaml"),
    workdir: WorkdirOption = Path("data"),
    device: DeviceOption = None,
) -> None:
    """Train the fibrosis segmenter on pseudo-labels (slice, stack) or real masks (pixel)."""
    _run("train-seg", params, workdir, device, supervision)


@app.command()
@_friendly_errors
def predict(
    input_dir: Annotated[
        Path | None,
        typer.Argument(
            help="Folder of `<case>_slice<NNN>.png`, NIfTI/MHA volumes or DICOM files (nested, several series). "
            "Omit to predict the ingested dataset."
        ),
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option("--out", "-o", help="Output folder for masks and predictions.csv (needed with INPUT_DIR)."),
    ] = None,
    split: Annotated[
        str | None,
        typer.Option(
            "--split",
            help="INPUT_DIR is a dataset folder (cases.csv): predict only the cases of this split, e.g. test.",
        ),
    ] = None,
    pixel_spacing: Annotated[
        float | None,
        typer.Option(
            "--pixel-spacing",
            min=0.01,
            max=100,
            help="In-plane pixel spacing (mm) of PNG inputs (default: data.pixel_spacing); volumes carry their own.",
        ),
    ] = None,
    slice_spacing: Annotated[
        float | None,
        typer.Option(
            "--slice-spacing",
            min=0.01,
            max=1000,
            help="Distance (mm) between the slices of PNG inputs, for the scar burden in mL in cases.csv "
            "(with a pixel spacing); volumes and DICOM carry their own.",
        ),
    ] = None,
    supervision: SupervisionOption = "slice",
    params: ParamsOption = Path("params.yaml"),
    workdir: WorkdirOption = Path("data"),
    device: DeviceOption = None,
) -> None:
    """Segment myocardium and fibrosis with the models trained in --workdir.

    With INPUT_DIR: writes `<stem>_myocardium.png` and `<stem>_fibrosis.png` (0 = no, 255 = yes) at
    each input's own size, and `predictions.csv` (image, case_id, slice_index, fibrosis_probability,
    fibrosis_pixels, myocardium_pixels); a folder of volumes gives `<case>_myocardium.nii.gz` and
    `<case>_fibrosis.nii.gz`. A folder of DICOM files gives the same for each single-frame 2D MR
    series, named `series-<hash of its UID>`, and a DICOM SEG `<case>_seg.dcm`; other series are
    skipped with a warning. `cases.csv` gives each case's scar burden (myocardium and fibrosis in
    pixels and mL, fibrosis in % of the myocardium). Without INPUT_DIR: predicts the ingested
    dataset for `wsseg evaluate`.
    """
    if input_dir is None:
        _run("predict", params, workdir, device, supervision)
        return
    from wsseg.stages.predict_folder import predict_folder

    chosen = cast(Supervision, _choice(supervision, KEYS["supervision"], "--supervision"))
    if out is None:
        raise ConfigError("--out: an output folder is needed with INPUT_DIR")
    if split is not None:
        _choice(split, ("train", "val", "test"), "--split")
    p, ws, dev = _setup(params, workdir, device, processes=True)
    written = predict_folder(p, ws, chosen, input_dir, out, dev, split, pixel_spacing, slice_spacing)
    _done(f"{chosen}-level predictions written to {written}")


@app.command()
@_friendly_errors
def evaluate(params: ParamsOption = Path("params.yaml"), workdir: WorkdirOption = Path("data")) -> None:
    """Score predictions and classifiers on the held-out cases (evaluate.splits) -> metrics.json."""
    from wsseg.stages.evaluate import metrics_table

    _run("evaluate", params, workdir)
    console.print(metrics_table(json.loads(Workspace(workdir).metrics.read_text())))


@app.command()
@_friendly_errors
def report(params: ParamsOption = Path("params.yaml"), workdir: WorkdirOption = Path("data")) -> None:
    """Write a Markdown report with the metrics tables, segmentation overlays, CAMs and training curves."""
    _run("report", params, workdir)


def _peak_memory_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _run_steps(p: Params, ws: Workspace, dev: str, force: bool) -> list[tuple[str, float | None, float]]:
    """Run ``run-all``'s steps in order, keeping the current ones unless ``force``.

    Returns each step's name, seconds (None: kept) and the peak memory so far (MiB).
    """
    from wsseg.artefacts import is_current
    from wsseg.data.cache import content_digest

    timings: list[tuple[str, float | None, float]] = []
    changed: set[tuple[str, str | None]] = set()  # artefacts this run rewrote with new content
    for made_by, key in planned_steps(p):
        name, made = made_by.command + made_by.option(key), (made_by.makes, key)
        inputs_changed = changed.intersection(made_by.upstream(p, key))
        if not (force or made_by.reads_source or inputs_changed) and is_current(p, ws, *made):
            console.print(f"[dim]▶ wsseg {name}: kept (current)[/dim]")
            timings.append((name, None, _peak_memory_mib()))
            continue
        console.print(f"[bold cyan]▶ wsseg {name}[/bold cyan]")
        path = artefact_path(ws, *made)
        before, began = content_digest(path), time.perf_counter()
        run_stage(made_by, p, ws, key, dev)
        timings.append((name, time.perf_counter() - began, _peak_memory_mib()))
        if before is None or content_digest(path) != before:  # models and folders always count as new
            changed.add(made)
    return timings


@app.command("run-all")
@_friendly_errors
def run_all(
    params: ParamsOption = Path("params.yaml"),
    workdir: WorkdirOption = Path("data"),
    device: DeviceOption = None,
    force: Annotated[
        bool, typer.Option("--force", help="Run every stage, also those whose cache or model is current.")
    ] = False,
) -> None:
    """Run the whole pipeline with params.yaml, then print the metrics and a timing summary.

    A stage whose cache or model in --workdir was made with the current params and wsseg version,
    from inputs this run did not change, is kept: a rerun after an interruption or a params change
    runs only what is out of date, and an interrupted training resumes after its last finished
    epoch. The dataset is always read again (what follows is kept only if it comes out the same);
    evaluation and the report always run.
    """
    from wsseg.stages.evaluate import metrics_table

    p, ws, dev = _setup(params, workdir, device, processes=True)
    console.rule(escape(f"wsseg run-all on {p.data.source} ({dev})"))
    native = native_bfloat16(dev)
    if not native and (asked := p.bfloat16_sections()):
        note = (
            f"bfloat16 (mixed_precision) is asked for in {', '.join(asked)}, but this {dev} does not compute it "
            "natively (a CPU needs AMX or AVX512-BF16): those networks run in float32, more slowly"
        )
        _say(console, "[yellow]note:[/yellow]", note)
    start = time.perf_counter()
    timings = _run_steps(p, ws, dev, force)
    total = time.perf_counter() - start
    console.print(metrics_table(json.loads(ws.metrics.read_text())))
    table = Table(title="run-all summary")
    table.add_column("stage")
    table.add_column("seconds", justify="right")
    table.add_column("peak memory so far (MiB)", justify="right")
    for name, seconds, memory in timings:
        table.add_row(name, "kept" if seconds is None else f"{seconds:.1f}", f"{memory:.0f}")
    table.add_row("[bold]total[/bold]", f"[bold]{total:.1f}[/bold]", f"[bold]{_peak_memory_mib():.0f}[/bold]")
    console.print(table)
    stages = [
        {"stage": name, "seconds": None if seconds is None else round(seconds, 1), "peak_mib_so_far": round(memory)}
        for name, seconds, memory in timings
    ]
    summary = {
        "device": str(dev),
        "native_bfloat16": native,
        "total_s": round(total, 1),
        "peak_mib": round(_peak_memory_mib()),
        "stages": stages,
    }
    distributed.on_main(ws.timings.write_text)(json.dumps(summary, indent=2))
    _done(f"metrics: {ws.metrics}  report: {ws.report / 'report.md'}  peak memory: {_peak_memory_mib():.0f} MiB")


@app.command()
@_friendly_errors
def dvc(
    params: ParamsOption = Path("params.yaml"),
    out: Annotated[Path, typer.Option("--out", "-o", help="File to write.")] = Path("dvc.yaml"),
) -> None:
    """Write dvc.yaml: the stages that `wsseg run-all` runs for params.yaml, as a DVC pipeline.

    Rerun it after changing cam.levels, segmentation.supervisions or data.source; `dvc repro` then runs
    the same stages, and a second `dvc repro` does nothing.
    """
    text = dvc_yaml(load_params(params, allow_extends=False), str(params))
    out.write_text(text)
    _done(f"{len(text.splitlines())} lines written to {out}")


KindArgument = Annotated[str, typer.Argument(help="cam-generator, pseudo-labeler or segmenter.")]


def _kind(value: str) -> Kind:
    kind = value.replace("-", "_")
    if kind not in GROUPS:
        raise PluginError(f"KIND: expected one of cam-generator, pseudo-labeler, segmenter, got {excerpt(value)}")
    return kind  # type: ignore[return-value]


@plugins_app.command("list")
@_friendly_errors
def plugins_list(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """List every registered plugin with its kind, distribution, version and status (ok, error, disabled)."""
    infos = list_plugins()
    if as_json:
        print(json.dumps([info.model_dump() for info in infos], indent=2))
        return
    table = Table(title="wsseg plugins")
    for column in ("name", "kind", "distribution", "version", "status"):
        table.add_column(column)
    colours = {"ok": "green", "error": "red", "disabled": "yellow"}
    for info in infos:
        status = f"[{colours[info.status]}]{info.status}[/{colours[info.status]}]" + (
            f": {escape(info.error)}" if info.error else ""
        )
        table.add_row(
            *(escape(text) for text in (info.name, info.kind.replace("_", " "), info.distribution, info.version)),
            status,
        )
    console.print(table)


@plugins_app.command("validate")
@_friendly_errors
def plugins_validate(
    name: Annotated[str, typer.Argument(help="Registered plugin name, as in `wsseg plugins list`.")],
    kind: Annotated[
        str | None,
        typer.Option(
            "--kind",
            "-k",
            help="cam-generator, pseudo-labeler or segmenter (needed only when NAME is registered for several kinds).",
        ),
    ] = None,
    config: Annotated[
        str,
        typer.Option(
            "--config", "-c", help="Config overrides as a YAML/JSON mapping, e.g. '{epochs: 1}' to train briefly."
        ),
    ] = "{}",
    device: Annotated[str, typer.Option("--device", help="Device to run the checks on: cpu or cuda.")] = "cpu",
) -> None:
    """Import a plugin and run the conformance kit (wsseg.testing) on it, one line per check.

    Checks the interface, the config model and, on small synthetic phantoms, the outputs' shapes,
    dtypes and ranges, determinism under a seed and the state_dict round trip. Exit code 1 if a
    check fails.
    """
    from wsseg.testing import check_plugin

    kinds = [_kind(kind)] if kind else kinds_of(name)
    if not kinds:
        raise PluginError(f"no plugin named {excerpt(name)} (see `wsseg plugins list`)")
    if len(kinds) > 1:
        registered = " and ".join(k.replace("_", " ") for k in kinds)
        raise PluginError(f"{excerpt(name)} is registered as {registered}: choose one with --kind")
    overrides = parse_yaml(config, "--config")
    if not isinstance(overrides, dict):
        raise ConfigError(f"--config: expected a mapping such as '{{epochs: 1}}', got {excerpt(config)}")
    cls = get_plugin(kinds[0], name)
    where = escape(f"{cls.__module__}.{cls.__qualname__}")
    console.print(f"validating {kinds[0].replace('_', ' ')} [bold]{escape(name)}[/bold] ({where})")
    checks = check_plugin(cls, overrides, device=_device(device))
    for check in checks:
        mark = "[green]✓[/green]" if check.passed else "[red]✗[/red]"
        _say(console, mark, check.name + (f": {check.detail}" if check.detail else ""))
    failed = sum(not check.passed for check in checks)
    console.print(f"{len(checks) - failed}/{len(checks)} checks passed")
    if failed:
        raise typer.Exit(1)


@plugins_app.command("new")
@_friendly_errors
def plugins_new(
    kind: KindArgument,
    name: Annotated[str, typer.Argument(help="Plugin name for params.yaml, e.g. my-crf (package wsseg-my-crf).")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder to create the package in.")] = Path("."),
) -> None:
    """Scaffold an installable plugin package: pyproject.toml with its entry point, config, README, a passing test."""
    from wsseg.scaffold import scaffold

    root = scaffold(_kind(kind), name, out)
    _done(f"{root} written; next: pip install -e {root} && python -m pytest {root / 'tests'}")


@plugins_app.command("disable")
@_friendly_errors
def plugins_disable(
    entry: Annotated[str, typer.Argument(help="Plugin name, or DISTRIBUTION:NAME to disable one of two that clash.")],
) -> None:
    """Disable a plugin: it is no longer imported nor selectable (stored in the user's wsseg config)."""
    _done(f"'{entry}' disabled (in {disable(entry)})")


@plugins_app.command("enable")
@_friendly_errors
def plugins_enable(entry: Annotated[str, typer.Argument(help="An entry given to `wsseg plugins disable`.")]) -> None:
    """Enable a plugin disabled with `wsseg plugins disable`."""
    _done(f"'{entry}' enabled (in {enable(entry)})")


def main() -> None:
    """The ``wsseg`` command (console script and ``python -m wsseg``); under torchrun it ends with
    :func:`wsseg.distributed.leave`."""
    try:
        app(prog_name="wsseg")
    except SystemExit as stop:
        distributed.leave(stop.code if isinstance(stop.code, int) else int(stop.code is not None))
        raise
