"""``params.yaml``: the pipeline's configuration, validated before any work starts.

Each plugin section names a registered plugin and passes it a ``config`` mapping, which is
validated against that plugin's own pydantic model. Every error becomes one line naming the key.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

import yaml
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, model_validator

from wsseg.errors import ConfigError, PluginError, excerpt
from wsseg.interfaces import Level, PluginConfig
from wsseg.registry import Kind, get_plugin

Supervision = Literal["pixel", "slice", "stack"]
Split = Literal["train", "val", "test"]


def _multiple_of_16(value: int) -> int:
    if value % 16:
        raise ValueError("must be a multiple of 16 (the networks halve it 4 times)")
    return value


GridSide = Annotated[int, AfterValidator(_multiple_of_16)]
"""The side of a square grid a network sees."""


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


class SyntheticConfig(Section):
    """Size and look of a synthetic phantom set (lengths in pixels refer to a 128 px image)."""

    n_train_pixel: int = Field(8, ge=0, le=1000)
    n_train_weak: int = Field(40, ge=0, le=1000)
    n_val: int = Field(8, ge=0, le=1000)
    n_test: int = Field(8, ge=0, le=1000)
    image_size: int = Field(128, ge=32, le=1024)
    min_slices: int = Field(6, ge=1, le=64)
    max_slices: int = Field(10, ge=1, le=64)
    fibrosis_free_fraction: float = Field(0.3, ge=0, le=1)
    min_scar_pixels: int = Field(8, ge=1, le=10_000)
    noise: float = Field(0.05, ge=0, le=1)
    bias_field: float = Field(0.3, ge=0, lt=2)
    seed: int = Field(0, ge=0, le=2**32 - 1)
    myocardium_masks: bool = Field(
        False, description="also write myocardium-only masks (myocardium/) for the train cases without pixel labels"
    )

    @model_validator(mode="after")
    def _slice_range(self) -> SyntheticConfig:
        if self.min_slices > self.max_slices:
            raise ValueError(f"min_slices ({self.min_slices}) exceeds max_slices ({self.max_slices})")
        return self


class DataAdditions(Section):
    """Data options beyond the paper (off by default)."""

    roi_normalise: bool = Field(
        False,
        description="re-normalise intensities inside each crop (percentiles 1..99.5): the heart box that the "
        "myocardium model sees and the ROI of the later stages",
    )


class DataParams(Section):
    """Where the slices come from and the grids the networks see."""

    source: str = Field("synthetic", description="'synthetic' or a dataset folder (cases.csv + slices.csv + images/)")
    synthetic: SyntheticConfig = SyntheticConfig()
    field_of_view: float = Field(
        1.0, gt=0, le=1, description="centred fraction of each side kept at ingest, for scans centred on the heart"
    )
    image_size: GridSide = Field(
        128, ge=32, le=1024, description="side of the common grid the field of view is resized to at ingest"
    )
    pixel_spacing: float | None = Field(
        None, gt=0, le=100, description="in-plane pixel spacing (mm) of the dataset's PNG slices, if known"
    )
    grid_spacing: float | None = Field(
        None,
        gt=0,
        le=100,
        description="mm per pixel of the common grid for slices of known spacing (a fixed physical field of view); "
        "unset: each slice's field of view fills the grid",
    )
    roi_size: GridSide = Field(
        64, ge=16, le=512, description="side of the crop around the predicted myocardium for CAM and fibrosis networks"
    )
    roi_margin: float = Field(
        0.25, ge=0, le=4, description="crop margin around the myocardium, as a fraction of its extent"
    )
    additions: DataAdditions = DataAdditions()


class PluginSection(Section):
    """A plugin chosen by name and its configuration."""

    plugin: str
    config: dict = Field(default_factory=dict)


class MyocardiumAdditions(Section):
    """Myocardium options beyond the paper (off by default)."""

    flips: bool = Field(False, description="test-time flips: average the predictions over the image and its flips")
    myocardium_only_masks: bool = Field(
        False,
        description="also train on the myocardium-only masks (myocardium/) of the train cases without pixel labels",
    )
    cavity_class: bool = Field(
        False,
        description="train the wall model on three classes (background, cavity, wall): it learns where the blood "
        "pool ends, not only where the wall is",
    )
    neighbours: bool = Field(
        False,
        description="the wall model also sees the slices below and above in the same heart box (2.5D: three "
        "input channels; a stack's end slice stands in for its missing neighbour)",
    )
    drawn_train_walls: bool = Field(
        False,
        description="the later stages see the drawn myocardium of every train slice that has one, in place of the "
        "predicted wall: the classifiers pool over it, the pseudo-labels and the fibrosis U-Nets' training crops "
        "lie inside it; val, test and new slices keep the predicted wall",
    )


class HeartAdditions(Section):
    """Heart-finder options beyond the defaults (off by default)."""

    found_margin: float | None = Field(
        None,
        ge=0,
        le=2,
        description="margin of the box around a heart the finder found, in place of `margin` (which also frames "
        "the wall model's training crops around the true heart): a finder thresholded high finds less than the "
        "whole heart, so its box may need to grow more",
    )
    min_window: float = Field(
        0.0,
        ge=0,
        le=1,
        description="with `zoom_in`, the closer window's side is at least this fraction of the slice: a heart "
        "found too small (a part of it, or a stray blob) is looked at again with the heart around it in view",
    )


class HeartParams(PluginSection):
    """Step 1 of the myocardium: find the heart in the whole slice, whatever its zoom."""

    plugin: str = "unet"
    image_size: GridSide = Field(64, ge=16, le=512, description="side of the grid each whole slice is shrunk to")
    threshold: float = Field(0.5, gt=0, lt=1, description="probability above which a pixel is heart")
    margin: float = Field(0.25, ge=0, le=2, description="margin of the heart box, as a fraction of the heart's extent")
    zoom_in: bool = Field(
        False,
        description="look again at a window twice the heart's extent around the first find (finer for small hearts)",
    )
    additions: HeartAdditions = HeartAdditions()

    @property
    def found_margin(self) -> float:
        """The margin of the box around a found heart."""
        return self.margin if self.additions.found_margin is None else self.additions.found_margin


class MyocardiumParams(PluginSection):
    """Step 2: segment the wall inside the heart's box, at one scale."""

    plugin: str = "unet"
    roi_size: GridSide = Field(64, ge=16, le=512, description="side of the heart box's crop that the wall model sees")
    threshold: float = Field(0.5, gt=0, lt=1, description="probability above which a pixel is myocardium")
    additions: MyocardiumAdditions = MyocardiumAdditions()


