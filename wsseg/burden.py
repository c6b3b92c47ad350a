"""Scar burden: a case's myocardium and fibrosis volumes (mL) and the fibrosis share of the myocardium (%).

This is what clinical reports give per patient. Scar is part of the wall, as in the EMIDEC coding
(myocardium = {2, 3, 4}, fibrosis = {3, 4}): the myocardium of a case is the union of its
myocardium and fibrosis masks, so the share is at most 100 %. Volumes need the voxel size, the
in-plane pixel spacing times the slice spacing (the distance between slice centres, which may
differ from the slice thickness); without it only pixel counts and the share are known.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

__all__ = ["BURDEN_COLUMNS", "Burden", "burden_agreement", "scar_burden"]

BURDEN_COLUMNS = [
    "case",
    "slices",
    "myocardium_pixels",
    "fibrosis_pixels",
    "myocardium_ml",
    "fibrosis_ml",
    "fibrosis_percent",
]
"""The columns of ``cases.csv`` that ``wsseg predict`` writes, one row per case (:meth:`Burden.row`)."""


@dataclass(frozen=True)
class Burden:
    """One case's scar burden; volumes are ``None`` without a voxel size, the share without myocardium."""

    slices: int
    myocardium_pixels: int
    fibrosis_pixels: int
    myocardium_ml: float | None
    fibrosis_ml: float | None
    fibrosis_percent: float | None

    def row(self, case: str) -> list:
        """The case's row of :data:`BURDEN_COLUMNS`, unknown values left empty."""

        def cell(value: float | None, digits: int) -> str:
            return "" if value is None else f"{value:.{digits}f}"

        return [
            case,
            self.slices,
            self.myocardium_pixels,
            self.fibrosis_pixels,
            cell(self.myocardium_ml, 3),
            cell(self.fibrosis_ml, 3),
            cell(self.fibrosis_percent, 2),
        ]


def scar_burden(
    myocardium: Sequence[np.ndarray] | np.ndarray,
    fibrosis: Sequence[np.ndarray] | np.ndarray,
    spacing: tuple[float, float, float] | None,
) -> Burden:
    """The burden of one case from its 0/1 masks, slice by slice (slices may differ in size).

    ``spacing`` is ``(slice, row, column)`` in mm, or ``None`` where unknown. Fibrosis counts as
    myocardium too (see the module docstring).
    """
    if len(myocardium) != len(fibrosis):
        raise ValueError(f"{len(myocardium)} myocardium slices but {len(fibrosis)} fibrosis slices")
    wall = scar = 0
    for myo, fib in zip(myocardium, fibrosis):
        myo, fib = np.asarray(myo) > 0, np.asarray(fib) > 0
        if myo.shape != fib.shape:
            raise ValueError(f"a myocardium slice of shape {myo.shape} beside a fibrosis slice of shape {fib.shape}")
        wall += int((myo | fib).sum())
        scar += int(fib.sum())
    if spacing is not None and not (np.isfinite(spacing).all() and (np.asarray(spacing) > 0).all()):
        raise ValueError(f"spacing must be three positive numbers (mm), got {spacing}")
    voxel_ml = float(np.prod(spacing)) / 1000 if spacing is not None else None
    return Burden(
        slices=len(myocardium),
        myocardium_pixels=wall,
        fibrosis_pixels=scar,
        myocardium_ml=wall * voxel_ml if voxel_ml is not None else None,
        fibrosis_ml=scar * voxel_ml if voxel_ml is not None else None,
        fibrosis_percent=100 * scar / wall if wall else None,
    )


def burden_agreement(predicted: Sequence[float], true: Sequence[float]) -> dict[str, float]:
    """How well predicted fibrosis shares (%, one per case) agree with the true ones: their mean absolute
    difference in percentage points, their Pearson correlation (NaN when either is constant) and the count."""
    p, t = np.asarray(predicted, float), np.asarray(true, float)
    if p.shape != t.shape or p.size == 0:
        raise ValueError(f"need as many predicted as true shares, at least one; got {p.size} and {t.size}")
    correlated = p.std() > 0 and t.std() > 0
    return {
        "mean_abs_diff_pp": float(np.abs(p - t).mean()),
        "pearson_r": float(np.corrcoef(p, t)[0, 1]) if correlated else float("nan"),
        "n": int(p.size),
    }
