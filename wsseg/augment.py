"""Augmentation shared by the plugins and stages.

Two geometric families: the 8 flips/rotations of the square (exact, no resampling), and random
affine warps (any rotation angle, scaling, shifts; bilinear, via kornia). At test time,
:func:`flip_averaged` averages a prediction over the image's flips, and :func:`explain` a CAM
generator's output (over flips and scales). All channels of a sample (image, myocardium,
target...) get the same transform, so stack inputs and targets along ``C`` first. Intensity
transforms change the leading image channels only (one by default; a slice and its neighbours
together, with one draw per sample, as one acquisition): :func:`random_gamma` (contrast),
:func:`random_intensity` (bias field, coarser acquisition, blur, noise), :func:`renormalise` and
:func:`paint_scar` (scar-like enhancement inside the target myocardium). Randomness comes from a
NumPy generator, so a seed reproduces an epoch exactly.

Dihedral codes ``0..7``: ``code % 4`` quarter turns, then a horizontal flip when ``code >= 4``.
Non-square inputs only get the shape-keeping codes (0, 2, 4, 6).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import kornia.enhance as KE
import kornia.filters as KF
import kornia.geometry.transform as KT
import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage
from torch import Tensor

from wsseg.data.geometry import resize
from wsseg.interfaces import CAMGenerator, CAMOutput, Segmenter, WeakSet

__all__ = [
    "FLIPS",
    "dihedral",
    "explain",
    "flip_averaged",
    "paint_scar",
    "random_affine",
    "random_dihedral",
    "random_dihedral_codes",
    "random_gamma",
    "random_intensity",
    "renormalise",
    "segment",
]


def dihedral(x: Tensor, code: int) -> Tensor:
    """Apply dihedral transform ``code`` (0..7) to the last two dims of ``x``."""
    if not 0 <= code < 8:
        raise ValueError(f"dihedral code must be in 0..7, got {code}")
    out = torch.rot90(x, code % 4, dims=(-2, -1)) if code % 4 else x
    return out.flip(-1) if code >= 4 else out


def random_dihedral_codes(n: int, rng: np.random.Generator, square: bool = True) -> np.ndarray:
    """``n`` random codes; only shape-keeping ones when ``square`` is false."""
    return rng.integers(0, 8, size=n) if square else rng.choice(np.array([0, 2, 4, 6]), size=n)


def random_dihedral(x: Tensor, codes: np.ndarray) -> Tensor:
    """Transform sample ``i`` of ``x`` ``(N, C, H, W)`` by ``codes[i]``."""
    codes = np.asarray(codes)
    if len(codes) != len(x):
        raise ValueError("one code per sample is needed")
    out = x.clone()
    for code in np.unique(codes):
        if code:
            index = torch.as_tensor(np.flatnonzero(codes == code), device=x.device)
            out[index] = dihedral(x[index], int(code))
    return out


def random_affine(
    x: Tensor,
    rng: np.random.Generator,
    degrees: float = 180.0,
    scale: float = 0.15,
    shift: float = 0.05,
    zoom: tuple[float, float] | None = None,
) -> Tensor:
    """Warp each sample of ``x`` ``(N, C, H, W)`` by a random rotation (uniform in +-``degrees``),
    isotropic scaling (uniform in ``1 +- scale``, or log-uniform in the ``zoom`` range when given:
    above 1 magnifies) and shift (uniform in +-``shift`` of the side) about the image centre;
    bilinear, zeros outside.
    """
    n, _, height, width = x.shape
    angle = torch.as_tensor(rng.uniform(-degrees, degrees, n), dtype=x.dtype)
    draw = np.exp(rng.uniform(np.log(zoom[0]), np.log(zoom[1]), n)) if zoom else rng.uniform(1 - scale, 1 + scale, n)
    factor = torch.as_tensor(draw, dtype=x.dtype)
    offset = torch.as_tensor(rng.uniform(-shift, shift, (n, 2)) * (width, height), dtype=x.dtype)
    centre = torch.tensor([[(width - 1) / 2, (height - 1) / 2]], dtype=x.dtype).expand(n, 2)
    matrix = KT.get_rotation_matrix2d(centre, angle, factor[:, None].expand(n, 2))
    matrix[:, :, 2] += offset
    return KT.warp_affine(
        x, matrix.to(x.device), (height, width), mode="bilinear", padding_mode="zeros", align_corners=True
    )


def random_gamma(x: Tensor, rng: np.random.Generator, strength: float, channels: int = 1) -> Tensor:
    """Raise the first ``channels`` channels of each sample of ``x`` ``(N, C, H, W)``, intensities in
    0..1, to one random power ``exp(u)``, ``u`` uniform in +-``strength``: contrast changes that keep
    0, 1 and the order."""
    exponent = torch.as_tensor(np.exp(rng.uniform(-strength, strength, len(x))), dtype=x.dtype, device=x.device)
    out = x.clone()
    out[:, :channels] = KE.adjust_gamma(x[:, :channels].clamp(0, 1), exponent)  # clamped first: no NaN below 0
    return out


def random_intensity(
    x: Tensor,
    rng: np.random.Generator,
    *,
    bias_field: float = 0.0,
    low_resolution: float = 0.0,
    blur: float = 0.0,
    noise: float = 0.0,
    channels: int = 1,
) -> Tensor:
    """Scanner-like changes to the first ``channels`` channels of each sample of ``x`` ``(N, C, H, W)``
    (intensities in 0..1; one draw per sample for all of them):

    a smooth multiplicative bias field (log-amplitude std ``bias_field / 2``), acquisition on a
    coarser grid with probability ``low_resolution`` (down by up to 2.5x, then back up), a Gaussian
    blur with probability 1/2 (sigma uniform up to ``blur`` pixels) and Rician-like noise (std up to
    ``noise`` times the sample's mean). Zero settings are skipped; the result is clamped to 0..1.
    """
    n, _, height, width = x.shape
    image = x[:, :channels].clone()
    if bias_field:
        field = torch.as_tensor(rng.normal(0, bias_field / 2, (n, 1, 3, 3)), dtype=x.dtype)
        image = image * torch.exp(F.interpolate(field, size=(height, width), mode="bicubic", align_corners=True))
    if low_resolution:
        for i in np.flatnonzero(rng.random(n) < low_resolution):
            side = (max(8, round(height / rng.uniform(1, 2.5))), max(8, round(width / rng.uniform(1, 2.5))))
            coarse = F.interpolate(image[i : i + 1], size=side, mode="bilinear", antialias=True, align_corners=False)
            image[i : i + 1] = F.interpolate(coarse, size=(height, width), mode="bilinear", align_corners=False)
    if blur:
        sigma = rng.uniform(0, blur, n) * (rng.random(n) < 0.5)
        for i in np.flatnonzero(sigma > 0.2):
            size = 2 * int(np.ceil(2.5 * sigma[i])) + 1
            s = torch.tensor([[sigma[i], sigma[i]]], dtype=x.dtype)
            image[i : i + 1] = KF.gaussian_blur2d(image[i : i + 1], (size, size), s, border_type="replicate")
    if noise:
        std = torch.as_tensor(rng.uniform(0, noise, n), dtype=x.dtype).view(n, 1, 1, 1) * image.mean(
            (2, 3), keepdim=True
        )
        generator = torch.Generator().manual_seed(int(rng.integers(2**31)))
        image = image + std * torch.randn(image.shape, generator=generator, dtype=x.dtype)
    out = x.clone()
    out[:, :channels] = image.clamp(0, 1)
    return out


def renormalise(x: Tensor, channels: int = 1, low: float = 0.01, high: float = 0.995) -> Tensor:
    """Map the ``low``..``high`` quantiles of the first ``channels`` channels of each sample of ``x``
    ``(N, C, H, W)`` (taken over them together) to 0..1 (clipped), as
    :func:`wsseg.data.geometry.normalise_intensity` does to a whole slice at ingest: after a zoom, a
    sample is normalised over what it shows, as an input at inference is."""
    image = x[:, :channels].flatten(1).float()
    bounds = torch.quantile(image, torch.tensor([low, high], device=x.device), dim=1)
    lo, hi = bounds[0][:, None, None, None], bounds[1][:, None, None, None]
    out = x.clone()
    scaled = (x[:, :channels] - lo) / (hi - lo).clamp_min(1e-6)
    out[:, :channels] = torch.where(hi > lo, scaled.clamp(0, 1), torch.zeros_like(scaled))
    return out


def paint_scar(x: Tensor, rng: np.random.Generator, probability: float, channels: int = 1) -> Tensor:
    """Paint scar-like enhancement into the myocardium of each sample of ``x`` with ``probability``.

    ``x`` is ``(N, C, H, W)`` with images in the first ``channels`` channels (a slice, then e.g. its
    neighbours) and the myocardium mask as the last channel (the target): one or two sectors of the
    ring (25-160 degrees around the cavity, from the endocardium to a random depth) take the blood
    pool's brightness with soft edges and some texture, and sometimes a darker no-reflow core; every
    image channel gets the same sectors at its own blood pool's brightness, as scar spans neighbouring
    slices. The mask is unchanged, so the network learns that bright wall is still wall.
    """
    out = x.clone()
    for i in np.flatnonzero(rng.random(len(x)) < probability):
        painted = _painted(out[i, :channels].numpy(), out[i, -1].numpy() > 0.5, rng)
        out[i, :channels] = torch.from_numpy(painted)
    return out


def enclosed(wall: np.ndarray) -> np.ndarray:
    """What a 2D boolean ``wall`` encloses (its cavity): its holes, filled, without the wall itself."""
    return ndimage.binary_fill_holes(wall) & ~wall


def _painted(images: np.ndarray, wall: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """``images`` ``(C, H, W)`` with the same scar-like sectors of ``wall`` painted into each."""
    cavity = enclosed(wall)
    if wall.sum() < 30 or cavity.sum() < 5:
        return images
    from_endo = ndimage.distance_transform_edt(~cavity)
    to_epi = ndimage.distance_transform_edt(wall | cavity)
    depth = np.where(wall, from_endo / np.maximum(from_endo + to_epi, 1e-3), 2.0)  # 0 endocardium .. 1 epicardium
    cy, cx = ndimage.center_of_mass(cavity)
    yy, xx = np.mgrid[: wall.shape[0], : wall.shape[1]]
    angle = np.arctan2(yy - cy, xx - cx)
    blood = np.array([np.median(image[cavity]) for image in images], np.float64)[:, None, None]
    healthy = np.array([np.median(image[wall]) for image in images], np.float64)[:, None, None]
    out = images.astype(np.float32)
    for _ in range(int(rng.integers(1, 3))):
        centre, extent = rng.uniform(-np.pi, np.pi), np.deg2rad(rng.uniform(25, 160))
        off = np.abs(np.angle(np.exp(1j * (angle - centre))))
        transmurality = rng.uniform(0.2, 1.0)
        region = wall & (off < extent / 2) & (depth <= transmurality)
        if region.sum() < 5:
            continue
        alpha = np.maximum(
            ndimage.gaussian_filter(region.astype(np.float32), rng.uniform(0.5, 1.5)) * wall, 0.8 * region
        )
        texture = 1 + rng.normal(0, 0.06, wall.shape)
        out = out * (1 - alpha) + alpha * np.clip(blood * rng.uniform(0.8, 1.2) * texture, 0, 1)
        if rng.random() < 0.3:  # no-reflow: a dark core at the endocardium
            core = region & (off < extent / 4) & (depth <= transmurality / 2)
            core = ndimage.gaussian_filter(core.astype(np.float32), 0.7) * wall
            out = out * (1 - core) + core * healthy * rng.uniform(0.4, 1.0)
    return out.astype(np.float32)


FLIPS = (0, 2, 4, 6)  # identity, half turn, horizontal flip, vertical flip: shape-keeping, each its own inverse


def flip_averaged(predict: Callable[[np.ndarray], np.ndarray], inputs: np.ndarray) -> np.ndarray:
    """Test-time flips: the mean of ``predict`` ``(N, C, H, W) -> (N, H, W)`` over ``inputs`` and its
    three flips, each prediction flipped back."""
    x = torch.tensor(inputs)  # copies, here and below: torch warns on read-only arrays
    total = np.zeros((len(inputs), *inputs.shape[2:]), np.float32)
    for code in FLIPS:
        total += dihedral(torch.tensor(predict(dihedral(x, code).numpy())), code).numpy()
    return total / len(FLIPS)


def segment(segmenter: Segmenter, inputs: np.ndarray, flips: bool) -> np.ndarray:
    """``segmenter.predict(inputs)``, averaged over the test-time flips when ``flips``."""
    return flip_averaged(segmenter.predict, inputs) if flips else segmenter.predict(inputs)


def explain(generator: CAMGenerator, data: WeakSet, flips: bool, scales: Sequence[float] = (1.0,)) -> CAMOutput:
    """``generator.generate(data)``, averaged over the crops resized by each of ``scales`` (the CAMs
    resized to the largest scale's grid) and, with ``flips``, over their three flips (the CAMs flipped
    back; the same flip and scale for image and myocardium)."""
    outputs = [_explain_flips(generator, rescaled(data, scale), flips) for scale in scales]
    if len(outputs) == 1:
        return outputs[0]
    grid = max((o.cams.shape[1:] for o in outputs), key=lambda shape: shape[0] * shape[1])
    return CAMOutput(
        np.mean([resize(o.cams, grid) for o in outputs], axis=0).astype(np.float32),
        np.mean([o.slice_scores for o in outputs], axis=0).astype(np.float32),
        np.mean([o.stack_scores for o in outputs], axis=0).astype(np.float32),
    )


def rescaled(data: WeakSet, scale: float) -> WeakSet:
    """``data`` with its images and myocardium resized by ``scale`` (:func:`~wsseg.data.geometry.resize`),
    each side to a multiple of 8 pixels."""
    if scale == 1:
        return data
    height, width = (max(8, round(side * scale / 8) * 8) for side in data.images.shape[1:])
    return WeakSet(
        resize(data.images, (height, width)), resize(data.myocardium, (height, width)), data.stack_ids, data.labels
    )


def _explain_flips(generator: CAMGenerator, data: WeakSet, flips: bool) -> CAMOutput:
    """``generator.generate(data)``, averaged over the three flips when ``flips``."""
    if not flips:
        return generator.generate(data)
    outputs = []
    for code in FLIPS:
        images, myocardium = (dihedral(torch.tensor(x), code).numpy() for x in (data.images, data.myocardium))
        output = generator.generate(WeakSet(images, myocardium, data.stack_ids))
        outputs.append(
            CAMOutput(dihedral(torch.tensor(output.cams), code).numpy(), output.slice_scores, output.stack_scores)
        )
    fields = ("cams", "slice_scores", "stack_scores")
    return CAMOutput(*(np.mean([getattr(o, f) for o in outputs], axis=0).astype(np.float32) for f in fields))
