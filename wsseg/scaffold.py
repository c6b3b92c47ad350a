"""``wsseg plugins new``: write an installable plugin package that passes the conformance kit.

The package (``wsseg-NAME/``) holds ``pyproject.toml`` with the entry point, a README, the
plugin module ``wsseg_NAME/__init__.py`` with a small working implementation to replace, and
``tests/`` running :func:`wsseg.testing.assert_conforms` and checking the registration.
"""

from __future__ import annotations

import re
from importlib.metadata import version
from pathlib import Path
from string import Template

from wsseg import __version__
from wsseg.errors import PluginError
from wsseg.interfaces import API_VERSION
from wsseg.registry import GROUPS, Kind

NAME = re.compile(r"^[a-z][a-z0-9]*(-[a-z0-9]+)*$")
SUFFIX: dict[Kind, str] = {"cam_generator": "CAMGenerator", "pseudo_labeler": "Labeler", "segmenter": "Segmenter"}
TEST_CONFIG: dict[Kind, str] = {"cam_generator": '{"epochs": 2}', "pseudo_labeler": "{}", "segmenter": '{"epochs": 2}'}
PARAMS_SECTION: dict[Kind, str] = {
    "cam_generator": "cam",
    "pseudo_labeler": "pseudo_label",
    "segmenter": "segmentation",
}

PYPROJECT = """\
[build-system]
requires = ["setuptools>=68"]
build-backend = "setuptools.build_meta"

[project]
name = "$distribution"
version = "0.1.0"
description = "wsseg $label plugin '$name'"
readme = "README.md"
requires-python = ">=3.10"
dependencies = ["wsseg$wsseg_range", "numpy>=1.26", "torch==$torch_version"]

[project.entry-points."$group"]
$name = "$module:$cls"

[tool.setuptools.packages.find]
include = ["$module*"]
"""

README = """\
# $distribution

A wsseg $label plugin, registered as `$name` in the `$group`
entry-point group. Scaffolded by `wsseg plugins new`; replace the example method in
`$module/__init__.py` with yours.

```bash
pip install -e .                 # registers the entry point
python -m pytest tests           # the wsseg conformance kit and the registration
wsseg plugins validate $name     # the same checks, from the command line
```

Select it in `params.yaml`:

```yaml
$section:
  plugin: $name
  config: {}                     # keys of ${cls}Config
```
"""

TESTS = """\
from wsseg.registry import get_plugin
from wsseg.testing import assert_conforms

from $module import $cls


def test_conforms_to_the_wsseg_interface():
    assert_conforms($cls, config=$test_config)


def test_is_registered_under_its_name():
    assert get_plugin("$kind", "$name") is $cls
"""

PSEUDO_LABELER = '''\
"""$name: a wsseg pseudo-labeler."""

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import Field
from wsseg import PluginConfig, PseudoLabeler


class ${cls}Config(PluginConfig):
    """Options of :class:`$cls` (`pseudo_label.config` in params.yaml)."""

    fraction: float = Field(0.5, gt=0, lt=1, description="keep pixels above this fraction of the CAM's maximum")


class $cls(PseudoLabeler):
    """Pseudo-label = the CAM, resized to the image grid, above a fraction of its maximum."""

    api_version = $api_version  # the wsseg plugin API this class is written for

    Config = ${cls}Config
    config: ${cls}Config

    def label(self, cam: np.ndarray, image: np.ndarray, myocardium: np.ndarray, weak_label: bool) -> np.ndarray:
        if not weak_label:
            return np.zeros(image.shape, dtype=bool)
        grid = torch.from_numpy(np.asarray(cam, dtype=np.float32))[None, None]
        resized = F.interpolate(grid, size=image.shape, mode="bilinear", align_corners=False)[0, 0].numpy()
        peak = resized.max()
        if peak <= 0:
            return np.zeros(image.shape, dtype=bool)
        return resized > self.config.fraction * peak
'''

SEGMENTER = '''\
"""$name: a wsseg segmenter."""

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import Field
from torch import nn
from wsseg import PluginConfig, Segmenter
from wsseg.distributed import local_share
from wsseg.training import Monitor, minibatches, train_loop


class ${cls}Config(PluginConfig):
    """Options of :class:`$cls` (`segmentation.config` or `myocardium.config` in params.yaml)."""

    channels: int = Field(8, ge=1, description="width of the hidden convolutions")
    epochs: int = Field(20, ge=1)
    lr: float = Field(1e-2, gt=0)
    batch_size: int = Field(16, ge=1)


class $cls(Segmenter):
    """Three convolutions and a sigmoid, trained with binary cross-entropy."""

    api_version = $api_version  # the wsseg plugin API this class is written for

    Config = ${cls}Config
    config: ${cls}Config
    network: nn.Module | None = None

    def _build(self, in_channels: int) -> nn.Module:
        torch.manual_seed(self.seed)
        c = self.config.channels
        self.in_channels = in_channels
        self.network = nn.Sequential(
            nn.Conv2d(in_channels, c, 3, padding=1), nn.ReLU(),
            nn.Conv2d(c, c, 3, padding=1), nn.ReLU(),
            nn.Conv2d(c, 1, 1),
        ).to(self.device)
        return self.network

    def fit(self, inputs, targets, *, val_inputs=None, val_targets=None, monitor: Monitor | None = None) -> None:
        network = self._build(inputs.shape[1])
        x = torch.from_numpy(np.asarray(inputs, dtype=np.float32))
        y = torch.from_numpy(np.asarray(targets, dtype=np.float32))

        def batches(rng: np.random.Generator):
            for index in minibatches(len(x), self.config.batch_size, rng):
                yield local_share(index)  # this process's rows of the global batch under torchrun

        def loss(model: nn.Module, index) -> torch.Tensor:
            return F.binary_cross_entropy_with_logits(model(x[index].to(self.device))[:, 0], y[index].to(self.device))

        cfg = self.config
        train_loop(network, batches, loss, epochs=cfg.epochs, lr=cfg.lr, seed=self.seed, monitor=monitor)

    @torch.no_grad()
    def predict(self, inputs: np.ndarray) -> np.ndarray:
        if self.network is None:
            raise RuntimeError("not trained: call fit or load_state_dict first")
        x = torch.from_numpy(np.asarray(inputs, dtype=np.float32)).to(self.device)
        return torch.sigmoid(self.network.eval()(x))[:, 0].cpu().numpy()

    def state_dict(self) -> dict[str, Any]:
        return {"in_channels": self.in_channels, "weights": self.network.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self._build(state["in_channels"]).load_state_dict(state["weights"])
'''

