"""Dataset construction (``saropt data build``), following the QXS-SAROPT procedure.

Tie points, per-sub-region registration, windowed bilinear warping of the optical onto the SAR
grid, patch cutting, screening, and the QXS-SAROPT layout with a manifest: paper 002 section
II.C-G, paper 003 section 3 (Algorithm 1, steps 3-7). See ``docs/build.md``.

Names load lazily, so ``saropt --help`` does not import the pipeline (and torch).
"""

from typing import TYPE_CHECKING

from saropt.utils.lazy import lazy_exports

if TYPE_CHECKING:
    from saropt.build.config import BuildConfig  # noqa: F401
    from saropt.build.pipeline import BuildResult, build_dataset, layout_dirs  # noqa: F401

_EXPORTS = {"BuildConfig": "config", "BuildResult": "pipeline", "build_dataset": "pipeline",
            "layout_dirs": "pipeline"}
__all__ = list(_EXPORTS)
__getattr__ = lazy_exports(__name__, _EXPORTS)
