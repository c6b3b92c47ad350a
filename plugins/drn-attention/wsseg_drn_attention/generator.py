"""The ``drn-attention`` CAM generator: :class:`DRNAttentionCAM` and its config."""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import Field, field_validator

from wsseg.augment import random_dihedral, random_dihedral_codes
from wsseg.distributed import local_share
from wsseg.interfaces import CAMGenerator, CAMOutput, Level, PluginConfig, WeakSet
from wsseg.metrics import auroc
from wsseg.training import Monitor, minibatches, native_bfloat16, train_ensemble
from wsseg_drn_attention.model import CAMNet
from wsseg_drn_attention.pooling import restrict, restricted_average

STATE_FORMAT = 1
_ARCHITECTURE_KEYS = ("channels", "attention", "attention_reduction", "pool_divisor", "myo_threshold", "myo_dilation")


class DRNAttentionConfig(PluginConfig):
    """Configuration of :class:`DRNAttentionCAM` (unknown keys are errors).

    Defaults are sized for CPU training on ~64x64 region-of-interest crops; see the README for the
    measurements behind them.
    """

    channels: tuple[Annotated[int, Field(ge=1, le=1024)], ...] = Field(
        (16, 32, 32, 32, 32, 32, 32, 32),
        description="widths of DRN-D-22 layers 1..8 (8 values); the reference scripts use 16,32,64,128,128,128,128,128",
    )
    attention: bool = Field(True, description="non-local self-attention between backbone and head")
    attention_reduction: int = Field(8, ge=1, le=1024, description="query/key width = channels[-1] // reduction")
    pool_divisor: Literal["all", "myocardium"] = Field(
        "all", description="restricted-CAM average over all CAM pixels (reference) or over the mask area"
    )
    myo_threshold: float = Field(0.4, ge=0.0, lt=1.0, description="threshold of the downsampled myocardium map")
    myo_dilation: int = Field(3, ge=1, le=31, description="max-pool kernel dilating the myocardium map (odd; 1 = none)")
    epochs: int = Field(25, ge=1, le=100_000, description="training epochs")
    lr: float = Field(1e-3, gt=0.0, le=1.0, description="Adam learning rate")
    batch_size: int = Field(16, ge=1, le=4096, description="slices per step (slice level) and per inference chunk")
    stack_batch_size: int = Field(2, ge=1, le=1024, description="stacks per step (stack level)")
    stack_training: Literal["stack", "slices", "mil"] = Field(
        "stack",
        description="stack level: one logit per stack from the CAM pooled over the stack (the paper); 'slices': "
        "each slice learns its stack's label; 'mil' (multiple instance): a stack's logit is its highest slice "
        "logit. With 'slices' and 'mil' a stack scores its highest slice",
    )
    augment: bool = Field(True, description="random flips / 90-degree rotations of image + myocardium in training")
    cosine: bool = Field(False, description="anneal the learning rate to 0 over the epochs (cosine)")
    select_best: bool = Field(
        False, description="end with the weights of the epoch with the best val AUROC (when val data is given)"
    )
    ensemble: int = Field(
        1,
        ge=1,
        le=16,
        description="train this many classifiers, each from its own seed, and pool the mean of their CAMs",
    )
    mixed_precision: bool = Field(
        False,
        description="compute the network in bfloat16, channels last, where the device does so natively (GPUs, "
        "CPUs with AMX or AVX512-BF16); float32 elsewhere, where bfloat16 would be slower",
    )

    @field_validator("channels")
    @classmethod
    def _eight_channels(cls, value: tuple[int, ...]) -> tuple[int, ...]:
        if len(value) != 8:
            raise ValueError(f"channels needs 8 values (DRN-D-22 layers 1..8), got {len(value)}")
        return value

    @field_validator("myo_dilation")
    @classmethod
    def _odd_dilation(cls, value: int) -> int:
        if value % 2 == 0:
            raise ValueError(f"myo_dilation must be odd (a centred max-pool kernel), got {value}")
        return value