CAM_GENERATOR = '''\
"""$name: a wsseg CAM generator."""

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import Field
from torch import nn
from wsseg import CAMGenerator, CAMOutput, PluginConfig, WeakSet
from wsseg.distributed import local_share
from wsseg.training import Monitor, minibatches, train_loop


class ${cls}Config(PluginConfig):
    """Options of :class:`$cls` (`cam.config` in params.yaml)."""

    channels: int = Field(8, ge=1, description="width of the hidden convolutions")
    epochs: int = Field(20, ge=1)
    lr: float = Field(1e-2, gt=0)
    batch_size: int = Field(16, ge=1)


class $cls(CAMGenerator):
    """A small CNN whose last layer is the CAM (half resolution); slice logit = the CAM's mean."""

    api_version = $api_version  # the wsseg plugin API this class is written for

    Config = ${cls}Config
    config: ${cls}Config
    levels = ("slice",)

    def __init__(self, config=None, *, device="cpu", seed=0):
        super().__init__(config, device=device, seed=seed)
        torch.manual_seed(seed)
        c = self.config.channels
        self.network = nn.Sequential(
            nn.Conv2d(2, c, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(c, c, 3, padding=1), nn.ReLU(),
            nn.Conv2d(c, 1, 1),
        ).to(self.device)

    @staticmethod
    def _inputs(data: WeakSet) -> torch.Tensor:
        return torch.from_numpy(np.stack([data.images, data.myocardium], axis=1).astype(np.float32))

    def fit(self, train: WeakSet, level, *, val: WeakSet | None = None, monitor: Monitor | None = None) -> None:
        x, y = self._inputs(train), torch.from_numpy(np.asarray(train.labels, dtype=np.float32))

        def batches(rng: np.random.Generator):
            for index in minibatches(len(x), self.config.batch_size, rng):
                yield local_share(index)  # this process's rows of the global batch under torchrun

        def loss(model: nn.Module, index) -> torch.Tensor:
            logits = model(x[index].to(self.device)).mean(dim=(1, 2, 3))
            return F.binary_cross_entropy_with_logits(logits, y[index].to(self.device))

        cfg = self.config
        train_loop(self.network, batches, loss, epochs=cfg.epochs, lr=cfg.lr, seed=self.seed, monitor=monitor)

    @torch.no_grad()
    def generate(self, data: WeakSet) -> CAMOutput:
        cams = self.network.eval()(self._inputs(data).to(self.device))[:, 0].cpu()
        slice_scores = torch.sigmoid(cams.mean(dim=(1, 2))).numpy()
        stack_scores = np.array([slice_scores[rows].max() for rows in data.stacks()], dtype=np.float32)
        return CAMOutput(cams=cams.numpy(), slice_scores=slice_scores, stack_scores=stack_scores)

    def state_dict(self) -> dict[str, Any]:
        return {"weights": self.network.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.network.load_state_dict(state["weights"])
'''

PLUGIN: dict[Kind, str] = {"cam_generator": CAM_GENERATOR, "pseudo_labeler": PSEUDO_LABELER, "segmenter": SEGMENTER}


def compatible_range(wsseg_version: str) -> str:
    """The wsseg releases a plugin written against ``wsseg_version`` works with: the same minor series before 1.0."""
    major, minor = (int(part) for part in wsseg_version.split(".")[:2])
    upper = f"{major}.{minor + 1}" if major == 0 else f"{major + 1}"
    return f">={major}.{minor},<{upper}"


def scaffold(kind: Kind, name: str, out: str | Path = ".") -> Path:
    """Write the package for a ``kind`` plugin called ``name`` under ``out``; return its folder."""
    if not NAME.match(name):
        raise PluginError(
            f"plugin name '{name}': use lower-case letters, digits and single hyphens, starting with a letter"
        )
    module = "wsseg_" + name.replace("-", "_")
    cls = "".join(part.capitalize() for part in name.split("-")) + SUFFIX[kind]
    root = Path(out) / f"wsseg-{name}"
    if root.exists():
        raise PluginError(f"{root} already exists")
    values = {
        "wsseg_range": compatible_range(__version__),
        "torch_version": version("torch"),
        "api_version": API_VERSION,
        "name": name,
        "kind": kind,
        "label": kind.replace("_", " "),
        "group": GROUPS[kind],
        "distribution": f"wsseg-{name}",
        "module": module,
        "cls": cls,
        "section": PARAMS_SECTION[kind],
        "test_config": TEST_CONFIG[kind],
    }
    files = {
        "pyproject.toml": PYPROJECT,
        "README.md": README,
        f"{module}/__init__.py": PLUGIN[kind],
        f"tests/test_{module}.py": TESTS,
    }
    for path, template in files.items():
        target = root / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(Template(template).substitute(values))
    return root
