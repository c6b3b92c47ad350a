"""The ``unet`` segmenter plugin: a U-Net trained with Dice loss."""

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import Field, field_validator, model_validator

from wsseg.augment import (
    paint_scar,
    random_affine,
    random_dihedral,
    random_dihedral_codes,
    random_gamma,
    random_intensity,
    renormalise,
)
from wsseg.distributed import local_share
from wsseg.interfaces import PluginConfig, Segmenter
from wsseg.training import Monitor, in_bfloat16, minibatches, native_bfloat16, train_ensemble
from wsseg_unet.loss import bright_wall, dice_loss
from wsseg_unet.model import UNet


class UNetConfig(PluginConfig):
    """Width, depth and training schedule of the U-Net."""

    base_channels: int = Field(16, ge=1, le=256, description="channels of the first level, doubled per level")
    depth: int = Field(4, ge=2, le=6, description="number of resolution levels")
    epochs: int = Field(30, ge=1, le=100_000)
    lr: float = Field(1e-3, gt=0, le=10)
    batch_size: int = Field(16, ge=1, le=4096)
    augment: bool = Field(True, description="random flips and 90-degree rotations while training")
    affine: bool = Field(False, description="also random rotations, scaling and shifts (bilinear; ranges below)")
    affine_degrees: float = Field(180.0, ge=0, le=180, description="affine: rotation range, +- degrees")
    affine_zoom: tuple[float, float] | None = Field(
        None, description="affine: magnification range, log-uniform (e.g. [0.4, 2.5]); unset: +-15% scaling"
    )
    affine_shift: float = Field(0.05, ge=0, le=1, description="affine: shift range, +- fraction of the side")
    gamma: float = Field(
        0.0, ge=0, le=2, description="random gamma correction of the image channel, exponent exp(+-gamma) (0 = off)"
    )
    scar_painting: float = Field(
        0.0, ge=0, le=1, description="probability of painting scar-like enhancement into a sample's target (a wall)"
    )
    scar_painting_channels: int = Field(
        1,
        ge=1,
        le=16,
        description="scar painting: the same sectors go into up to this many leading input channels (3 for a 2.5D "
        "wall: the slices below and above too, as scar spans neighbouring slices)",
    )
    intensity_channels: int = Field(
        1,
        ge=1,
        le=16,
        description="gamma, bias field, coarser acquisition, blur, noise and renormalisation change up to this many "
        "leading input channels together, with one draw a sample (3 for a 2.5D wall: the slice and its neighbours, "
        "one acquisition)",
    )
    bias_field: float = Field(0.0, ge=0, le=2, description="random smooth bias field of the image, log-amplitude")
    low_resolution: float = Field(0.0, ge=0, le=1, description="probability of a coarser acquisition (up to 2.5x)")
    blur: float = Field(0.0, ge=0, le=5, description="random Gaussian blur, sigma up to this many pixels")
    noise: float = Field(0.0, ge=0, le=1, description="random noise, std up to this fraction of the image mean")
    renormalise: bool = Field(
        False,
        description="after augmentation, map each sample's intensity percentiles 1..99.5 to 0..1: a zoomed sample "
        "is normalised over what it shows, as an input normalised at ingest is",
    )
    bce_weight: float = Field(
        0.0, ge=0, le=1000, description="weight of a binary cross-entropy term added to the Dice loss"
    )
    bright_wall_weight: float = Field(
        0.0,
        ge=0,
        le=1000,
        description="cross-entropy counts (1 + this) times on target pixels brighter than halfway from the "
        "target's median to the median of what it encloses (bright, scar-like wall; needs bce_weight)",
    )
    cosine: bool = Field(False, description="anneal the learning rate to 0 over the epochs (cosine)")
    mixed_precision: bool = Field(
        False,
        description="compute convolutions in bfloat16, channels last, where the device does so natively (GPUs, "
        "CPUs with AMX or AVX512-BF16); float32 elsewhere, where bfloat16 would be slower",
    )
    select_best: bool = Field(
        False, description="end with the weights of the epoch with the best val Dice (when val data is given)"
    )
    ensemble: int = Field(
        1,
        ge=1,
        le=16,
        description="train this many U-Nets, each from its own seed, and predict the mean of their probabilities",
    )

    @field_validator("affine_zoom")
    @classmethod
    def _zoom_range(cls, value: tuple[float, float] | None) -> tuple[float, float] | None:
        if value is not None and not 0.1 <= value[0] <= value[1] <= 10:
            raise ValueError(f"expected [low, high] with 0.1 <= low <= high <= 10, got {list(value)}")
        return value

    @model_validator(mode="after")
    def _bright_wall_needs_cross_entropy(self) -> "UNetConfig":
        if self.bright_wall_weight and not self.bce_weight:
            raise ValueError("bright_wall_weight weights the cross-entropy term: set bce_weight above 0")
        return self

    def intensity(self) -> dict[str, float]:
        """The :func:`~wsseg.augment.random_intensity` settings that are on."""
        settings = {
            "bias_field": self.bias_field,
            "low_resolution": self.low_resolution,
            "blur": self.blur,
            "noise": self.noise,
        }
        return {name: value for name, value in settings.items() if value}


