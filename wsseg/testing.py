"""Conformance kit: check a plugin class against its wsseg interface on small synthetic inputs.

For a plugin's own test suite::

    from wsseg.testing import assert_conforms

    def test_my_labeler_conforms():
        assert_conforms(MyLabeler, config={"fraction": 0.3})

:func:`check_plugin` runs the checks of the plugin's kind and returns one :class:`Check` per
property (``wsseg plugins validate NAME`` prints them); :func:`assert_conforms` fails a test with
every failed check. ``config`` overrides the plugin's defaults, e.g. to train for one epoch: the
kit trains CAM generators and segmenters (twice, for the determinism check) on about twenty
32x32 phantom slices, on ``device`` (CPU by default).
"""

from __future__ import annotations

import copy
import inspect
import io
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

import numpy as np
import torch
from pydantic import ValidationError

from wsseg.data.synthetic import SyntheticConfig, phantom_case
from wsseg.interfaces import (
    API_VERSION,
    CAMGenerator,
    CAMOutput,
    Level,
    Plugin,
    PluginConfig,
    PseudoLabeler,
    Segmenter,
    WeakSet,
)
from wsseg.training import Monitor

__all__ = [
    "Check",
    "Phantoms",
    "assert_conforms",
    "check_cam_generator",
    "check_plugin",
    "check_pseudo_labeler",
    "check_segmenter",
    "phantoms",
]

SIZE = 32
"""Side of the synthetic slices (divisible by 32, so networks may halve it 5 times)."""
CAM_STRIDE = 4
"""The synthetic CAMs given to pseudo-labelers are on a grid this many times coarser than the image."""
MYOCARDIUM, FIBROSIS = 2, 3
"""EMIDEC label values of the phantoms."""


@dataclass(frozen=True)
class Check:
    """The outcome of one conformance check; ``detail`` says why it failed."""

    name: str
    passed: bool
    detail: str = ""


@dataclass
class Phantoms:
    """Synthetic slices with everything a plugin may see, and the pixel truth it may not."""

    images: np.ndarray
    myocardium: np.ndarray
    fibrosis: np.ndarray
    stack_ids: np.ndarray

    def labels(self, level: Level) -> np.ndarray:
        """Weak labels per slice: the slice's own (``slice``) or its stack's (``stack``)."""
        per_slice = np.asarray(self.fibrosis.any(axis=(1, 2)), dtype=np.int64)
        if level == "slice":
            return per_slice
        return np.array([per_slice[self.stack_ids == s].max() for s in self.stack_ids])

    def weak_set(self, level: Level | None = None) -> WeakSet:
        """The slices as a :class:`WeakSet`, with weak labels at ``level`` (none without it)."""
        return WeakSet(self.images, self.myocardium, self.stack_ids, None if level is None else self.labels(level))


def phantoms(n_stacks: int = 6, seed: int = 0) -> Phantoms:
    """``n_stacks`` synthetic LGE stacks of 3-4 slices of ``SIZE`` x ``SIZE``, every other one scarred."""
    rng = np.random.default_rng(seed)
    config = SyntheticConfig(image_size=SIZE, min_slices=3, max_slices=4)
    cases = [phantom_case(rng, config, fibrosis=s % 2 == 0) for s in range(n_stacks)]
    labels = np.concatenate([lab for _, lab in cases])
    return Phantoms(
        images=np.concatenate([img for img, _ in cases]).astype(np.float32),
        myocardium=(labels >= MYOCARDIUM).astype(np.float32),
        fibrosis=labels == FIBROSIS,
        stack_ids=np.concatenate([np.full(len(img), s) for s, (img, _) in enumerate(cases)]),
    )


class _QuietMonitor(Monitor):
    """A monitor without progress bars, so check reports stay readable."""

    def __init__(self) -> None:
        super().__init__("conformance")

    def epochs(self, n: int):
        yield from range(n)


class _Checks:
    """Runs named checks, recording each as passed or failed (with the exception's message)."""

    def __init__(self) -> None:
        self.results: list[Check] = []

    def __call__(self, name: str, check: Callable[[], Any], *needs: Any) -> Any:
        """Run ``check``; return its value, or None when it (or a check it ``needs``) failed."""
        if any(need is None for need in needs):
            self.results.append(Check(name, False, "skipped: an earlier check it needs failed"))
            return None
        try:
            value = check()
        except Exception as exc:  # every failure becomes a report line, not a crash
            self.results.append(Check(name, False, _describe(exc)))
            return None
        self.results.append(Check(name, True))
        return True if value is None else value


