"""``BuildConfig``: everything ``saropt data build`` needs, validated before any work starts.

Relative paths are taken relative to the current working directory.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator

from saropt.config import Config, Seed

ModelName = Literal["affine", "projective", "polynomial2", "tps"]


class SarScaling(Config):
    """How SAR amplitude becomes 8-bit grey levels.

    ``auto``: uint8 input is kept as is, anything else uses ``percentile_db``.
    ``percentile_db``: 20*log10(amplitude), clipped at the ``low``/``high`` percentiles of the
    valid pixels (estimated on a decimated read of the whole scene), mapped linearly to 0..255.
    ``percentile``: the same on linear amplitude. ``none``: the input must already be uint8.
    """

    method: Literal["auto", "percentile_db", "percentile", "none"] = "auto"
    low: float = Field(1.0, ge=0, lt=100)
    high: float = Field(99.0, gt=0, le=100)
    sample_side: int = Field(1024, ge=64, le=16384, description="long side of the decimated read")

    @model_validator(mode="after")
    def _order(self) -> SarScaling:
        if self.low >= self.high:
            raise ValueError(f"sar_scaling.low ({self.low}) must be below high ({self.high})")
        return self


class Registration(Config):
    """Per-sub-region fit of the SAR pixel -> optical pixel transform.

    The paper registers each sub-region from manually located matching points with "existing
    automatic image registration software" (paper 002 section II.D-E); here a scikit-image
    model (see :mod:`saropt.build.register`). Thresholds are in optical pixels.
    """

    model: ModelName = "affine"
    ransac: bool = True
    ransac_threshold: float = Field(3.0, gt=0, description="inlier residual, optical pixels")
    ransac_trials: int = Field(2000, ge=1, le=1_000_000)
    max_rmse: float = Field(2.0, gt=0, description="refuse a sub-region above this RMSE (px)")
    min_points: int = Field(3, ge=3)
    grid_step: int = Field(8, ge=1, description="exact transform every N px for polynomial2/"
                           "tps, bilinear in between (affine/projective are always exact)")
    seed: Seed = 0


class Patches(Config):
    """Patch cutting: ``size`` px squares with ``overlap`` (fraction) between neighbours.

    The defaults are the paper's 256 x 256 px with 20 % overlap (paper 002 section II.F, paper
    003 Algorithm 1 step 6); ``block`` x ``block`` patches are warped and written together.
    """

    size: int = Field(256, ge=16, le=4096)
    overlap: float = Field(0.2, ge=0, lt=1)
    block: int = Field(4, ge=1, description="patches per block side (unit of warping/resume)")

    @property
    def stride(self) -> int:
        """Grid step in SAR px, ``round(size * (1 - overlap))`` (at least 1): 205 for 256 / 20 %."""
        return max(1, int(round(self.size * (1 - self.overlap))))


class Screening(Config):
    """Thresholds replacing the paper's manual inspection; set a threshold to null to skip it.

    The paper double-checks patches by eye and removes texture-less ones, visible mosaicking
    seamlines and near-duplicate scenes (paper 002 section II.G, paper 003 Algorithm 1 step 7);
    the scores are those of :mod:`saropt.build.screen`.
    """

    texture_min_sar: float | None = Field(5.0, ge=0, description="min texture score of the "
                                          "SAR patch (scores are >= 0; 0 keeps all)")
    texture_min_opt: float | None = Field(6.0, ge=0, description="min texture score of the "
                                          "optical")
    seam_max: float | None = Field(15.0, ge=0, le=255, description="max seamline score "
                                   "(grey-level step, 0..255) of the optical patch")
    duplicate_max_hamming: int | None = Field(
        6, ge=0, lt=64, description="reject a patch whose SAR and optical hashes are both this "
        "close to a kept patch's (64-bit DCT perceptual hash; 64 would call every patch a "
        "duplicate)")


class BuildConfig(Config):
    """Inputs, registration, patching, screening and output of one scene's build.

    Exactly one tie-point source: ``tiepoints`` (a file), ``gcps`` (GCPs in a GeoTIFF) or
    ``georeference`` (both rasters' georeferencing).

    Raises:
        pydantic.ValidationError: for a bad field or not exactly one tie-point source when
            constructed directly; :func:`saropt.config.build_config` and ``load_config``
            raise it as a ConfigError naming every bad key.
    """

    sar: Path
    optical: Path
    tiepoints: Path | None = Field(None, description="tie-point file: builder CSV (.csv), "
                                   "QGIS Georeferencer .points or ENVI image-to-image .pts")
    tiepoint_format: Literal["auto", "csv", "qgis", "envi"] = Field(
        "auto", description="format of tiepoints (auto: from its suffix)")
    source_image: Literal["sar", "optical"] = Field(
        "optical", description="the image whose pixels a .points file's source columns (the "
        "raster QGIS georeferenced) or a .pts file's warp columns hold; the other image is the "
        "map (QGIS) or base (ENVI) side")
    gcps: Literal["sar", "optical"] | None = Field(
        None, description="take tie points from the GCPs stored in this GeoTIFF, placed on "
        "the other raster by its georeferencing")
    subregions: Path | None = None
    georeference: bool = Field(False, description="derive tie points from the GeoTIFFs' "
                               "georeferencing instead of a tie-point file")
    out: Path
    scene: str | None = Field(None, description="scene name in the manifest (default: SAR "
                              "file's stem, or its folder's name when that stem is 'sar')")
    sar_nodata: float | None = Field(None, description="SAR value meaning no data (null: the "
                                     "file's own nodata tag, if any)")
    sar_scaling: SarScaling = SarScaling()
    registration: Registration = Registration()
    patches: Patches = Patches()
    screening: Screening = Screening()
    png_compression: int = Field(1, ge=0, le=9)
    progress: bool = True
    summary: bool = Field(True, description="write summary.md and figures")

    @model_validator(mode="after")
    def _sources(self) -> BuildConfig:
        given = [k for k, v in (("tiepoints", self.tiepoints is not None),
                                ("georeference", self.georeference),
                                ("gcps", self.gcps is not None)) if v]
        if len(given) != 1:
            raise ValueError("give exactly one tie-point source: tiepoints (.csv, .points, "
                             ".pts), gcps: sar|optical, or georeference: true"
                             + (f" (got {', '.join(given)}; set the others to null/false)"
                                if given else ""))
        return self

    def scene_name(self) -> str:
        """The manifest's scene name: ``scene``, else the SAR file's stem.

        A stem of ``sar`` or ``sar_8bit`` gives the SAR file's folder name instead.
        """
        if self.scene:
            return self.scene
        stem = self.sar.stem
        return self.sar.resolve().parent.name if stem in ("sar", "sar_8bit") else stem