def one_hot(targets: np.ndarray, classes: int) -> np.ndarray:
    """Class maps ``(N, H, W)`` as ``(N, classes - 1, H, W)`` channels, one per class above 0 (binary: the mask)."""
    if classes == 2:
        return targets[:, None].astype(np.float32)
    return np.stack([targets == c for c in range(1, classes)], axis=1).astype(np.float32)


class UNetSegmenter(Segmenter):
    """2D U-Net segmenter (Dice loss, Adam), used for myocardium and fibrosis.

    Binary targets train one sigmoid output. Targets with context classes (``0..K``, e.g. background,
    cavity, wall) train a softmax over ``K + 1`` classes with the Dice of each class above 0 (and
    cross-entropy with ``bce_weight``); :meth:`predict` gives the probability of class ``K``. With
    ``ensemble`` above 1 it trains that many U-Nets (seeds ``seed``, ``seed + 1000``, ...) and
    predicts the mean of their probabilities.
    """

    api_version = 1

    Config = UNetConfig
    config: UNetConfig

    network: UNet | None = None  # the first (or only) U-Net
    members: list[UNet] = []  # the ensemble's other U-Nets
    _bfloat16 = False

    def _build(self, in_channels: int, classes: int, seed: int) -> UNet:
        torch.manual_seed(seed)
        cfg = self.config
        out_channels = 1 if classes == 2 else classes
        network = UNet(in_channels, cfg.base_channels, cfg.depth, out_channels).to(self.device)
        self._bfloat16 = cfg.mixed_precision and native_bfloat16(self.device)  # decided once per network
        return network.to(memory_format=torch.channels_last) if self._bfloat16 else network

    def _forward(self, model: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
        """Probabilities ``(N, K, H, W)`` in float32 (``K`` 1: sigmoid; more: softmax over the classes);
        convolutions in bfloat16 with ``mixed_precision`` on a device that has it natively."""
        return in_bfloat16(model, x) if self._bfloat16 else model(x)

    def fit(self, inputs, targets, *, val_inputs=None, val_targets=None, monitor: Monitor | None = None) -> None:
        cfg = self.config
        classes = max(2, int(targets.max()) + 1 if targets.size else 2)
        data = torch.from_numpy(np.concatenate([inputs, one_hot(targets, classes)], axis=1).astype(np.float32))
        channels = classes - 1  # the target's channels, last in each sample: one per class above 0
        images = min(cfg.intensity_channels, inputs.shape[1])  # the leading input channels intensity changes touch

        def batches(rng: np.random.Generator):
            for index in minibatches(len(data), cfg.batch_size, rng):
                batch = data[index]
                if cfg.scar_painting:
                    batch = paint_scar(batch, rng, cfg.scar_painting, min(cfg.scar_painting_channels, inputs.shape[1]))
                if cfg.augment:
                    batch = random_dihedral(batch, random_dihedral_codes(len(batch), rng))
                if cfg.affine:
                    batch = random_affine(batch, rng, cfg.affine_degrees, shift=cfg.affine_shift, zoom=cfg.affine_zoom)
                if cfg.gamma:
                    batch = random_gamma(batch, rng, cfg.gamma, images)
                if cfg.intensity():
                    batch = random_intensity(batch, rng, **cfg.intensity(), channels=images)
                if cfg.renormalise:
                    batch = renormalise(batch, channels=images)
                yield local_share(batch)  # augmented as a whole: the random draws stay the same in every process

        def loss(model, batch):
            weight = None  # per-pixel cross-entropy weights: bright wall counts more
            if cfg.bright_wall_weight:
                weight = 1 + cfg.bright_wall_weight * bright_wall(batch[:, 0], batch[:, -1]).to(self.device)
            batch = batch.to(self.device)
            predicted, target = self._forward(model, batch[:, :-channels]), batch[:, -channels:]
            if classes == 2:
                value = dice_loss(predicted[:, 0], target[:, 0])
                if cfg.bce_weight:
                    cross_entropy = F.binary_cross_entropy(predicted[:, 0], target[:, 0], weight=weight)
                    value = value + cfg.bce_weight * cross_entropy
                return value
            target = torch.cat([(1 - target.sum(1, keepdim=True)).clamp_min(0), target], dim=1)
            value = sum(dice_loss(predicted[:, c], target[:, c]) for c in range(1, classes)) / channels
            if cfg.bce_weight:
                cross_entropy = -(target * predicted.clamp_min(1e-6).log()).sum(1)
                value = value + cfg.bce_weight * (cross_entropy if weight is None else weight * cross_entropy).mean()
            return value

        validate = None
        if val_inputs is not None and val_targets is not None:

            def validate(model):
                predicted = self._probabilities([model], val_inputs) > 0.5
                truth = val_targets > classes - 1.5  # the class to segment: the highest
                return {"val_dice": float(2 * (predicted & truth).sum() / max(predicted.sum() + truth.sum(), 1))}

        select = "val_dice" if cfg.select_best and validate is not None else None
        networks, _ = train_ensemble(
            lambda seed: self._build(inputs.shape[1], classes, seed),
            cfg.ensemble,
            seed=self.seed,
            monitor=monitor,
            batches=batches,
            loss=loss,
            epochs=cfg.epochs,
            lr=cfg.lr,
            validate=validate,
            cosine=cfg.cosine,
            select=select,
        )
        self.network, *self.members = networks

    @torch.no_grad()
    def predict(self, inputs: np.ndarray) -> np.ndarray:
        if self.network is None:
            raise RuntimeError("the U-Net is not trained: call fit or load_state_dict first")
        return self._probabilities([self.network, *self.members], inputs)

    @torch.no_grad()
    def _probabilities(self, networks: list[UNet], inputs: np.ndarray) -> np.ndarray:
        """The mean over ``networks`` of the probability of the class to segment, ``(N, H, W)``."""
        batches = (
            torch.from_numpy(np.ascontiguousarray(inputs[i : i + 64], dtype=np.float32)).to(self.device)
            for i in range(0, len(inputs), 64)
        )
        out = [sum(self._forward(n.eval(), x)[:, -1] for n in networks).cpu() / len(networks) for x in batches]
        return torch.cat(out).numpy() if out else np.zeros((0, *inputs.shape[2:]), np.float32)

    def state_dict(self) -> dict[str, Any]:
        if self.network is None:
            raise RuntimeError("the U-Net is not trained")
        out_channels = self.network.head.out_channels
        return {
            "in_channels": self.network.down[0][0].in_channels,
            "classes": 2 if out_channels == 1 else out_channels,
            "weights": self.network.state_dict(),
            "members": [member.state_dict() for member in self.members],
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        networks = []
        for weights in [state["weights"], *state.get("members", [])]:
            networks.append(self._build(state["in_channels"], state.get("classes", 2), self.seed))
            networks[-1].load_state_dict(weights)
            networks[-1].eval()
        self.network, *self.members = networks