def _describe(exc: Exception) -> str:
    """One line for a failed check: the assertion's message, a config error's key, or the exception."""
    if isinstance(exc, AssertionError):
        return str(exc)
    if isinstance(exc, ValidationError):
        first = exc.errors()[0]
        return f"{'.'.join(map(str, first['loc']))}: {first['msg']} (got {first.get('input')!r})"
    return f"{type(exc).__name__}: {exc}"


def _expect(condition: object, message: str) -> None:
    if not condition:
        raise AssertionError(message)


# ---------------------------------------------------------------- every kind


def _common_checks(checks: _Checks, cls: Any, base: type[Plugin], config: dict | None, device: str) -> Any:
    """Interface, config model and constructor checks; returns a factory ``seed -> instance``."""

    def interface() -> None:
        _expect(isinstance(cls, type) and issubclass(cls, base), f"{cls!r} does not derive from wsseg.{base.__name__}")
        _expect(not inspect.isabstract(cls), f"abstract methods left: {', '.join(sorted(cls.__abstractmethods__))}")
        _expect(
            cls.api_version == API_VERSION,
            f"api_version is {cls.api_version!r}; set it to {API_VERSION}, the plugin API of this wsseg",
        )

    def config_model() -> None:
        model = cls.Config
        _expect(
            isinstance(model, type) and issubclass(model, PluginConfig),
            "Config must be a subclass of wsseg.PluginConfig",
        )
        try:
            defaults = model()
        except ValidationError as exc:
            raise AssertionError(
                f"Config() needs a default for every field: {'.'.join(map(str, exc.errors()[0]['loc']))}"
            ) from None
        _expect(
            model.model_validate(defaults.model_dump(mode="json")) == defaults,
            "defaults do not survive a JSON round trip",
        )
        try:
            model.model_validate({"no_such_key_": 1})
        except ValidationError:
            return
        raise AssertionError("Config accepts unknown keys (derive it from wsseg.PluginConfig)")

    def override() -> None:
        cls.Config.model_validate(config or {})

    def constructor() -> Callable[[int], Any]:
        plugin = cls(config or {}, device=device, seed=0)
        _expect(isinstance(plugin.config, cls.Config), "self.config is not an instance of Config")
        _expect(plugin.config == cls.Config.model_validate(config or {}), "self.config differs from the config given")
        cls(cls.Config.model_validate(config or {}), device=device, seed=0)
        return lambda seed: cls(copy.deepcopy(config or {}), device=device, seed=seed)

    derives = checks("derives from the interface, nothing abstract left", interface)
    checks("Config: pydantic model, defaults for every field, unknown keys refused", config_model, derives)
    valid = checks(f"config {config or {}} validates", override, derives)
    return checks("constructs from a dict or a Config, with device and seed", constructor, valid)


# ---------------------------------------------------------------- pseudo-labelers