class DRNAttentionCAM(CAMGenerator):
    """DRN-D-22 (output stride 4) + non-local attention + myocardium-restricted pooling.

    ``slice`` level: one logit per slice, BCE on slice labels. ``stack`` level: the same network with
    slices folded into the batch (= 3D with kxkx1 kernels), one logit per stack from the restricted
    CAM averaged over the whole stack, BCE weighted with ``pos_weight = negatives / positives`` of the
    training stacks. With ``stack_training: slices`` the stack level trains like the slice level on its
    stack's label repeated on every slice; with ``mil`` a stack's logit is its highest slice logit
    (multiple-instance learning); with either, a stack scores its highest slice. ``generate`` returns
    the restricted CAM at 1/4 of the input resolution. With ``ensemble`` above 1 it trains that many
    networks (seeds ``seed``, ``seed + 1000``, ...); their mean CAM is pooled into the scores as one
    network's would be (pooling is linear, so the slice logits are the members' mean logits).
    """

    api_version = 1

    Config: ClassVar[type[PluginConfig]] = DRNAttentionConfig
    levels: ClassVar[tuple[Level, ...]] = ("slice", "stack")
    config: DRNAttentionConfig

    def __init__(
        self, config: DRNAttentionConfig | dict | None = None, *, device: str | torch.device = "cpu", seed: int = 0
    ):
        super().__init__(config, device=device, seed=seed)
        self.level: Level | None = None
        self.history: list[dict[str, float]] = []
        self.model = self._build()
        self.members: list[CAMNet] = []  # the ensemble's other networks

    # ------------------------------------------------------------------ helpers
    def _build(self) -> CAMNet:
        c = self.config
        model = CAMNet(
            2, c.channels, c.attention, c.attention_reduction, c.pool_divisor, c.myo_threshold, c.myo_dilation
        )
        model = model.to(self.device).eval()
        return model.compute_in_bfloat16() if c.mixed_precision and native_bfloat16(self.device) else model

    @staticmethod
    def network_inputs(data: WeakSet) -> torch.Tensor:
        """``(N, 2, H, W)`` float32 CPU tensor of image and myocardium."""
        h, w = data.images.shape[1:]
        if h % 4 or w % 4:
            raise ValueError(f"drn-attention needs H and W divisible by 4 (CAM at 1/4 resolution), got {h}x{w}")
        x = np.stack([np.asarray(data.images, np.float32), np.asarray(data.myocardium, np.float32)], axis=1)
        return torch.from_numpy(np.ascontiguousarray(x))

    @staticmethod
    def _stack_groups(data: WeakSet) -> tuple[list[np.ndarray], np.ndarray]:
        stacks = data.stacks()
        groups = np.empty(len(data.images), dtype=np.int64)
        for s, idx in enumerate(stacks):
            groups[idx] = s
        return stacks, groups

    @staticmethod
    def _labels(data: WeakSet) -> np.ndarray:
        if data.labels is None:
            raise ValueError("fit needs weak labels (WeakSet.labels is None)")
        labels = np.asarray(data.labels, dtype=np.float32)
        if not np.isin(labels, (0.0, 1.0)).all():
            raise ValueError("weak labels must be 0 or 1")
        return labels

    def _pools_stacks(self, level: Level) -> bool:
        """Whether ``level`` has one logit per stack (else one per slice)."""
        return level == "stack" and self.config.stack_training == "stack"

    def _predict(
        self, data: WeakSet, level: Level, models: list[CAMNet] | None = None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Restricted CAMs ``(N, h, w)``, slice logits ``(N,)`` (float64) and stack scores ``(S,)`` (CPU) of
        the mean CAM of ``models`` (default: the trained network and the ensemble's members)."""
        x = self.network_inputs(data)
        n, _, h, w = x.shape
        models = [model.eval() for model in models or [self.model, *self.members]]
        restricted, masks = [], []
        with torch.no_grad():
            for start in range(0, n, self.config.batch_size):
                xb = x[start : start + self.config.batch_size].to(self.device)
                cam, mask = models[0].cam_and_mask(xb)  # the mask depends on the input only
                cam = sum((model(xb) for model in models[1:]), cam) / len(models)
                restricted.append(restrict(cam, mask).float().cpu())
                masks.append(mask.float().cpu())
        if n == 0:
            empty = np.zeros((0, h // 4, w // 4), np.float32)
            return empty, np.zeros(0, np.float32), np.zeros(0, np.float32)
        r, m = torch.cat(restricted), torch.cat(masks)
        divisor = self.config.pool_divisor
        # pooled and squashed in float64: vectorised float32 sums and sigmoids round differently with
        # a slice's place in the batch, and its score must not depend on the slices beside it
        slice_logits = restricted_average(r.double(), m, divisor)
        stacks, groups = self._stack_groups(data)
        if self._pools_stacks(level):
            stack_scores = torch.sigmoid(
                restricted_average(r.double(), m, divisor, torch.from_numpy(groups), len(stacks))
            ).numpy()
        else:
            slice_scores = torch.sigmoid(slice_logits).numpy()
            stack_scores = np.array([slice_scores[idx].max() for idx in stacks], dtype=np.float32)
        return r[:, 0].numpy(), slice_logits.numpy(), stack_scores.astype(np.float32)

    # ------------------------------------------------------------------ interface
    def fit(self, train: WeakSet, level: Level, *, val: WeakSet | None = None, monitor: Monitor | None = None) -> None:
        if level not in self.levels:
            raise ValueError(f"level must be one of {self.levels}, got {level!r}")
        labels = self._labels(train)
        x = self.network_inputs(train)
        if val is not None:
            self.network_inputs(val)  # fail early on a bad validation grid
            val_labels = self._labels(val)
        cfg, device = self.config, self.device
        square = x.shape[-1] == x.shape[-2]

        self.level = level

        if level == "slice" or cfg.stack_training == "slices":
            y = torch.from_numpy(labels)

            def batches(rng: np.random.Generator):
                for idx in minibatches(len(x), cfg.batch_size, rng):
                    codes = random_dihedral_codes(len(idx), rng, square) if cfg.augment else None
                    yield local_share(idx), local_share(codes)

            def loss(model: CAMNet, batch) -> torch.Tensor:
                idx, codes = batch
                xb = x[idx].to(device)
                if codes is not None:
                    xb = random_dihedral(xb, codes)
                return F.binary_cross_entropy_with_logits(model.slice_logits(xb), y[idx].to(device))

        else:
            stacks, _ = self._stack_groups(train)
            stack_labels = np.array([labels[idx].max() for idx in stacks], dtype=np.float32)
            n_pos = float(stack_labels.sum())
            n_neg = len(stack_labels) - n_pos
            pos_weight = torch.tensor(n_neg / n_pos if n_pos > 0 and n_neg > 0 else 1.0, device=device)
            y = torch.from_numpy(stack_labels)

            def batches(rng: np.random.Generator):
                for sidx in minibatches(len(stacks), cfg.stack_batch_size, rng):
                    # one transform per stack (its slices stay aligned), drawn for the global batch
                    stack_codes = random_dihedral_codes(len(sidx), rng, square) if cfg.augment else None
                    sidx, stack_codes = local_share(sidx), local_share(stack_codes)
                    depths = [len(stacks[s]) for s in sidx]
                    idx = np.concatenate([stacks[s] for s in sidx])
                    groups = np.repeat(np.arange(len(sidx)), depths)
                    codes = np.repeat(stack_codes, depths) if stack_codes is not None else None
                    yield idx, torch.from_numpy(groups), y[sidx], codes

            def loss(model: CAMNet, batch) -> torch.Tensor:
                idx, groups, yb, codes = batch
                xb = x[idx].to(device)
                if codes is not None:
                    xb = random_dihedral(xb, codes)
                groups = groups.to(device)
                if cfg.stack_training == "mil":  # a stack is as positive as its most positive slice
                    slices = model.slice_logits(xb)
                    logits = slices.new_full((len(yb),), -torch.inf).scatter_reduce(0, groups, slices, "amax")
                else:
                    logits = model.stack_logits(xb, groups, len(yb))
                return F.binary_cross_entropy_with_logits(logits, yb.to(device), pos_weight=pos_weight)

        validate = None
        if val is not None:
            if level == "stack":
                val_target = np.array([val_labels[idx].max() for idx in val.stacks()])
            else:
                val_target = val_labels

            def validate(model: CAMNet) -> dict[str, float]:
                _, slice_logits, stack_scores = self._predict(val, level, [model])
                scores = stack_scores if level == "stack" else slice_logits
                return {"val_auroc": auroc(scores, val_target)}

        def seeded_build(seed: int) -> CAMNet:
            torch.manual_seed(seed)
            return self._build()

        networks, self.history = train_ensemble(
            seeded_build,
            cfg.ensemble,
            seed=self.seed,
            monitor=monitor or Monitor(f"drn-attention ({level})"),
            batches=batches,
            loss=loss,
            epochs=cfg.epochs,
            lr=cfg.lr,
            validate=validate,
            cosine=cfg.cosine,
            select="val_auroc" if cfg.select_best and validate is not None else None,
        )
        self.model, *self.members = [network.eval() for network in networks]

    def generate(self, data: WeakSet) -> CAMOutput:
        if self.level is None:
            raise RuntimeError("DRNAttentionCAM.generate needs a trained model: call fit or load_state_dict first")
        cams, slice_logits, stack_scores = self._predict(data, self.level)
        slice_scores = torch.sigmoid(torch.from_numpy(slice_logits)).numpy()
        return CAMOutput(
            cams=cams.astype(np.float32, copy=False),
            slice_scores=slice_scores.astype(np.float32, copy=False),
            stack_scores=stack_scores.astype(np.float32, copy=False),
        )

    def state_dict(self) -> dict[str, Any]:
        return {
            "format": STATE_FORMAT,
            "level": self.level,
            "architecture": {k: getattr(self.config, k) for k in _ARCHITECTURE_KEYS},
            "model": _weights(self.model),
            "members": [_weights(member) for member in self.members],
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state.get("format") != STATE_FORMAT:
            raise ValueError(f"unknown drn-attention state format {state.get('format')!r} (expected {STATE_FORMAT})")
        level = state.get("level")
        if level is not None and level not in self.levels:
            raise ValueError(f"bad level in state: {level!r}")
        saved = state.get("architecture", {})
        mismatched = [
            k for k in _ARCHITECTURE_KEYS if k in saved and _normalise(saved[k]) != _normalise(getattr(self.config, k))
        ]
        if mismatched:
            detail = ", ".join(f"{k}: saved {saved[k]!r}, config {getattr(self.config, k)!r}" for k in mismatched)
            raise ValueError(f"state was saved with another architecture ({detail})")
        self.model.load_state_dict(state["model"])
        self.model.eval()
        self.members = []
        for weights in state.get("members", []):
            self.members.append(self._build())
            self.members[-1].load_state_dict(weights)
        self.level = level


def _weights(model: CAMNet) -> dict[str, torch.Tensor]:
    return {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}


def _normalise(value: Any) -> Any:
    return tuple(value) if isinstance(value, (list, tuple)) else value
