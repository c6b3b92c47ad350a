"""Small synthetic LGE phantoms for benchmarking the plugin on its own (no wsseg data layer needed).

Each 64x64 slice: medium-grey background, bright blood pool disc, dark myocardium ring, and on
positive slices a bright scar in an angular sector of the ring; Gaussian noise and a smooth bias
field. The myocardium "prediction" is the ring mask, slightly blurred and perturbed (like a U-Net's
output). Stacks hold contiguous slices; a positive stack has scar on a contiguous run of its slices.
"""

from __future__ import annotations

import numpy as np
from scipy.ndimage import gaussian_filter

from wsseg.interfaces import WeakSet


def phantom_slice(rng: np.random.Generator, scar: bool, size: int = 64) -> tuple[np.ndarray, np.ndarray]:
    yy, xx = np.mgrid[:size, :size].astype(np.float32)
    cy, cx = size / 2 + rng.normal(0, 3, 2)
    r_in = rng.uniform(8, 12)
    r_out = r_in + rng.uniform(4, 7)
    r = np.hypot(yy - cy, xx - cx)
    theta = np.arctan2(yy - cy, xx - cx)
    ring = (r >= r_in) & (r < r_out)
    img = np.full((size, size), rng.uniform(0.2, 0.35), np.float32)
    img[r < r_in] = rng.uniform(0.7, 0.9)
    img[ring] = rng.uniform(0.08, 0.18)
    if scar:
        centre = rng.uniform(-np.pi, np.pi)
        width = rng.uniform(np.pi / 6, np.pi / 2)
        depth = rng.uniform(0.5, 1.0)  # subendocardial to transmural
        d = np.angle(np.exp(1j * (theta - centre)))
        sector = ring & (np.abs(d) < width / 2) & (r < r_in + depth * (r_out - r_in))
        img[sector] = rng.uniform(0.6, 0.85)
    img = gaussian_filter(img, 0.7)
    bias = 1 + 0.15 * np.sin(xx / size * np.pi * rng.uniform(0.5, 1.5) + rng.uniform(0, 6))
    img = np.clip(img * bias + rng.normal(0, 0.04, img.shape), 0, 1).astype(np.float32)
    myo = np.clip(gaussian_filter(ring.astype(np.float32), 0.8) + rng.normal(0, 0.05, img.shape), 0, 1)
    return img, myo.astype(np.float32)


def phantom_set(
    n_stacks: int, depth: int | tuple[int, int], seed: int = 0, size: int = 64, p_pos: float = 0.5
) -> WeakSet:
    """``n_stacks`` stacks; ``depth`` fixed or a (low, high) range. Labels are per slice."""
    rng = np.random.default_rng(seed)
    images, myos, ids, labels = [], [], [], []
    for s in range(n_stacks):
        d = depth if isinstance(depth, int) else int(rng.integers(depth[0], depth[1] + 1))
        scar = np.zeros(d, bool)
        if rng.random() < p_pos:
            a = int(rng.integers(0, d))
            b = int(rng.integers(a + 1, d + 1))
            scar[a:b] = True
        for k in range(d):
            img, myo = phantom_slice(rng, bool(scar[k]), size)
            images.append(img)
            myos.append(myo)
            ids.append(s)
            labels.append(int(scar[k]))
    return WeakSet(np.stack(images), np.stack(myos), np.array(ids), np.array(labels))


def stack_level(data: WeakSet) -> WeakSet:
    """The same slices with each slice's label replaced by its stack's label (max over the stack)."""
    labels = data.labels.copy()
    for idx in data.stacks():
        labels[idx] = labels[idx].max()
    return WeakSet(data.images, data.myocardium, data.stack_ids, labels)


def wsseg_phantom_set(n_stacks: int, seed: int = 0, roi_size: int = 64, fibrosis_fraction: float = 0.7) -> WeakSet:
    """Stacks from the pipeline's own phantom generator (``wsseg.data.synthetic``), cropped like the pipeline.

    Each case is rendered at 128 px, cropped to the box around its myocardium (margin 0.25, as
    ``params.yaml``'s ``roi_margin``) and resized to ``roi_size``. The myocardium "prediction" is the
    true ring, blurred a little. Slice labels: any fibrosis pixel on the slice.
    """
    from wsseg.data.geometry import bounding_box, crop
    from wsseg.data.synthetic import FIBROSIS, MYOCARDIUM, SyntheticConfig, phantom_case

    rng = np.random.default_rng(seed)
    config = SyntheticConfig()
    images, myos, ids, labels = [], [], [], []
    for s in range(n_stacks):
        img, lab = phantom_case(rng, config, bool(rng.random() < fibrosis_fraction))
        myo = np.isin(lab, (MYOCARDIUM, *FIBROSIS)).astype(np.float32)
        box = np.asarray(bounding_box(myo.any(0), 0.25, config.image_size / 4), dtype=np.float64)
        boxes = np.repeat(box[None], len(img), 0)
        myo_pred = np.stack([gaussian_filter(m, 0.8) for m in myo])
        images.append(crop(img, boxes, roi_size))
        myos.append(np.clip(crop(myo_pred, boxes, roi_size), 0, 1))
        labels += list(np.isin(lab, FIBROSIS).any(axis=(1, 2)).astype(int))
        ids += [s] * len(img)
    return WeakSet(
        np.concatenate(images).astype(np.float32),
        np.concatenate(myos).astype(np.float32),
        np.array(ids),
        np.array(labels),
    )
