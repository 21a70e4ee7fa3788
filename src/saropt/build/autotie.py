"""Automatic tie points (``saropt data tiepoints``) from SAR patches located in the optical scene.

Not in the papers (which pick matching points by hand, paper 002 section II.D): the patches are
located by the BNN or a library baseline (OpenCV NCC, normalised mutual information), written as the
builder's tie-point CSV plus a ``confidence`` column (``read_tiepoints`` reads the five builder
columns and ignores the rest), so that ``saropt data build`` and its RANSAC fit use them as they use
hand-picked points.

Steps, per scene:

1. **Prior** (SAR pixel -> optical pixel): the georeferencing of both rasters when both have
   one (an affine fit to ``georef_tiepoints``), else a **coarse global match**: the central half
   of the SAR scene, reduced to <= 256 px, located in the reduced optical scene by NCC of
   gradient magnitudes, giving a translation (up to a quarter of the scene each way).
2. **Grid**: SAR patches (``patch`` px) centred every ``step`` px inside each sub-region (a
   patch may reach past its sub-region, not past the scene), kept when textured: the
   builder's SAR texture score (``saropt.build.screen.texture_score``) at least
   ``texture_min`` (the builder's ``screening.texture_min_sar``, 5 grey levels).
3. **Pass 1**: each patch (of all sub-regions) searched within ``radius`` px of the prior; the
   confident ones (``confidence >= min_confidence``) give one affine SAR -> optical model by
   RANSAC (threshold 3 px), which absorbs the rotation and scale a translation prior leaves.
4. **Pass 2**: each patch searched again within ``refine_radius`` px of the affine prediction;
   the confident answers (sub-pixel by a parabola through the cost minimum) are the tie
   points. Without a pass-1 model (too few confident points) pass 1's points are written.

The matcher's scale is the scene's: the SAR and optical pixel spacings should agree to about
10 % and the orientations to a few degrees (resample the optical first otherwise).
"""

from __future__ import annotations

import csv
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from saropt.build.tiepoints import TIEPOINT_COLUMNS, SubRegion, read_subregions
from saropt.errors import DataError
from saropt.utils.io import atomic_path

#: confidence margins below which an answer is dropped, per matcher (cost units: 1 - NCC for
#: ncc/ncc_grad, -NMI for mi, d for bnn), chosen on the synthetic world (docs/build.md)
DEFAULT_MIN_CONFIDENCE = {"ncc": 0.05, "ncc_grad": 0.05, "mi": 0.005, "bnn": 0.01}
#: the baseline used without --model (the best on the synthetic world, docs/build.md)
DEFAULT_BASELINE = "mi"
CSV_COLUMNS = TIEPOINT_COLUMNS + ["confidence"]


def write_tiepoints_conf(path: Path, rows: list[tuple[str, float, float, float, float, float]]
                         ) -> None:
    """Write the builder's tie-point CSV plus ``confidence`` (atomically, 4 decimals).

    ``rows``: ``(subregion, sar_x, sar_y, opt_x, opt_y, confidence)``, coordinates in px.
    """
    with atomic_path(path) as tmp, tmp.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(CSV_COLUMNS)
        for name, *vals in rows:
            w.writerow([name] + [f"{v:.4f}" for v in vals])


