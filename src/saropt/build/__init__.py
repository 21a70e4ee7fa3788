"""Dataset construction (``saropt data build``): tie points, per-sub-region registration,
windowed bilinear warping of the optical onto the SAR grid, patch cutting, screening, and the
QXS-SAROPT layout with a manifest. See ``docs/build.md``."""

from saropt.build.config import BuildConfig
from saropt.build.pipeline import BuildResult, build_dataset, layout_dirs

__all__ = ["BuildConfig", "BuildResult", "build_dataset", "layout_dirs"]