class CAMAdditions(Section):
    """CAM options beyond the paper (off by default)."""

    flips: bool = Field(
        False, description="test-time flips: average the CAMs (flipped back) and scores over each crop and its flips"
    )
    scales: list[Annotated[float, Field(ge=0.5, le=3)]] = Field(
        [1.0],
        min_length=1,
        description="test-time scales: average the CAMs and scores over each crop resized by these factors "
        "(the CAMs on the largest scale's grid), e.g. [1.0, 1.5]",
    )


class CAMParams(PluginSection):
    plugin: str = "drn-attention"
    levels: list[Level] = ["slice", "stack"]
    overrides: dict[Level, dict] = Field(
        default_factory=dict,
        description="config keys that differ for one level's classifier, e.g. {stack: {ensemble: 3}}",
    )
    additions: CAMAdditions = CAMAdditions()


class PseudoLabelParams(PluginSection):
    plugin: str = "otsu-crf"
    overrides: dict[Level, dict] = Field(
        default_factory=dict,
        description="config keys that differ for one level's pseudo-labels, e.g. {slice: {otsu_classes: 2}}",
    )


class SegmentationAdditions(Section):
    """Fibrosis options beyond the paper (off by default)."""

    myocardium_channel: list[Level] = Field(
        default_factory=list,
        description="weak levels whose U-Net also gets the myocardium prediction as an input channel, as pixel does",
    )
    neighbours: list[Supervision] = Field(
        default_factory=list,
        description="levels whose U-Net also gets the slices below and above in the case as input channels (2.5D; "
        "a stack's end slice stands in for its missing neighbour)",
    )
    wall_scar_dropout: dict[Supervision, Annotated[float, Field(ge=0, le=1)]] = Field(
        default_factory=dict,
        description="per level with the myocardium channel, the share of its training slices whose channel loses "
        "the target's scar next to the cavity (to a random depth of 1-4 ROI pixels), as a predicted wall loses "
        "bright scar beside the bright blood pool, e.g. {slice: 0.5}",
    )
    restrict_to_myocardium: bool = Field(False, description="drop predicted fibrosis outside the predicted myocardium")
    flips: bool = Field(False, description="test-time flips: average the predictions over the crop and its flips")
    slice_level_labeler: bool = Field(
        False,
        description="slice level: fibrosis is the pseudo-labeler's mask of the slice classifier's CAM on the slices "
        "it scores above 0.5, instead of the slice-level U-Net's prediction",
    )
    mixed_supervision: list[Level] = Field(
        default_factory=list,
        description="weak levels whose U-Net learns from the true masks of the pixel-labelled train slices in place "
        "of their pseudo-labels (and from the pseudo-labels of the others)",
    )
    self_training: dict[Level, Annotated[int, Field(ge=0, le=3)]] = Field(
        default_factory=dict,
        description="per weak level, rounds of self-training, e.g. {slice: 1}: the U-Net is trained again, from "
        "scratch, on its own flip-averaged predictions above 0.5 for the train slices with a positive weak label "
        "(negatives stay empty; with mixed supervision the true masks stay)",
    )
    classifier_gate: list[Supervision] = Field(
        default_factory=list,
        description="levels whose fibrosis is kept only on slices the slice classifier scores above 0.5",
    )
    case_gate: list[Supervision] = Field(
        default_factory=list,
        description="levels whose fibrosis is kept only in cases where the slice classifier scores some slice "
        "above 0.5 (a case-level decision)",
    )
    min_lesion_pixels: int = Field(
        0, ge=0, le=10_000, description="predicted lesions smaller than this, in pixels of the ROI grid, are dropped"
    )
    min_case_burden: dict[Supervision, Annotated[float, Field(ge=0, le=100)]] = Field(
        default_factory=dict,
        description="per level, the smallest predicted scar burden (fibrosis as % of the predicted myocardium) at "
        "which a case keeps its fibrosis; a case below it gets none (a case-level decision), e.g. {slice: 2.5}",
    )
    level_thresholds: dict[Supervision, Annotated[float, Field(gt=0, lt=1)]] = Field(
        default_factory=dict,
        description="per level, the probability above which a pixel is fibrosis in place of `threshold`, "
        "e.g. {stack: 0.4}",
    )


