"""Validated configuration of the ``otsu-crf`` pseudo-labeler."""

from __future__ import annotations

from pydantic import Field

from wsseg.interfaces import PluginConfig


class OtsuCRFConfig(PluginConfig):
    """Options of :class:`~wsseg_otsu_crf.OtsuCRFLabeler`; the defaults are the paper's."""

    myocardium_threshold: float | None = Field(
        None,
        gt=0.0,
        lt=1.0,
        description="Zero the resized CAM where the myocardium probability is below this (the restricted CAM on "
        "the image grid, so Otsu and the CRF see myocardium only); None (the paper): no restriction beyond the "
        "CAM grid's.",
    )
    otsu: bool = Field(True, description="Suppress pixels darker than the lowest Multi-Otsu threshold.")
    otsu_classes: int = Field(
        3, ge=2, le=5, description="Multi-Otsu classes (search time grows steeply: 5 takes seconds per slice)."
    )
    crf: bool = Field(True, description="Refine with DenseCRF; otherwise binarise with `threshold`.")
    crf_iterations: int = Field(5, ge=1, le=100, description="Mean-field iterations of the DenseCRF.")
    w1: float = Field(0.0, ge=0.0, le=1000.0, description="Weight of the bilateral appearance kernel (0 = off).")
    w2: float = Field(1.0, ge=0.0, le=1000.0, description="Weight of the Gaussian smoothness kernel (0 = off).")
    theta_gamma: float = Field(3.0, gt=0.0, le=1000.0, description="Width of the smoothness kernel, pixels.")
    theta_alpha: float = Field(80.0, gt=0.0, le=1000.0, description="Spatial width of the appearance kernel, pixels.")
    theta_beta: float = Field(
        13.0, gt=0.0, le=1000.0, description="Intensity width of the appearance kernel, grey levels 0..255."
    )
    threshold: float = Field(
        0.5, gt=0.0, le=1.0, description="Without CRF, mask = probability >= threshold (0.5: every positive CAM pixel)."
    )

    def crf_kwargs(self) -> dict[str, float | int]:
        """The CRF keyword arguments (``iterations``, kernel weights and widths) of this config."""
        return {
            "iterations": self.crf_iterations,
            "w1": self.w1,
            "w2": self.w2,
            "theta_gamma": self.theta_gamma,
            "theta_alpha": self.theta_alpha,
            "theta_beta": self.theta_beta,
        }
