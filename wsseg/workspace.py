"""Where each pipeline artefact lives, and which configuration each one depends on."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from wsseg.config import Params, Supervision
from wsseg.data.cache import config_hash
from wsseg.interfaces import Level


@dataclass(frozen=True)
class Workspace:
    """The layout of a run's outputs under one root folder (``data/`` by default)."""

    root: Path = Path("data")

    @property
    def synthetic(self) -> Path:
        return self.root / "synthetic"

    @property
    def dataset(self) -> Path:
        return self.root / "cache" / "dataset.h5"

    @property
    def myocardium_model(self) -> Path:
        return self.root / "models" / "myocardium.pt"

    @property
    def myocardium(self) -> Path:
        return self.root / "cache" / "myocardium.h5"

    def cam_model(self, level: Level) -> Path:
        return self.root / "models" / f"cam-{level}.pt"

    def cams(self, level: Level) -> Path:
        return self.root / "cache" / f"cams-{level}.h5"

    def pseudo_labels(self, level: Level) -> Path:
        return self.root / "cache" / f"pseudo-{level}.h5"

    def fibrosis_model(self, supervision: Supervision) -> Path:
        return self.root / "models" / f"fibrosis-{supervision}.pt"

    def predictions(self, supervision: Supervision) -> Path:
        return self.root / "cache" / f"predictions-{supervision}.h5"

    def curves(self, name: str) -> Path:
        return self.root / "curves" / name

    @property
    def metrics(self) -> Path:
        return self.root / "metrics.json"

    @property
    def per_case_metrics(self) -> Path:
        return self.root / "metrics_per_case.json"

    @property
    def timings(self) -> Path:
        """Wall time and peak memory of each stage of the last ``run-all``."""
        return self.root / "timings.json"

    @property
    def report(self) -> Path:
        return self.root / "report"


def _plugin(params: Params, section: str, supervision: Supervision | None = None) -> dict:
    """A plugin section as it acts: its name and its config with the plugin's defaults filled in."""
    return {"plugin": getattr(params, section).plugin, "config": params.plugin_config(section, supervision).model_dump(mode="json")}


def lineage(params: Params, artefact: str, key: str | None = None) -> str:
    """Hash of every params section that ``artefact`` (for level/supervision ``key``) depends on.

    Each artefact's hash includes its upstream artefact's, so changing e.g. the myocardium
    config invalidates every cache after it.
    """
    p = params.model_dump(mode="json")
    data = {k: v for k, v in p["data"].items() if k not in ("roi_size", "roi_margin", "roi_normalise")}
    if artefact == "dataset":
        return config_hash(data)
    if artefact == "myocardium_model":
        return config_hash(lineage(params, "dataset"), p["seed"], _plugin(params, "myocardium"))
    if artefact == "myocardium":
        roi = (p["data"]["roi_size"], p["data"]["roi_margin"], p["data"]["roi_normalise"], p["myocardium"]["threshold"], p["myocardium"]["flips"])
        return config_hash(lineage(params, "myocardium_model"), roi)
    if artefact == "cams":
        return config_hash(lineage(params, "myocardium"), _plugin(params, "cam"), key)
    if artefact == "pseudo_labels":
        return config_hash(lineage(params, "cams", key), _plugin(params, "pseudo_label"))
    if artefact == "fibrosis":
        upstream = lineage(params, "myocardium") if key == "pixel" else lineage(params, "pseudo_labels", key)
        channel = key in p["segmentation"]["myocardium_channel"]
        return config_hash(upstream, _plugin(params, "segmentation", key), key, channel)
    if artefact == "predictions":
        classifier = lineage(params, "cams", "slice") if "slice" in p["cam"]["levels"] else None
        segmentation = (p["segmentation"]["threshold"], p["segmentation"]["restrict_to_myocardium"], p["segmentation"]["flips"])
        if params.predicts_with_labeller(key):
            segmentation += ("labeller",)  # the slice classifier's CAMs and the labeller's config are in the fibrosis lineage
        return config_hash(lineage(params, "fibrosis", key), segmentation, classifier)
    raise ValueError(f"unknown artefact {artefact!r}")