class SegmentationParams(PluginSection):
    plugin: str = "unet"
    supervisions: list[Supervision] = ["pixel", "slice", "stack"]
    threshold: float = Field(0.5, gt=0, lt=1, description="probability above which a pixel is fibrosis")
    overrides: dict[Supervision, dict] = Field(
        default_factory=dict,
        description="config keys that differ for one supervision level, e.g. {pixel: {epochs: 160}}",
    )
    additions: SegmentationAdditions = SegmentationAdditions()

    def threshold_for(self, supervision: Supervision) -> float:
        """The probability above which a pixel of ``supervision``'s prediction is fibrosis."""
        return self.additions.level_thresholds.get(supervision, self.threshold)

    def myocardium_channel(self, supervision: Supervision) -> bool:
        """Whether ``supervision``'s U-Net gets the myocardium prediction as a second input channel."""
        return supervision == "pixel" or supervision in self.additions.myocardium_channel

    @model_validator(mode="after")
    def _dropout_needs_the_wall_channel(self) -> SegmentationParams:
        for level in self.additions.wall_scar_dropout:
            if not self.myocardium_channel(level):
                raise ValueError(
                    f"segmentation.additions.wall_scar_dropout: '{level}' needs the wall channel "
                    "(add it to segmentation.additions.myocardium_channel)"
                )
        return self


class EvaluateParams(Section):
    splits: list[Split] = ["val", "test"]


class DistributedParams(Section):
    """How many processes run each stage (torchrun); 1 x 1 runs it in this process. See docs/distributed.md."""

    nproc_per_node: int = Field(
        1, ge=1, le=1024, description="processes per machine: one per GPU, or a share of the CPU cores"
    )
    nnodes: int = Field(
        1, ge=1, le=4096, description="machines; each runs the same command and they meet at rdzv_endpoint"
    )
    rdzv_endpoint: str = Field(
        "", description="host:port on the first machine where the processes meet (needed when nnodes > 1)"
    )

    @model_validator(mode="after")
    def _endpoint_for_several_nodes(self) -> DistributedParams:
        if self.nnodes > 1 and not self.rdzv_endpoint:
            raise ValueError("rdzv_endpoint (host:port of the first machine) is needed when nnodes > 1")
        return self

    @property
    def processes(self) -> int:
        return self.nproc_per_node * self.nnodes