def _coarse_cam(lesion: np.ndarray, myocardium: np.ndarray) -> np.ndarray:
    """A CAM on a grid ``CAM_STRIDE`` times coarser: high on ``lesion``, low on the rest of the myocardium."""
    h, w = lesion.shape
    fine = lesion.astype(np.float32) * 2.0 + myocardium * 0.2 - 0.1
    return fine.reshape(h // CAM_STRIDE, CAM_STRIDE, w // CAM_STRIDE, CAM_STRIDE).mean(axis=(1, 3))


def check_pseudo_labeler(cls: Any, config: dict | None = None, *, device: str = "cpu") -> list[Check]:
    """Check a :class:`~wsseg.interfaces.PseudoLabeler` class; see the module docstring."""
    checks = _Checks()
    make = _common_checks(checks, cls, PseudoLabeler, config, device)
    data = phantoms()
    i = int(np.argmax(data.fibrosis.sum(axis=(1, 2))))
    image, myocardium, lesion = data.images[i], data.myocardium[i], data.fibrosis[i]
    cam = _coarse_cam(lesion, myocardium)

    def output() -> None:
        for rows, cols in ((SIZE, SIZE), (SIZE, SIZE - 8)):
            mask = np.asarray(
                make(0).label(
                    cam[: rows // CAM_STRIDE, : cols // CAM_STRIDE], image[:rows, :cols], myocardium[:rows, :cols], True
                )
            )
            _expect(mask.shape == (rows, cols), f"mask shape {mask.shape} for an image of {(rows, cols)}")
            _expect(
                mask.dtype == bool or np.isin(mask, (0, 1)).all(),
                f"mask is {mask.dtype} with values other than 0 and 1",
            )

    def negative() -> None:
        _expect(
            not np.asarray(make(0).label(cam, image, myocardium, False)).any(),
            "a negative weak label gave a non-empty mask",
        )

    def finds_lesion() -> None:
        mask = np.asarray(make(0).label(cam, image, myocardium, True), bool)
        _expect(mask.any(), "a clear CAM peak on a positive slice gave an empty mask")
        _expect((mask & lesion).any(), "the mask misses the lesion the CAM peaks on")

    def no_positive_cam() -> None:
        mask = np.asarray(make(0).label(np.full_like(cam, -1.0), image, myocardium, True))
        _expect(mask.shape == image.shape, f"mask shape {mask.shape} for an image of {image.shape}")

    def untouched() -> None:
        inputs = (cam.copy(), image.copy(), myocardium.copy())
        make(0).label(*inputs, True)
        _expect(
            all(np.array_equal(a, b) for a, b in zip(inputs, (cam, image, myocardium))), "label() modified its inputs"
        )

    def deterministic() -> None:
        first, again = make(0), make(0)
        masks = [np.asarray(p.label(cam, image, myocardium, True)) for p in (first, first, again)]
        _expect(
            np.array_equal(masks[0], masks[1]) and np.array_equal(masks[0], masks[2]),
            "same inputs and seed gave different masks",
        )

    checks("label(): bool (H, W) mask on the image grid, square or not", output, make)
    checks("negative weak label gives an empty mask", negative, make)
    checks("a clear CAM peak gives a mask on the lesion", finds_lesion, make)
    checks("a CAM without positive values is handled", no_positive_cam, make)
    checks("inputs are not modified", untouched, make)
    checks("deterministic under a seed", deterministic, make)
    return checks.results


# ---------------------------------------------------------------- CAM generators


def _round_trip(plugin: Any, make: Callable[[int], Any]) -> Any:
    """A fresh instance restored from ``plugin.state_dict()`` after ``torch.save`` and ``torch.load``."""
    buffer = io.BytesIO()
    torch.save(plugin.state_dict(), buffer)
    buffer.seek(0)
    restored = make(plugin.seed)
    restored.load_state_dict(torch.load(buffer, map_location="cpu", weights_only=True))
    return restored


def _same_output(a: CAMOutput, b: CAMOutput, what: str) -> None:
    for field in ("cams", "slice_scores", "stack_scores"):
        _expect(np.allclose(getattr(a, field), getattr(b, field), atol=1e-5), f"{what}: {field} differ")


def check_cam_generator(cls: Any, config: dict | None = None, *, device: str = "cpu") -> list[Check]:
    """Check a :class:`~wsseg.interfaces.CAMGenerator` class at each of its levels; see the module docstring."""
    checks = _Checks()
    make = _common_checks(checks, cls, CAMGenerator, config, device)
    train, val = phantoms(6, seed=0), phantoms(4, seed=1)
    levels = getattr(cls, "levels", ())

    def valid_levels() -> None:
        _expect(
            len(levels) > 0 and set(levels) <= {"slice", "stack"},
            f"levels must be a non-empty subset of (slice, stack), got {levels!r}",
        )

    ok = checks("levels: a non-empty subset of (slice, stack)", valid_levels, make)
    for level in levels if ok else ():

        def fit(level: Level = level) -> Any:
            generator = make(0)
            generator.fit(train.weak_set(level), level, val=val.weak_set(level), monitor=_QuietMonitor())
            return generator

        def output(generator: Any) -> CAMOutput:
            result = generator.generate(val.weak_set())
            _expect(isinstance(result, CAMOutput), f"generate() returned {type(result).__name__}, not CAMOutput")
            n, n_stacks = len(val.images), len(val.weak_set().stacks())
            cams = np.asarray(result.cams)
            _expect(cams.ndim == 3 and len(cams) == n, f"cams shape {cams.shape}, expected ({n}, h, w)")
            _expect(
                cams.shape[1] <= SIZE and cams.shape[2] <= SIZE,
                f"cams grid {cams.shape[1:]} finer than the images' {(SIZE, SIZE)}",
            )
            _expect(np.isfinite(cams).all(), "cams hold NaN or infinite values")
            for field, length in (("slice_scores", n), ("stack_scores", n_stacks)):
                scores = np.asarray(getattr(result, field))
                _expect(scores.shape == (length,), f"{field} shape {scores.shape}, expected ({length},)")
                _expect(bool(np.all((scores >= 0) & (scores <= 1))), f"{field} outside [0, 1]")
            return result

        def labels_ignored(generator: Any, result: CAMOutput, level: Level = level) -> None:
            _same_output(generator.generate(val.weak_set(level)), result, "generate() with and without labels")

        def deterministic(result: CAMOutput, level: Level = level) -> None:
            _same_output(output(fit(level)), result, "two fits with the same seed")

        def round_trip(generator: Any, result: CAMOutput) -> None:
            _same_output(_round_trip(generator, make).generate(val.weak_set()), result, "after state_dict round trip")

        generator = checks(f"[{level}] fit() on weak labels (no pixel labels)", fit)
        result = checks(
            f"[{level}] generate(): (N, h, w) finite CAMs, scores in [0, 1] per slice and stack",
            partial(output, generator),
            generator,
        )
        checks(
            f"[{level}] generate() ignores the labels", partial(labels_ignored, generator, result), generator, result
        )
        checks(f"[{level}] deterministic under a seed", partial(deterministic, result), result)
        checks(
            f"[{level}] state_dict() round trip through torch.save",
            partial(round_trip, generator, result),
            generator,
            result,
        )
    return checks.results


# ---------------------------------------------------------------- segmenters


def check_segmenter(cls: Any, config: dict | None = None, *, device: str = "cpu") -> list[Check]:
    """Check a :class:`~wsseg.interfaces.Segmenter` class; see the module docstring."""
    checks = _Checks()
    make = _common_checks(checks, cls, Segmenter, config, device)
    train, val = phantoms(3, seed=0), phantoms(2, seed=1)
    inputs = np.stack([train.images, train.myocardium], axis=1)
    val_inputs = np.stack([val.images, val.myocardium], axis=1)
    targets, val_targets = train.myocardium, val.myocardium  # any binary masks will do

    def fit() -> Any:
        segmenter = make(0)
        segmenter.fit(inputs, targets, val_inputs=val_inputs, val_targets=val_targets, monitor=_QuietMonitor())
        return segmenter

    def output(segmenter: Any) -> np.ndarray:
        for batch in (val_inputs, val_inputs[:1]):
            p = np.asarray(segmenter.predict(batch))
            _expect(
                p.shape == (len(batch), SIZE, SIZE), f"predict() shape {p.shape}, expected {(len(batch), SIZE, SIZE)}"
            )
            _expect(p.dtype == np.float32, f"predict() dtype {p.dtype}, expected float32")
            _expect(bool(np.all((p >= 0) & (p <= 1))), "probabilities outside [0, 1] (or NaN)")
        return segmenter.predict(val_inputs)

    def deterministic(probabilities: np.ndarray) -> None:
        _expect(
            np.allclose(fit().predict(val_inputs), probabilities, atol=1e-5),
            "two fits with the same seed predict differently",
        )

    def round_trip(segmenter: Plugin, probabilities: np.ndarray) -> None:
        restored = _round_trip(segmenter, make).predict(val_inputs)
        _expect(np.allclose(restored, probabilities, atol=1e-5), "predictions differ after a state_dict round trip")

    segmenter = checks("fit() on (N, C, H, W) inputs and (N, H, W) masks", fit, make)
    probabilities = checks("predict(): float32 (N, H, W) probabilities in [0, 1]", lambda: output(segmenter), segmenter)
    checks("deterministic under a seed", lambda: deterministic(probabilities), probabilities)
    checks(
        "state_dict() round trip through torch.save",
        lambda: round_trip(segmenter, probabilities),
        segmenter,
        probabilities,
    )
    return checks.results


# ---------------------------------------------------------------- entry points

CHECKERS: dict[type[Plugin], Callable[..., list[Check]]] = {
    CAMGenerator: check_cam_generator,
    PseudoLabeler: check_pseudo_labeler,
    Segmenter: check_segmenter,
}


def check_plugin(cls: Any, config: dict | None = None, *, device: str = "cpu") -> list[Check]:
    """Every check of the interface ``cls`` implements (a single failed check if it implements none)."""
    for base, checker in CHECKERS.items():
        if isinstance(cls, type) and issubclass(cls, base):
            return checker(cls, config, device=device)
    return [
        Check(
            "derives from the interface, nothing abstract left",
            False,
            f"{cls!r} derives from none of CAMGenerator, PseudoLabeler, Segmenter",
        )
    ]


def assert_conforms(cls: Any, config: dict | None = None, *, device: str = "cpu") -> None:
    """Fail (``AssertionError``) with every failed check of :func:`check_plugin`."""
    failed = [c for c in check_plugin(cls, config, device=device) if not c.passed]
    if failed:
        raise AssertionError(
            f"{cls.__name__} fails {len(failed)} conformance check(s):\n"
            + "\n".join(f"- {c.name}: {c.detail}" for c in failed)
        )
