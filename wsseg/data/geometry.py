"""Grids and regions of interest: intensity normalisation, resizing, ROI boxes, crop and paste.

Boxes are ``(y0, x0, y1, x1)`` in pixel-edge coordinates of the grid they were found on
(``0..H``, ``0..W``); they may reach past the border, where crops read zeros.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F


def normalise_intensity(image: np.ndarray, low: float = 1.0, high: float = 99.5) -> np.ndarray:
    """Map the ``low``..``high`` percentiles of one slice to 0..1 (clipped), float32."""
    lo, hi = np.percentile(image, [low, high])
    if hi <= lo:
        return np.zeros(image.shape, np.float32)
    return np.clip((image - lo) / (hi - lo), 0, 1).astype(np.float32)


def resize(images: np.ndarray, size: tuple[int, int], nearest: bool = False) -> np.ndarray:
    """Resize ``(N, H, W)`` to ``(N, *size)``: bilinear (antialiased when shrinking) or nearest."""
    tensor = torch.from_numpy(np.ascontiguousarray(images, dtype=np.float32))[:, None]
    if nearest:
        out = F.interpolate(tensor, size=size, mode="nearest-exact")
    else:
        out = F.interpolate(tensor, size=size, mode="bilinear", align_corners=False, antialias=True)
    return out[:, 0].numpy()


def field_of_view(shape: tuple[int, int], fraction: float) -> tuple[int, int, int, int]:
    """The centred box ``(y0, x0, y1, x1)`` keeping ``fraction`` of each side of a ``shape`` image."""
    height, width = (int(s) for s in shape)
    h, w = max(1, round(height * fraction)), max(1, round(width * fraction))
    y0, x0 = (height - h) // 2, (width - w) // 2
    return (y0, x0, y0 + h, x0 + w)


def grid_view(
    shape: tuple[int, int], fraction: float, grid: int, spacing: float | None = None, grid_spacing: float | None = None
) -> tuple[int, int, int, int]:
    """The region ``(y0, x0, y1, x1)`` of a ``shape`` slice that a ``grid x grid`` image shows.

    With both the slice's pixel ``spacing`` and the ``grid_spacing`` (mm per pixel) known: the
    centred square of ``grid * grid_spacing`` mm, so every such slice is seen at one physical scale
    (the region may reach past the border, which reads as zeros). Otherwise: the centred
    ``fraction`` of each side (:func:`field_of_view`).
    """
    if spacing and grid_spacing:
        height, width = (int(s) for s in shape)
        side = max(1, round(grid * grid_spacing / spacing))
        y0, x0 = (height - side) // 2, (width - side) // 2
        return (y0, x0, y0 + side, x0 + side)
    return field_of_view(shape, fraction)


def to_grid(image: np.ndarray, view: tuple[int, int, int, int], grid: int, nearest: bool = False) -> np.ndarray:
    """The ``view`` of a 2D ``image`` (zeros where it reaches past the border) resized to ``grid x grid``."""
    y0, x0, y1, x1 = view
    height, width = image.shape
    pad = ((max(0, -y0), max(0, y1 - height)), (max(0, -x0), max(0, x1 - width)))
    padded = np.pad(image, pad) if any(any(p) for p in pad) else image
    region = padded[y0 + pad[0][0] : y1 + pad[0][0], x0 + pad[1][0] : x1 + pad[1][0]]
    return resize(region[None], (grid, grid), nearest=nearest)[0]


def boxes_to_original(boxes: np.ndarray, view: tuple[int, int, int, int], grid: int) -> np.ndarray:
    """Boxes found on a ``grid x grid`` resampling of ``view`` (a box of the original image), in
    the original image's pixel coordinates."""
    y0, x0, y1, x1 = view
    scale = np.array([(y1 - y0) / grid, (x1 - x0) / grid] * 2)
    return np.asarray(boxes, dtype=np.float64) * scale + np.array([y0, x0, y0, x0])


def bounding_box(mask: np.ndarray, margin: float, min_size: float) -> tuple[float, float, float, float]:
    """A square box around the ``True`` pixels of ``mask`` ``(H, W)``, grown by ``margin`` of its side.

    An empty mask gives a centred box of side ``min_size``.
    """
    height, width = mask.shape
    ys, xs = np.nonzero(mask)
    if ys.size == 0:
        cy, cx, side = height / 2, width / 2, min_size
    else:
        cy, cx = (ys.min() + ys.max() + 1) / 2, (xs.min() + xs.max() + 1) / 2
        side = max(ys.max() + 1 - ys.min(), xs.max() + 1 - xs.min()) * (1 + 2 * margin)
        side = max(side, min_size)
    return (cy - side / 2, cx - side / 2, cy + side / 2, cx + side / 2)


def _grid(boxes: np.ndarray, out_size: tuple[int, int], in_size: tuple[int, int]) -> torch.Tensor:
    """Sampling grid (for ``grid_sample``, align_corners=False) of output pixel centres inside ``boxes``."""
    corners = torch.as_tensor(boxes, dtype=torch.float32)
    steps_y = (torch.arange(out_size[0]) + 0.5) / out_size[0]
    steps_x = (torch.arange(out_size[1]) + 0.5) / out_size[1]
    y = corners[:, 0, None] + steps_y[None] * (corners[:, 2] - corners[:, 0])[:, None]
    x = corners[:, 1, None] + steps_x[None] * (corners[:, 3] - corners[:, 1])[:, None]
    y = y / in_size[0] * 2 - 1
    x = x / in_size[1] * 2 - 1
    return torch.stack(torch.broadcast_tensors(x[:, None, :], y[:, :, None]), dim=-1)


def crop(images: np.ndarray, boxes: np.ndarray, size: int, nearest: bool = False) -> np.ndarray:
    """Crop each ``(H, W)`` image of ``(N, H, W)`` to its box, resampled to ``size x size``."""
    tensor = torch.from_numpy(np.ascontiguousarray(images, dtype=np.float32))[:, None]
    grid = _grid(np.asarray(boxes), (size, size), images.shape[1:])
    out = F.grid_sample(
        tensor, grid, mode="nearest" if nearest else "bilinear", padding_mode="zeros", align_corners=False
    )
    return out[:, 0].numpy()


def paste(crops: np.ndarray, boxes: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Inverse of :func:`crop`: put each crop back on a ``shape`` grid (zeros outside its box)."""
    boxes = np.asarray(boxes, dtype=np.float64)
    height, width = shape
    ys = (np.arange(height) + 0.5)[None, :]
    xs = (np.arange(width) + 0.5)[None, :]
    # Position of every output pixel inside its box, in the crop's normalised coordinates.
    y = (ys - boxes[:, 0, None]) / (boxes[:, 2] - boxes[:, 0])[:, None] * 2 - 1
    x = (xs - boxes[:, 1, None]) / (boxes[:, 3] - boxes[:, 1])[:, None] * 2 - 1
    grid = torch.stack(
        torch.broadcast_tensors(torch.tensor(x)[:, None, :], torch.tensor(y)[:, :, None]), dim=-1
    ).float()
    tensor = torch.from_numpy(np.ascontiguousarray(crops, dtype=np.float32))[:, None]
    out = F.grid_sample(tensor, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    return out[:, 0].numpy()