class Params(Section):
    """The whole of params.yaml."""

    seed: int = Field(0, ge=0, le=2**32 - 1, description="seeds NumPy, PyTorch and Python for every stage")
    device: Literal["auto", "cpu", "cuda"] = "auto"
    distributed: DistributedParams = DistributedParams()
    data: DataParams = DataParams()
    heart: HeartParams = HeartParams()
    myocardium: MyocardiumParams = MyocardiumParams()
    cam: CAMParams = CAMParams()
    pseudo_label: PseudoLabelParams = PseudoLabelParams()
    segmentation: SegmentationParams = SegmentationParams()
    evaluate: EvaluateParams = EvaluateParams()

    @model_validator(mode="after")
    def _weak_supervision_has_cams(self) -> Params:
        missing = [s for s in self.segmentation.supervisions if s != "pixel" and s not in self.cam.levels]
        if missing:
            raise ValueError(f"segmentation.supervisions: '{missing[0]}' needs cam.levels to include it")
        if self.segmentation.additions.slice_level_labeler and "slice" not in self.cam.levels:
            raise ValueError("segmentation.additions.slice_level_labeler needs cam.levels to include 'slice'")
        for gate in ("classifier_gate", "case_gate"):
            if getattr(self.segmentation.additions, gate) and "slice" not in self.cam.levels:
                raise ValueError(f"segmentation.additions.{gate} needs cam.levels to include 'slice'")
        return self

    def predicts_with_labeler(self, supervision: str) -> bool:
        """Whether ``supervision``'s fibrosis comes from the pseudo-labeler, not a U-Net (``slice_level_labeler``)."""
        return supervision == "slice" and self.segmentation.additions.slice_level_labeler

    def bfloat16_sections(self) -> list[str]:
        """The plugin sections whose networks ask for bfloat16 (``mixed_precision`` in their config or an override)."""
        sections = []
        for section in PLUGIN_KINDS:
            chosen = getattr(self, section)
            configs = [chosen.config, *getattr(chosen, "overrides", {}).values()]
            if any(config.get("mixed_precision") for config in configs):
                sections.append(section)
        return sections

    def plugin_config(self, section: str, key: str | None = None) -> PluginConfig:
        """The validated config of a plugin section (``myocardium``, ``cam``, ...).

        For ``cam`` and ``pseudo_label`` with a level ``key`` and ``segmentation`` with a supervision
        ``key``, that key's ``overrides`` are applied.
        """
        chosen: PluginSection = getattr(self, section)
        overrides = getattr(chosen, "overrides", {}).get(key, {}) if key is not None else {}
        config = {**chosen.config, **overrides}
        return get_plugin(PLUGIN_KINDS[section], chosen.plugin).Config.model_validate(config)


PLUGIN_KINDS: dict[str, Kind] = {
    "heart": "segmenter",
    "myocardium": "segmenter",
    "cam": "cam_generator",
    "pseudo_label": "pseudo_labeler",
    "segmentation": "segmenter",
}


def _describe(error: ValidationError, prefix: str = "") -> str:
    first = error.errors()[0]
    key = ".".join(
        str(p) if len(str(p)) <= 40 else excerpt(str(p), 40) for p in (*prefix.split("."), *first["loc"]) if p != ""
    )
    message = first["msg"].removeprefix("Value error, ")
    given = f" (got {excerpt(first['input'])})" if "input" in first and not isinstance(first["input"], dict) else ""
    return f"{key}: {message}{given}" if key else message


def validate_params(raw: dict) -> Params:
    """Validate a params mapping and each plugin's config; raise :class:`ConfigError` on the first problem."""
    try:
        params = Params.model_validate(raw or {})
    except ValidationError as exc:
        raise ConfigError(_describe(exc)) from None
    for section, kind in PLUGIN_KINDS.items():
        chosen: PluginSection = getattr(params, section)
        try:
            plugin = get_plugin(kind, chosen.plugin)
        except PluginError as exc:
            raise ConfigError(f"{section}.plugin: {exc}") from None
        try:
            plugin.Config.model_validate(chosen.config)
        except ValidationError as exc:
            raise ConfigError(_describe(exc, f"{section}.config")) from None
        for key in getattr(chosen, "overrides", {}):
            try:
                params.plugin_config(section, key)
            except ValidationError as exc:
                raise ConfigError(_describe(exc, f"{section}.overrides.{key}")) from None
        if section == "cam":
            unsupported = [level for level in params.cam.levels if level not in getattr(plugin, "levels", ())]
            if unsupported:
                raise ConfigError(f"cam.levels: plugin '{chosen.plugin}' cannot train at level {unsupported[0]}")
    return params


