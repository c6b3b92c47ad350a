"""Synthetic short-axis LGE phantoms, written as a folder in the EMIDEC export format.

Each case is a stack of slices from base to apex. A slice shows a torso (subcutaneous fat,
lungs, liver, spine, aorta, right ventricle) around the left ventricle: a bright blood pool inside
a dark myocardial ring. Fibrosis enhances (bright, like the blood pool) in one coronary territory,
on a contiguous run of slices, as a subendocardial, transmural or patchy mid-wall scar. A smooth
bias field, blur and Rician noise make it look acquired. Label coding is EMIDEC's: 0 background,
1 LV cavity, 2 healthy myocardium, 3 infarct, 4 no-reflow.
"""

from __future__ import annotations

import os
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image
from scipy.ndimage import gaussian_filter

from wsseg.config import SyntheticConfig
from wsseg.data.tables import write_csv
from wsseg.progress import track

BACKGROUND, CAVITY, MYOCARDIUM, INFARCT, NO_REFLOW = 0, 1, 2, 3, 4
FIBROSIS = (INFARCT, NO_REFLOW)
PATTERNS = ("subendocardial", "transmural", "patchy")


@dataclass
class _Heart:
    """Per-case LV geometry; the ring shrinks from base (slice 0) to apex."""

    centre: np.ndarray  # (x, y) at the base
    drift: np.ndarray  # centre shift per slice
    radius: float  # epicardial radius at the base
    thickness: float
    ellipticity: float
    rotation: float
    epi_wobble: np.ndarray  # (3, 2): amplitude, phase of harmonics 2..4
    wall_wobble: np.ndarray
    apex_shrink: float
    fat_angle: float  # where epicardial fat sits


@dataclass
class _Scar:
    """Per-case infarct: one angular territory, the same on every slice of its run."""

    pattern: str
    centre: float  # angle in the heart frame
    half_width: float
    depth: float  # extent from the endocardium, in wall thicknesses, at the territory centre
    ripple: float  # phase of the depth ripple
    blobs: np.ndarray  # (n, 4) patchy only: angle, depth, radius along and across the wall
    first: int
    last: int
    no_reflow: bool


@dataclass
class _Wall:
    """One slice's LV in heart-frame polar coordinates."""

    u: np.ndarray
    v: np.ndarray
    rho: np.ndarray
    phi: np.ndarray
    epi: np.ndarray  # epicardial radius at each pixel's angle
    depth: np.ndarray  # 0 at the endocardium, 1 at the epicardium
    cavity: np.ndarray
    myocardium: np.ndarray
    radius: float
    thickness: float


def _harmonics(phi: np.ndarray, wobble: np.ndarray, shift: float) -> np.ndarray:
    """1 + a small sum of angular harmonics 2..4 (a slightly irregular contour)."""
    out = np.ones_like(phi)
    for m, (amp, phase) in enumerate(wobble, start=2):
        out += amp * np.cos(m * phi + phase + shift)
    return out


def _smooth_noise(rng: np.random.Generator, size: int, sigma: float) -> np.ndarray:
    """Smooth Gaussian random field with unit standard deviation."""
    field = gaussian_filter(rng.standard_normal((size, size)), sigma)
    return field / (field.std() + 1e-8)


def _draw_heart(rng: np.random.Generator, size: int) -> _Heart:
    s = size / 128
    offset = rng.uniform(0, 15 * s) * np.exp(1j * rng.uniform(0, 2 * np.pi))
    return _Heart(
        centre=np.array([size / 2 + offset.real, size / 2 + offset.imag]),
        drift=rng.normal(0, 0.6 * s, 2),
        radius=rng.uniform(14, 24) * s,
        thickness=rng.uniform(4, 8) * s,
        ellipticity=rng.uniform(0.87, 1.15),
        rotation=rng.uniform(0, 2 * np.pi),
        epi_wobble=np.column_stack([rng.normal(0, 0.025, 3), rng.uniform(0, 2 * np.pi, 3)]),
        wall_wobble=np.column_stack([rng.normal(0, 0.07, 3), rng.uniform(0, 2 * np.pi, 3)]),
        apex_shrink=rng.uniform(0.35, 0.55),
        fat_angle=rng.uniform(0, 2 * np.pi),
    )


