"""``saropt bnn locate`` on files: a SAR template in an optical window, or a SAR scene's grid.

One SAR template in an optical search window, or a grid of SAR patches of a scene in the
optical scene. Images are read whole through :mod:`saropt.build.rasters` (any GDAL raster;
non-8-bit SAR scaled by the 1st/99th percentiles of dB, as ``saropt data build``).
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import numpy as np

from saropt.bnn.locate import grid_centres, locate, locate_scene, make_matcher
from saropt.errors import SaroptError
from saropt.utils.io import atomic_path, save_figure_atomic


def read_sar_image(path: str | Path) -> np.ndarray:
    """The whole SAR raster (band 1) as uint8 ``(H, W)`` (``saropt data build``'s scaling).

    Raises :class:`~saropt.errors.DataError` for an unreadable raster.
    """
    from saropt.build.config import SarScaling
    from saropt.build.rasters import SarSource

    src = SarSource(Path(path), None, SarScaling())
    try:
        h, w = src.shape
        return src.read(0, 0, w, h)[0]
    finally:
        src.close()


def read_optical_image(path: str | Path) -> np.ndarray:
    """The whole optical raster as uint8 ``(H, W, 3)`` RGB (1 band repeated, a 4th ignored).

    Raises :class:`~saropt.errors.DataError` for an unreadable or non-8-bit raster.
    """
    from saropt.build.rasters import OpticalSource

    src = OpticalSource(Path(path))
    try:
        h, w = src.shape
        return src.read(0, 0, w, h)
    finally:
        src.close()


def plot_cost_map(template: np.ndarray, search: np.ndarray, cost_map: np.ndarray, dx: int,
                  dy: int, title: str) -> Any:
    """Template, search window with the found box, and the cost map with the answer (a figure).

    ``cost_map`` ``(2R + 1, 2R + 1)`` indexed ``[dy + R, dx + R]``; ``(dx, dy)`` the answer, px.
    """
    from saropt.bnn.plots import _plt

    plt = _plt()
    r = (cost_map.shape[0] - 1) // 2
    t = template.shape[0]
    fig, ax = plt.subplots(1, 3, figsize=(9, 3.2))
    ax[0].imshow(template, cmap="gray")
    ax[0].set_title("SAR template")
    ax[1].imshow(search)
    ax[1].add_patch(plt.Rectangle((r + dx - 0.5, r + dy - 0.5), t, t, fill=False, ec="red"))
    ax[1].set_title("optical search window")
    im = ax[2].imshow(cost_map, extent=(-r - 0.5, r + 0.5, r + 0.5, -r - 0.5))
    ax[2].plot(dx, dy, "x", color="red")
    ax[2].set_title(title)
    fig.colorbar(im, ax=ax[2], fraction=0.046)
    for a in ax[:2]:
        a.set_xticks([])
        a.set_yticks([])
    fig.tight_layout()
    return fig


def locate_patch_files(sar: str | Path, optical: str | Path, method: str, model: str | None,
                       stride: int = 4, top_k: int = 3, device: str = "cpu",
                       out: str | Path | None = None) -> tuple[dict[str, Any], str]:
    """Locate the SAR template file ``sar`` in the optical window file ``optical``.

    The window must be the template plus R px on every side (both square). ``out``: a PNG of
    the cost map. Returns (JSON-ready result with the offset in px from the centred position,
    one-line text). Raises :class:`SaroptError` for unusable images, a bad matcher or ``model``.
    """
    template, search = read_sar_image(sar), read_optical_image(optical)
    matcher = make_matcher(method, model, device)
    loc = locate(matcher, template, search, stride=stride, top_k=top_k, keep_map=True)
    res = {"method": method, "radius": (search.shape[0] - template.shape[0]) // 2,
           **loc.to_json()}
    if out is not None:
        fig = plot_cost_map(template, search, loc.cost_map, loc.dx, loc.dy, f"{method} cost")
        res["figure"] = str(save_figure_atomic(fig, out))
    text = (f"{method}: offset dx={loc.dx} dy={loc.dy} px (sub-pixel {loc.sub_dx:.2f}, "
            f"{loc.sub_dy:.2f}) from the window centre, cost {loc.cost:.4f}, confidence "
            f"{loc.confidence:.4f}, {loc.n_evaluated} positions evaluated")
    return res, text


SCENE_COLUMNS = ["sar_x", "sar_y", "opt_x", "opt_y", "cost", "confidence"]


def locate_scene_files(sar: str | Path, optical: str | Path, method: str, model: str | None,
                       grid: int, patch: int, radius: int, shift: tuple[float, float] = (0, 0),
                       stride: int = 4, top_k: int = 3, device: str = "cpu",
                       out: str | Path | None = None) -> tuple[dict[str, Any], str]:
    """Locate ``patch`` px SAR patches every ``grid`` px of a SAR scene in the optical scene.

    Each patch is searched within ``radius`` px of its SAR position + ``shift`` (dx, dy px) in
    the optical scene (both scenes on the same pixel grid up to that shift). ``out``: a CSV of
    :data:`SCENE_COLUMNS` (pixel centres, px). Returns (JSON-ready result, one-line text).
    Raises :class:`SaroptError` for ``grid`` < 1, ``patch`` < 8 or ``radius`` < 1, unusable
    images or a bad matcher.
    """
    if grid < 1 or patch < 8 or radius < 1:
        raise SaroptError(f"--grid >= 1, --patch >= 8 and --radius >= 1 px needed (got {grid}, "
                          f"{patch}, {radius})")
    s_img, o_img = read_sar_image(sar), read_optical_image(optical)
    matcher = make_matcher(method, model, device)
    centres = grid_centres(s_img.shape, patch, grid)
    pts = locate_scene(matcher, s_img, o_img, centres, lambda xy: xy + np.asarray(shift),
                       patch, radius, progress=True, stride=stride, top_k=top_k)
    rows = [(p.sar_x, p.sar_y, p.opt_x, p.opt_y, p.location.cost, p.location.confidence)
            for p in pts]
    if out is not None:
        with atomic_path(Path(out)) as tmp, tmp.open("w", newline="") as f:
            w = csv.writer(f)
            w.writerow(SCENE_COLUMNS)
            w.writerows([[f"{v:.4f}" for v in r] for r in rows])
    res = {"method": method, "patches": len(centres), "located": len(pts),
           "skipped_outside": len(centres) - len(pts), "out": str(out) if out else None,
           "points": [dict(zip(SCENE_COLUMNS, r)) for r in rows]}
    text = (f"{method}: located {len(pts)} of {len(centres)} SAR patches ({patch} px every "
            f"{grid} px; {len(centres) - len(pts)} skipped: window outside an image)"
            + (f"; wrote {out}" if out else ""))
    return res, text