def _reduce(img: np.ndarray, f: int) -> np.ndarray:
    h, w = img.shape[:2]
    return cv2.resize(img, (max(1, w // f), max(1, h // f)), interpolation=cv2.INTER_AREA)


def coarse_shift(sar: np.ndarray, opt_grey: np.ndarray, side: int = 256) -> tuple[float, float]:
    """Translation (dx, dy) in px, optical = SAR + shift, from a coarse global match.

    Both scenes are reduced (``cv2.INTER_AREA``) so the longest side is at most ``side`` px; the
    central half of the reduced SAR scene is located in the reduced optical scene by OpenCV
    ``matchTemplate`` (``TM_CCOEFF_NORMED``) on gradient magnitudes. ``sar``: ``(H, W)``;
    ``opt_grey``: ``(H', W')`` grey. The shift is a multiple of the reduction factor.

    Raises:
        DataError: when the optical scene is smaller than half the SAR scene.
    """
    from saropt.bnn.matchers import gradient_magnitude

    f = max(1, int(np.ceil(max(*sar.shape[:2], *opt_grey.shape[:2]) / side)))
    s, o = gradient_magnitude(_reduce(sar, f), 1.0), gradient_magnitude(_reduce(opt_grey, f), 1.0)
    h, w = s.shape
    y0, x0 = h // 4, w // 4
    tmpl = s[y0:y0 + h // 2, x0:x0 + w // 2]
    if o.shape[0] < tmpl.shape[0] or o.shape[1] < tmpl.shape[1]:
        raise DataError(f"optical scene {opt_grey.shape[:2]} is smaller than half the SAR scene "
                        f"{sar.shape[:2]}: no coarse match possible (resample the optical to "
                        "the SAR's pixel spacing first)")
    # no padding: a padded border's edge would match SAR edges; shifts up to a quarter scene
    r = cv2.matchTemplate(o, tmpl, cv2.TM_CCOEFF_NORMED)
    iy, ix = np.unravel_index(int(np.argmax(r)), r.shape)
    return float((ix - x0) * f), float((iy - y0) * f)


def _georef_prior(sar_ds: Any, opt_ds: Any, shape: tuple[int, int]) -> Any | None:
    from saropt.build.georef import georef_tiepoints
    from saropt.build.register import estimate

    if any(ds.crs is None or ds.transform.is_identity for ds in (sar_ds, opt_ds)):
        return None
    pts = georef_tiepoints(sar_ds, opt_ds, [SubRegion("scene", (0, 0, shape[1], shape[0]))])
    p = pts["scene"]
    return estimate("affine", p[:, :2], p[:, 2:4])


def textured_centres(sar: np.ndarray, sr: SubRegion, patch: int, step: int,
                     texture_min: float) -> tuple[np.ndarray, int]:
    """Centres every ``step`` px inside ``sr`` whose ``patch`` px SAR patch is textured.

    A patch may reach past the sub-region, not past the SAR scene. Textured: the builder's
    :func:`saropt.build.screen.texture_score` at least ``texture_min`` (grey levels).

    Returns:
        ``(centres, n)``: ``(M, 2)`` float x, y patch centres in SAR px, and the number of grid
        centres looked at (inside the sub-region).
    """
    from saropt.build.screen import texture_score

    x0, y0, x1, y1 = sr.bbox
    half = (patch - 1) / 2
    gx, gy = np.meshgrid(np.arange(x0 + step // 2, x1, step), np.arange(y0 + step // 2, y1, step))
    keep, n = [], 0
    for cx, cy in zip(gx.ravel(), gy.ravel()):
        if sr.polygon is not None and not sr.mask(int(cx), int(cy), 1, 1)[0, 0]:
            continue
        n += 1
        px, py = int(round(cx - half)), int(round(cy - half))
        if px < 0 or py < 0 or px + patch > sar.shape[1] or py + patch > sar.shape[0]:
            continue
        if texture_score(sar[py:py + patch, px:px + patch]) >= texture_min:
            keep.append((px + half, py + half))
    return np.asarray(keep, float).reshape(-1, 2), n


def _affine_from(points: np.ndarray, threshold: float = 3.0) -> Any | None:
    from saropt.build.config import Registration
    from saropt.build.register import fit_subregion

    fit = fit_subregion("prior", points, Registration(model="affine", ransac_threshold=threshold,
                                                      max_rmse=1e9, min_points=6))
    return fit.transform if fit.transform is not None else None


def auto_tiepoints(sar_path: str | Path, opt_path: str | Path, out: str | Path,
                   subregions: str | Path | None = None, model: str | None = None,
                   method: str | None = None, patch: int = 128, step: int | None = None,
                   radius: int = 48, refine_radius: int = 8, min_confidence: float | None = None,
                   texture_min: float = 5.0, stride: int = 4, device: str = "cpu",
                   progress: bool = True) -> dict[str, Any]:
    """Find tie points and write ``out`` (CSV, builder format + ``confidence``).

    See the module docstring for the steps. ``method``: ``bnn`` (needs ``model``, a checkpoint
    or exported encoders) or a baseline ``ncc``, ``ncc_grad``, ``mi`` (default ``mi`` without a
    model); ``patch``, ``step`` (default ``patch // 2``), ``radius``, ``refine_radius`` and
    ``stride`` in px; ``min_confidence`` defaults per method (:data:`DEFAULT_MIN_CONFIDENCE`).
    Both rasters are read whole.

    Returns:
        A JSON-ready summary: counts per sub-region, the prior, the settings, ``seconds``.

    Raises:
        SaroptError: (DataError included) for bad sizes (``patch < 16``, radii or ``step`` < 1),
            an unknown method, ``bnn`` without a model, unreadable rasters or sub-regions, an
            optical scene too small for the coarse match, or no confident tie point.
    """
    from saropt.bnn.locate import locate_scene, make_matcher
    from saropt.bnn.matchers import grey
    from saropt.build.config import SarScaling
    from saropt.build.rasters import OpticalSource, SarSource

    method = method or ("bnn" if model else DEFAULT_BASELINE)
    if patch < 16 or radius < 1 or refine_radius < 1 or (step is not None and step < 1):
        raise DataError(f"--patch >= 16, --radius, --refine-radius, --step >= 1 needed (got "
                        f"{patch}, {radius}, {refine_radius}, {step})")
    min_conf = DEFAULT_MIN_CONFIDENCE[method] if min_confidence is None else min_confidence
    matcher = make_matcher(method, model, device)
    t0 = time.perf_counter()
    s_src, o_src = SarSource(Path(sar_path), None, SarScaling()), OpticalSource(Path(opt_path))
    try:
        sar = s_src.read(0, 0, s_src.shape[1], s_src.shape[0])[0]
        opt = o_src.read(0, 0, o_src.shape[1], o_src.shape[0])
        geo = _georef_prior(s_src.ds, o_src.ds, s_src.shape)
    finally:
        s_src.close()
        o_src.close()
    if geo is not None:
        prior, prior_info = geo, {"kind": "georeference"}
    else:
        shift = np.array(coarse_shift(sar, grey(opt)))
        prior = lambda xy: xy + shift  # noqa: E731
        prior_info = {"kind": "coarse global match", "shift_px": shift.tolist()}
    regions = read_subregions(Path(subregions) if subregions else None, sar.shape)
    step = step or patch // 2
    kw = dict(stride=stride, progress=progress)
    grids = [textured_centres(sar, sr, patch, step, texture_min) for sr in regions]
    centres = np.concatenate([g[0] for g in grids])
    names = np.concatenate([[sr.name] * len(g[0]) for sr, g in zip(regions, grids)] or [[]])
    pts = locate_scene(matcher, sar, opt, centres, prior, patch, radius, **kw)
    conf1 = [p for p in pts if p.location.confidence >= min_conf]
    affine = _affine_from(np.array([[p.sar_x, p.sar_y, p.opt_x, p.opt_y] for p in conf1])
                          .reshape(-1, 4)) if len(conf1) >= 6 else None
    if affine is not None:
        pts = locate_scene(matcher, sar, opt, centres, affine, patch, refine_radius, **kw)
    region_of = {(round(c[0], 3), round(c[1], 3)): n for c, n in zip(centres, names)}
    rows, per_region = [], []
    for sr, (cs, n_grid) in zip(regions, grids):
        mine = [p for p in pts if region_of[(round(p.sar_x, 3), round(p.sar_y, 3))] == sr.name]
        kept = [p for p in mine if p.location.confidence >= min_conf]
        per_region.append({"subregion": sr.name, "grid_patches": n_grid, "textured": len(cs),
                           "located": len(mine), "kept": len(kept)})
        rows += [(sr.name, p.sar_x, p.sar_y, p.opt_x, p.opt_y, p.location.confidence)
                 for p in kept]
    if not rows:
        raise DataError(f"no confident tie points in {sar_path} / {opt_path} (method {method}, "
                        f"min confidence {min_conf}); try a larger --radius, --patch or a "
                        "lower --min-confidence")
    write_tiepoints_conf(Path(out), rows)
    return {"out": str(out), "method": method, "model": model, "prior": prior_info,
            "pass1": {"located": len(pts), "confident": len(conf1),
                      "affine_prior": affine is not None},
            "patch": patch, "step": step, "radius": radius,
            "refine_radius": refine_radius, "min_confidence": min_conf,
            "texture_min": texture_min, "tie_points": len(rows), "subregions": per_region,
            "seconds": round(time.perf_counter() - t0, 2)}