def _draw_scar(rng: np.random.Generator, n_slices: int) -> _Scar:
    pattern = str(rng.choice(PATTERNS, p=[0.4, 0.35, 0.25]))
    half_width = np.deg2rad(rng.uniform(60, 140)) / 2
    length = int(rng.integers(max(1, int(np.ceil(0.3 * n_slices))), n_slices + 1))
    first = int(rng.integers(0, n_slices - length + 1))
    n_blobs = int(rng.integers(2, 6))
    blobs = np.column_stack(
        [
            rng.uniform(-0.8, 0.8, n_blobs) * half_width,
            rng.uniform(0.35, 0.65, n_blobs),
            rng.uniform(0.8, 2.0, n_blobs),
            rng.uniform(0.2, 0.35, n_blobs),
        ]
    )
    depth = rng.uniform(0.35, 0.7) if pattern == "subendocardial" else rng.uniform(1.4, 2.2)
    return _Scar(
        pattern=pattern,
        centre=rng.uniform(0, 2 * np.pi),
        half_width=half_width,
        depth=depth,
        ripple=rng.uniform(0, 2 * np.pi),
        blobs=blobs,
        first=first,
        last=first + length - 1,
        no_reflow=pattern == "transmural" and half_width > np.deg2rad(50) and rng.random() < 0.3,
    )


def _wall(heart: _Heart, k: int, n_slices: int, size: int) -> _Wall:
    """Heart-frame coordinates and LV regions of slice ``k``."""
    t = k / max(n_slices - 1, 1)
    radius = heart.radius * (1 - heart.apex_shrink * t**1.5)
    thickness = min(heart.thickness * (1 - 0.15 * t), 0.65 * radius)
    cx, cy = heart.centre + heart.drift * k
    y, x = np.mgrid[0:size, 0:size].astype(np.float32)
    cos, sin = np.cos(heart.rotation), np.sin(heart.rotation)
    u = (x - cx) * cos + (y - cy) * sin
    v = (y - cy) * cos - (x - cx) * sin
    rho = np.hypot(u / heart.ellipticity, v * heart.ellipticity)
    phi = np.arctan2(v, u)
    epi = radius * _harmonics(phi, heart.epi_wobble, 0.3 * k)
    wall = thickness * _harmonics(phi, heart.wall_wobble, 0.2 * k)
    depth = (rho - (epi - wall)) / wall
    return _Wall(u, v, rho, phi, epi, depth, depth < 0, (depth >= 0) & (depth < 1), radius, thickness)


def _angle_from(phi: np.ndarray, centre: float) -> np.ndarray:
    """Absolute angular distance from ``centre``, in [0, pi]."""
    return np.abs(np.angle(np.exp(1j * (phi - centre))))


def _scar_region(wall: _Wall, scar: _Scar, k: int) -> np.ndarray:
    """Pixels of slice ``k`` that the scar enhances (before restricting to the ring)."""
    position = (k - scar.first + 0.5) / (scar.last - scar.first + 1)
    half_width = scar.half_width * (0.6 + 0.4 * np.sin(np.pi * position))  # taper at the run's ends
    if scar.pattern == "patchy":
        region = np.zeros(wall.phi.shape, bool)
        for angle, depth, along, across in scar.blobs:
            d_along = _angle_from(wall.phi, scar.centre + angle) * wall.radius / (along * wall.thickness)
            d_across = (wall.depth - depth) / across
            region |= d_along**2 + d_across**2 < 1
        return region & (_angle_from(wall.phi, scar.centre) < half_width)
    a = _angle_from(wall.phi, scar.centre) / half_width
    profile = scar.depth * np.sqrt(np.clip(1 - a**2, 0, 1)) * (1 + 0.15 * np.cos(4 * wall.phi + scar.ripple))
    return (a < 1) & (wall.depth < profile)


def _slice_labels(wall: _Wall, scar: _Scar | None, k: int) -> np.ndarray:
    labels = np.zeros(wall.rho.shape, np.uint8)
    labels[wall.cavity] = CAVITY
    labels[wall.myocardium] = MYOCARDIUM
    if scar is not None and scar.first <= k <= scar.last:
        labels[_scar_region(wall, scar, k) & wall.myocardium] = INFARCT
        if scar.no_reflow:
            core = (_angle_from(wall.phi, scar.centre) < 0.4 * scar.half_width) & (wall.depth < 0.45)
            labels[core & (labels == INFARCT)] = NO_REFLOW
    return labels


