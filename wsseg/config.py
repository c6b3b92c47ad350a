"""``params.yaml``: the pipeline's configuration, validated before any work starts.

Each plugin section names a registered plugin and passes it a ``config`` mapping, which is
validated against that plugin's own pydantic model. Every error becomes one line naming the key.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from wsseg.data.synthetic import SyntheticConfig
from wsseg.interfaces import Level, PluginConfig
from wsseg.errors import ConfigError, PluginError, excerpt
from wsseg.registry import Kind, get_plugin

Supervision = Literal["pixel", "slice", "stack"]


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


class DataParams(Section):
    """Where the slices come from and the grids the networks see."""

    source: str = Field("synthetic", description="'synthetic' or a dataset folder (cases.csv + slices.csv + images/)")
    synthetic: SyntheticConfig = SyntheticConfig()
    field_of_view: float = Field(1.0, gt=0, le=1, description="centred fraction of each side kept at ingest, for scans centred on the heart")
    image_size: int = Field(128, ge=32, le=1024, description="side of the common grid the field of view is resized to at ingest")
    roi_size: int = Field(64, ge=16, le=512, description="side of the crop around the predicted myocardium for CAM and fibrosis networks")
    roi_margin: float = Field(0.25, ge=0, le=4, description="crop margin around the myocardium, as a fraction of its extent")
    roi_normalise: bool = Field(False, description="re-normalise intensities inside each crop (percentiles 1..99.5), for contrast around the heart")

    @field_validator("image_size", "roi_size")
    @classmethod
    def _multiple_of_16(cls, value: int) -> int:
        if value % 16:
            raise ValueError("must be a multiple of 16 (the networks halve it 4 times)")
        return value


class PluginSection(Section):
    """A plugin chosen by name and its configuration."""

    plugin: str
    config: dict = Field(default_factory=dict)


class MyocardiumParams(PluginSection):
    plugin: str = "unet"
    threshold: float = Field(0.5, gt=0, lt=1, description="probability above which a pixel is myocardium")
    flips: bool = Field(False, description="test-time flips: average the predictions over the image and its flips (not in the paper)")


class CAMParams(PluginSection):
    plugin: str = "drn-attention"
    levels: list[Level] = Field(default_factory=lambda: ["slice", "stack"])


class PseudoLabelParams(PluginSection):
    plugin: str = "otsu-crf"


class SegmentationParams(PluginSection):
    plugin: str = "unet"
    supervisions: list[Supervision] = Field(default_factory=lambda: ["pixel", "slice", "stack"])
    threshold: float = Field(0.5, gt=0, lt=1, description="probability above which a pixel is fibrosis")
    myocardium_channel: list[Supervision] = Field(
        default_factory=lambda: ["pixel"],
        description="supervision levels whose fibrosis segmenter also gets the myocardium prediction as an input channel (the paper: pixel only)",
    )
    restrict_to_myocardium: bool = Field(
        False, description="drop predicted fibrosis outside the predicted myocardium (not in the paper)"
    )
    flips: bool = Field(False, description="test-time flips: average the predictions over the crop and its flips (not in the paper)")
    slice_level_labeller: bool = Field(
        False,
        description="slice level: predict fibrosis with the pseudo-labeller on the slice classifier's CAMs, on the slices it scores "
        "above 0.5, instead of with the slice-level U-Net (not in the paper)",
    )
    overrides: dict[Supervision, dict] = Field(
        default_factory=dict, description="config keys that differ for one supervision level, e.g. {pixel: {epochs: 160}}"
    )


class EvaluateParams(Section):
    splits: list[Literal["train", "val", "test"]] = Field(default_factory=lambda: ["val", "test"])


class DistributedParams(Section):
    """How many processes run each stage (torchrun); 1 x 1 runs it in this process. See docs/distributed.md."""

    nproc_per_node: int = Field(1, ge=1, le=1024, description="processes per machine: one per GPU, or a share of the CPU cores")
    nnodes: int = Field(1, ge=1, le=4096, description="machines; each runs the same command and they meet at rdzv_endpoint")
    rdzv_endpoint: str = Field("", description="host:port on the first machine where the processes meet (needed when nnodes > 1)")

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
        if self.segmentation.slice_level_labeller and "slice" not in self.cam.levels:
            raise ValueError("segmentation.slice_level_labeller needs cam.levels to include 'slice'")
        return self

    def predicts_with_labeller(self, supervision: Supervision) -> bool:
        """Whether ``supervision``'s fibrosis comes from the pseudo-labeller instead of a U-Net (``slice_level_labeller``)."""
        return supervision == "slice" and self.segmentation.slice_level_labeller

    def plugin_config(self, section: str, supervision: Supervision | None = None) -> PluginConfig:
        """The validated config of a plugin section (``myocardium``, ``cam``, ...).

        For ``segmentation`` with a ``supervision``, that level's ``overrides`` are applied.
        """
        chosen: PluginSection = getattr(self, section)
        config = chosen.config
        if section == "segmentation" and supervision is not None:
            config = {**config, **self.segmentation.overrides.get(supervision, {})}
        return get_plugin(PLUGIN_KINDS[section], chosen.plugin).Config.model_validate(config)


PLUGIN_KINDS: dict[str, Kind] = {
    "myocardium": "segmenter",
    "cam": "cam_generator",
    "pseudo_label": "pseudo_labeler",
    "segmentation": "segmenter",
}


def _describe(error: ValidationError, prefix: str = "") -> str:
    first = error.errors()[0]
    key = ".".join(str(p) if len(str(p)) <= 40 else excerpt(str(p), 40) for p in (*prefix.split("."), *first["loc"]) if p != "")
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
        for supervision in params.segmentation.overrides if section == "segmentation" else ():
            try:
                params.plugin_config(section, supervision)
            except ValidationError as exc:
                raise ConfigError(_describe(exc, f"segmentation.overrides.{supervision}")) from None
        if section == "cam":
            unsupported = [level for level in params.cam.levels if level not in plugin.levels]
            if unsupported:
                raise ConfigError(f"cam.levels: plugin '{chosen.plugin}' cannot train at level {unsupported[0]}")
    return params


PARAMS_FILE_LIMIT = 1 << 20
"""params files larger than this many bytes are refused (a params.yaml is a few KB)."""


class _NoAliasLoader(yaml.SafeLoader):
    """YAML without aliases (``*name``): a few hundred bytes of them can expand into gigabytes."""

    def compose_node(self, parent, index):  # type: ignore[no-untyped-def]
        if self.check_event(yaml.AliasEvent):
            raise yaml.composer.ComposerError(None, None, "aliases (*name) are not allowed", self.peek_event().start_mark)
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


def load_params(path: str | Path = "params.yaml") -> Params:
    """Read and validate ``params.yaml``; a missing file means all defaults."""
    path = Path(path)
    if not path.exists():
        return validate_params({})
    if not path.is_file():
        raise ConfigError(f"{path}: not a file")
    if path.stat().st_size > PARAMS_FILE_LIMIT:
        raise ConfigError(f"{path}: {path.stat().st_size} bytes, more than a params file's {PARAMS_FILE_LIMIT}")
    raw = parse_yaml(path.read_bytes(), str(path))
    if raw is not None and not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping of sections at the top level")
    return validate_params(raw or {})