PARAMS_FILE_LIMIT = 1 << 20
"""params files larger than this many bytes are refused (a params.yaml is a few KB)."""


class _NoAliasLoader(yaml.SafeLoader):
    """YAML without aliases (``*name``): a few hundred bytes of them can expand into gigabytes."""

    def compose_node(self, parent, index):  # type: ignore[no-untyped-def]
        if self.check_event(yaml.AliasEvent):
            raise yaml.composer.ComposerError(
                None, None, "aliases (*name) are not allowed", self.peek_event().start_mark
            )
        return super().compose_node(parent, index)


def parse_yaml(text: bytes | str, source: str) -> object:
    """Parse YAML from a file or an option, refusing aliases; every problem is a one-line :class:`ConfigError`.

    ``source`` names where the text came from (a file path or an option) in the message, with
    the line and column of a syntax error.
    """
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise ConfigError(f"{source}: not UTF-8 text (byte {exc.start}); save it as UTF-8") from None
    try:
        return yaml.load(text, Loader=_NoAliasLoader)  # noqa: S506 (a SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"{source}:{mark.line + 1}:{mark.column + 1}" if mark is not None else source
        raise ConfigError(f"{where}: not valid YAML: {exc.problem or exc.context}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{source}: not valid YAML ({excerpt(str(exc))})") from None
    except RecursionError:
        raise ConfigError(f"{source}: nested too deeply to be a params file") from None


def _read_mapping(path: Path) -> dict:
    """One params file as a mapping (empty for an empty file), checked as untrusted input."""
    if not path.is_file():
        raise ConfigError(f"{path}: not a file")
    if path.stat().st_size > PARAMS_FILE_LIMIT:
        raise ConfigError(f"{path}: {path.stat().st_size} bytes, more than a params file's {PARAMS_FILE_LIMIT}")
    raw = parse_yaml(path.read_bytes(), str(path))
    if raw is not None and not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping of sections at the top level")
    return raw or {}


def merge(base: dict, overlay: dict) -> dict:
    """``overlay`` laid over ``base``: mappings merge key by key, anything else is replaced.

    A section whose ``plugin`` the overlay names differently from the base takes the overlay's
    ``config`` whole, since the base's keys belong to another plugin.
    """
    other_plugin = "plugin" in base and overlay.get("plugin", base["plugin"]) != base["plugin"]
    merged = {key: value for key, value in base.items() if not (other_plugin and key == "config")}
    for key, value in overlay.items():
        merged[key] = (
            merge(merged[key], value) if isinstance(value, dict) and isinstance(merged.get(key), dict) else value
        )
    return merged


def read_mapping(path: Path, chain: tuple[Path, ...] = ()) -> dict:
    """A params file's mapping laid over the files its ``extends`` names (relative to its folder), in order."""
    raw = _read_mapping(path)
    parents = raw.pop("extends", [])
    names = [parents] if isinstance(parents, str) else parents
    if not isinstance(names, list) or not all(isinstance(name, str) for name in names):
        raise ConfigError(f"{path}: extends: expected a file name or a list of file names")
    base: dict = {}
    for name in names:
        parent = path.parent / name
        if parent.resolve() in (*chain, path.resolve()) or len(chain) >= 8:
            raise ConfigError(f"{path}: extends {excerpt(name)}, which extends it in turn (or goes more than 8 deep)")
        if not parent.exists():
            raise ConfigError(f"{path}: extends {excerpt(name)}, which does not exist")
        base = merge(base, read_mapping(parent, (*chain, path.resolve())))
    return merge(base, raw)


def load_params(path: str | Path = "params.yaml", *, allow_extends: bool = True) -> Params:
    """Read and validate a params file; a missing file means all defaults.

    A profile may start with ``extends: params.yaml`` (a path relative to the profile, or a list of
    them) and then list only what differs; see :func:`merge`. With ``allow_extends=False`` such a
    profile is refused (DVC tracks a params file as it is written).
    """
    path = Path(path)
    if not path.exists():
        return validate_params({})
    if not allow_extends and "extends" in _read_mapping(path):
        raise ConfigError(
            f"{path}: a profile with `extends` cannot be a DVC params file; use `wsseg run-all --params {path}`"
        )
    return validate_params(read_mapping(path))