def _tidy_scar(labels: np.ndarray, min_pixels: int) -> np.ndarray:
    """Keep the scar only on the longest contiguous run of slices holding ``min_pixels`` or more of it.

    Elsewhere it turns back into healthy myocardium, so slice labels and masks agree exactly.
    """
    labels = labels.copy()
    big = np.flatnonzero(_slice_fibrosis(labels, min_pixels))
    runs = np.split(big, np.flatnonzero(np.diff(big) > 1) + 1)
    keep = max(runs, key=len)
    for k, slice_labels in enumerate(labels):
        if k not in keep:
            slice_labels[np.isin(slice_labels, FIBROSIS)] = MYOCARDIUM
    return labels


def _slice_fibrosis(labels: np.ndarray, min_pixels: int) -> np.ndarray:
    """Slice label: 1 where a slice holds at least ``min_pixels`` fibrosis pixels."""
    return (np.isin(labels, FIBROSIS).sum(axis=(1, 2)) >= min_pixels).astype(np.uint8)


def _scarred_labels(
    rng: np.random.Generator, walls: list[_Wall], min_pixels: int, tries: int = 20
) -> np.ndarray | None:
    """Labels of a stack with a scar big enough to label at least one slice (None if no draw is)."""
    for _ in range(tries):
        scar = _draw_scar(rng, len(walls))
        labels = _tidy_scar(np.stack([_slice_labels(w, scar, k) for k, w in enumerate(walls)]), min_pixels)
        if _slice_fibrosis(labels, min_pixels).any():
            return labels
    return None


def _draw_tones(rng: np.random.Generator) -> dict[str, float]:
    """Per-case tissue intensities before bias and noise."""
    return {
        "blood": rng.uniform(0.68, 0.8),
        "myocardium": rng.uniform(0.08, 0.18),
        "scar": rng.uniform(0.75, 0.95),
        "tissue": rng.uniform(0.25, 0.38),
        "fat": rng.uniform(0.55, 0.7),
        "lung": rng.uniform(0.02, 0.07),
        "liver": rng.uniform(0.3, 0.42),
        "bone": rng.uniform(0.4, 0.5),
        "rv": rng.uniform(0.5, 0.62),
    }


def _ellipse(x: np.ndarray, y: np.ndarray, cx: float, cy: float, a: float, b: float, angle: float = 0.0) -> np.ndarray:
    """Normalised elliptic radius: < 1 inside the ellipse."""
    cos, sin = np.cos(angle), np.sin(angle)
    u, v = (x - cx) * cos + (y - cy) * sin, (y - cy) * cos - (x - cx) * sin
    return np.hypot(u / a, v / b)


def _torso(rng: np.random.Generator, size: int, tones: dict[str, float]) -> np.ndarray:
    """The case's body outline and organs around the heart (the same on every slice)."""
    y, x = np.mgrid[0:size, 0:size].astype(np.float32)
    cx, cy = size / 2 + rng.uniform(-3, 3, 2) * size / 128
    a, b = rng.uniform(0.44, 0.49) * size, rng.uniform(0.34, 0.42) * size
    body = _ellipse(x, y, cx, cy, a, b, rng.uniform(-0.15, 0.15))
    image = np.zeros((size, size), np.float32)
    image[body < 1] = tones["fat"]
    image[body < 1 - rng.uniform(0.04, 0.08)] = tones["tissue"]
    image[_ellipse(x, y, cx - 0.35 * a, cy + 0.55 * b, 0.45 * a, 0.35 * b, 0.3) < 1] = tones["liver"]
    for _ in range(rng.integers(4, 9)):  # vessels and bowel: clutter, some as bright as scar
        cx_, cy_ = rng.uniform(0.15, 0.85, 2) * size
        radius = rng.uniform(1.5, 5) * size / 128
        image[_ellipse(x, y, cx_, cy_, radius, radius * rng.uniform(0.6, 1.4)) < 1] = rng.uniform(0.1, 0.75)
    for side in (-1, 1):
        lung_a, lung_b = rng.uniform(0.22, 0.3) * a, rng.uniform(0.45, 0.6) * b
        image[_ellipse(x, y, cx + side * 0.55 * a, cy - 0.1 * b, lung_a, lung_b, side * 0.2) < 1] = tones["lung"]
    spine = _ellipse(x, y, cx, cy + 0.78 * b, 0.1 * a, 0.13 * b)
    image[spine < 1.25] = tones["myocardium"]  # dark cortical rim
    image[spine < 1] = tones["bone"]
    image[_ellipse(x, y, cx + 0.18 * a, cy + 0.6 * b, 0.06 * a, 0.06 * a) < 1] = tones["blood"]  # aorta
    image[body > 1] = 0.0
    texture = 0.03 * _smooth_noise(rng, size, 2 * size / 128)
    return np.where(body < 1, image + texture, image)


