"""Where each pipeline artefact lives under a run's root folder (:mod:`wsseg.pipeline` names them)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


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
    def heart_model(self) -> Path:
        return self.root / "models" / "heart.pt"

    @property
    def myocardium_model(self) -> Path:
        return self.root / "models" / "myocardium.pt"

    @property
    def myocardium(self) -> Path:
        return self.root / "cache" / "myocardium.h5"

    def cam_model(self, level: str) -> Path:
        return self.root / "models" / f"cam-{level}.pt"

    def cams(self, level: str) -> Path:
        return self.root / "cache" / f"cams-{level}.h5"

    def pseudo_labels(self, level: str) -> Path:
        return self.root / "cache" / f"pseudo-{level}.h5"

    def fibrosis_model(self, supervision: str) -> Path:
        return self.root / "models" / f"fibrosis-{supervision}.pt"

    def predictions(self, supervision: str) -> Path:
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