def _render_slice(
    torso: np.ndarray, wall: _Wall, labels: np.ndarray, heart: _Heart, tones: dict[str, float], rng: np.random.Generator
) -> np.ndarray:
    """Paint the right ventricle, epicardial fat and the labelled LV over the torso."""
    image = torso.copy()
    s, r = labels.shape[0] / 128, wall.radius
    fat = (np.cos(wall.phi - heart.fat_angle) > 0.6) & (wall.rho >= wall.epi) & (wall.rho < wall.epi + 2 * s)
    image[fat] = tones["fat"]
    rv = np.hypot((wall.u + 1.15 * r) / (0.65 * r), wall.v / (1.3 * r))
    image[(rv < 1.15) & (wall.rho >= wall.epi)] = tones["myocardium"]  # thin RV wall
    image[(rv < 1) & (wall.rho > wall.epi + s)] = tones["rv"]
    texture = _smooth_noise(rng, labels.shape[0], 1.5)
    image[labels == CAVITY] = tones["blood"]
    image[labels == MYOCARDIUM] = tones["myocardium"] * (1 + 0.15 * texture[labels == MYOCARDIUM])
    image[labels == INFARCT] = tones["scar"] * (1 + 0.08 * texture[labels == INFARCT])
    image[labels == NO_REFLOW] = tones["myocardium"]
    return image


def _bias_field(rng: np.random.Generator, size: int, strength: float) -> np.ndarray:
    """Smooth multiplicative field whose peak-to-peak range is ``strength``."""
    y, x = np.mgrid[0:size, 0:size] / size
    waves = rng.uniform([-0.8, -0.8, 0], [0.8, 0.8, 2 * np.pi], (3, 3))  # frequencies below one cycle per image
    field = sum(np.cos(2 * np.pi * (fx * x + fy * y) + phase) for fx, fy, phase in waves)
    field = (field - field.min()) / (np.ptp(field) + 1e-8) - 0.5
    return (1 + strength * field).astype(np.float32)


def _acquire(images: np.ndarray, rng: np.random.Generator, config: SyntheticConfig) -> np.ndarray:
    """Blur, bias field and Rician noise, clipped to [0, 1]."""
    sigma = 0.6 * config.image_size / 128
    images = gaussian_filter(images, (0, sigma, sigma)) * _bias_field(rng, config.image_size, config.bias_field)
    real = images + config.noise * rng.standard_normal(images.shape)
    imaginary = config.noise * rng.standard_normal(images.shape)
    return np.clip(np.hypot(real, imaginary), 0, 1).astype(np.float32)


def phantom_case(rng: np.random.Generator, config: SyntheticConfig, fibrosis: bool) -> tuple[np.ndarray, np.ndarray]:
    """One synthetic stack: images ``float32 (D, H, W)`` in [0, 1], labels ``uint8 (D, H, W)`` (EMIDEC coding).

    With ``fibrosis`` the scar covers one contiguous run of slices, each with at least
    ``min_scar_pixels`` scar pixels (smaller scars are removed), so slice labels and masks agree.
    """
    size = config.image_size
    n_slices = int(rng.integers(config.min_slices, config.max_slices + 1))
    heart = _draw_heart(rng, size)
    walls = [_wall(heart, k, n_slices, size) for k in range(n_slices)]
    labels = _scarred_labels(rng, walls, config.min_scar_pixels) if fibrosis else None
    if labels is None:
        labels = np.stack([_slice_labels(wall, None, k) for k, wall in enumerate(walls)])
    tones = _draw_tones(rng)
    torso = _torso(rng, size, tones)
    images = np.stack([_render_slice(torso, wall, labels[k], heart, tones, rng) for k, wall in enumerate(walls)])
    return _acquire(images, rng, config), labels


def _case_plan(config: SyntheticConfig) -> list[tuple[str, int, bool]]:
    """(split, pixel_labels, fibrosis) of each case, shuffled so case ids reveal nothing."""
    plan = []
    for split, pixel_labels, count in [
        ("train", 1, config.n_train_pixel),
        ("train", 0, config.n_train_weak),
        ("val", 1, config.n_val),
        ("test", 1, config.n_test),
    ]:
        n_free = int(np.floor(config.fibrosis_free_fraction * count + 0.5))
        plan += [(split, pixel_labels, i >= n_free) for i in range(count)]
    order = np.random.default_rng(config.seed).permutation(len(plan))
    return [plan[i] for i in order]


def _save_png(array: np.ndarray, path: Path) -> None:
    Image.fromarray(array).save(path)


def _write_cases(root: Path, config: SyntheticConfig) -> None:
    """Write images, labels and both CSVs of the whole set under ``root``."""
    (root / "images").mkdir()
    (root / "labels").mkdir()
    if config.myocardium_masks:
        (root / "myocardium").mkdir()
    plan = _case_plan(config)
    width = max(3, len(str(len(plan))))
    cases, slices = [], []
    for index in track(range(len(plan)), "synthesise phantoms"):
        split, pixel_labels, fibrosis = plan[index]
        case_id = f"case{index + 1:0{width}d}"
        images, labels = phantom_case(np.random.default_rng([config.seed, index]), config, fibrosis)
        slice_labels = _slice_fibrosis(labels, config.min_scar_pixels)
        contours = config.myocardium_masks and split == "train" and not pixel_labels
        for k, (image, label, slice_label) in enumerate(zip(images, labels, slice_labels)):
            name = f"{case_id}_slice{k:03d}.png"
            _save_png(np.round(image * 255).astype(np.uint8), root / "images" / name)
            if pixel_labels:
                _save_png(label, root / "labels" / name)
            if contours:  # the scar merged into the myocardium: no fibrosis information
                _save_png(
                    np.where(np.isin(label, FIBROSIS), MYOCARDIUM, label).astype(np.uint8), root / "myocardium" / name
                )
            row = [case_id, k, f"images/{name}", f"labels/{name}" if pixel_labels else "", int(slice_label)]
            slices.append(row + ([f"myocardium/{name}" if contours else ""] if config.myocardium_masks else []))
        row = [case_id, split, pixel_labels, len(images), int(slice_labels.max())]
        cases.append(row + ([int(pixel_labels or contours)] if config.myocardium_masks else []))
    extra = config.myocardium_masks
    case_columns = ["case_id", "split", "pixel_labels", "n_slices", "stack_fibrosis"] + (
        ["myocardium_labels"] if extra else []
    )
    slice_columns = ["case_id", "slice_index", "image", "label", "slice_fibrosis"] + (["myocardium"] if extra else [])
    write_csv(root / "cases.csv", case_columns, cases)
    write_csv(root / "slices.csv", slice_columns, slices)


def write_phantom_set(out_dir: Path, config: SyntheticConfig | None = None) -> Path:
    """Write a synthetic set to ``out_dir`` in the EMIDEC folder format and return ``out_dir``.

    The set is built in a temporary sibling folder and renamed into place, replacing any
    existing ``out_dir``, so readers never see a half-written set.
    """
    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tag = f"{os.getpid()}-{uuid.uuid4().hex[:8]}"
    tmp = out_dir.parent / f".{out_dir.name}.tmp-{tag}"
    tmp.mkdir()
    try:
        _write_cases(tmp, config or SyntheticConfig())
        if out_dir.exists():
            old = out_dir.parent / f".{out_dir.name}.old-{tag}"
            out_dir.rename(old)
            tmp.rename(out_dir)
            shutil.rmtree(old)
        else:
            tmp.rename(out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out_dir
