"""Unit tests of dataset construction: inputs, registration, warping, patch grid, screening."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from saropt.build.config import BuildConfig
from saropt.build.patches import grid_positions, plan_blocks
from saropt.build.register import fit_subregion, map_coords
from saropt.build.screen import DuplicateIndex, phash, seam_score, texture_score
from saropt.build.tiepoints import SubRegion, read_subregions, read_tiepoints, write_tiepoints
from saropt.config import ConfigError, build_config, load_config
from saropt.errors import DataError


def textured(h: int, w: int, seed: int = 0) -> np.ndarray:
    """A smooth random RGB texture (uint8)."""
    rng = np.random.default_rng(seed)
    noise = cv2.GaussianBlur(rng.normal(0, 1, (h, w, 3)).astype(np.float32), (0, 0), 3.0)
    return np.clip(128 + noise * (25 / noise.std()), 0, 255).astype(np.uint8)


def affine_points(m: np.ndarray, n: int, noise: float, n_out: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    sar = rng.uniform(0, 500, (n, 2))
    opt = sar @ m[:2, :2].T + m[:2, 2] + rng.normal(0, noise, (n, 2))
    opt[:n_out] += 30.0
    return np.hstack([sar, opt])


M = np.array([[1.05, 0.07, 12.0], [-0.06, 0.98, 30.0], [0, 0, 1]])


# ------------------------------------------------------------------ inputs

def test_tiepoints_roundtrip_and_errors(tmp_path: Path) -> None:
    pts = affine_points(M, 5, 0.0, 0)
    write_tiepoints(tmp_path / "tp.csv", {"a": pts, "b": pts[:3]})
    groups = read_tiepoints(tmp_path / "tp.csv")
    assert set(groups) == {"a", "b"} and np.allclose(groups["a"], pts, atol=1e-3)
    (tmp_path / "bad.csv").write_text("subregion,sar_x,sar_y,opt_x\na,1,2,3\n")
    with pytest.raises(DataError, match="bad.csv.*opt_y"):
        read_tiepoints(tmp_path / "bad.csv")
    (tmp_path / "nan.csv").write_text("subregion,sar_x,sar_y,opt_x,opt_y\na,1,x,3,4\n")
    with pytest.raises(DataError, match="nan.csv: line 2"):
        read_tiepoints(tmp_path / "nan.csv")


def test_subregions_rect_polygon_and_errors(tmp_path: Path) -> None:
    p = tmp_path / "sr.json"
    p.write_text(json.dumps({"r": {"rect": [-5, 10, 300, 90]},
                             "p": {"polygon": [[0, 0], [99, 0], [0, 99]]}}))
    r, poly = read_subregions(p, (80, 200))
    assert r.bbox == (0, 10, 200, 80) and poly.bbox == (0, 0, 100, 80)
    assert poly.mask(0, 0, 100, 80)[10, 10] and not poly.mask(0, 0, 100, 80)[70, 70]
    p.write_text(json.dumps({"x": {"rect": [1, 2, 3]}}))
    with pytest.raises(DataError, match="'x'.*rect"):
        read_subregions(p, (80, 200))
    p.write_text(json.dumps({"x": {"rect": [500, 500, 600, 600]}}))
    with pytest.raises(DataError, match="does not overlap"):
        read_subregions(p, (80, 200))


def test_config_requires_tiepoints_and_names_bad_keys(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="tiepoints"):
        build_config(BuildConfig, {"sar": "a", "optical": "b", "out": "c"})
    with pytest.raises(ConfigError, match="registration.model"):
        build_config(BuildConfig, {"sar": "a", "optical": "b", "out": "c", "tiepoints": "t"},
                     ["registration.model=spline"])
    cfg = load_config(BuildConfig, "build/default", ["patches.overlap=0.25"])
    assert cfg.patches.stride == 192 and BuildConfig.model_validate(
        {"sar": "a", "optical": "b", "out": "c", "tiepoints": "t"}).patches.stride == 205


# ------------------------------------------------------------------ registration

def reg_cfg(**kw):
    return BuildConfig(sar="s", optical="o", out="x", tiepoints="t",
                       registration=kw).registration


@pytest.mark.parametrize("model", ["affine", "projective", "polynomial2", "tps"])
def test_fit_with_outliers_recovers_mapping(model: str) -> None:
    pts = affine_points(M, 40, 0.3, 5)
    fit = fit_subregion("a", pts, reg_cfg(model=model))
    assert fit.ok, fit.reason
    assert fit.inliers[:5].sum() == 0 and fit.inliers[5:].all()
    grid = np.stack(np.meshgrid(np.arange(50, 450, 20), np.arange(50, 450, 20)), -1)
    grid = grid.reshape(-1, 2).astype(float)
    truth = grid @ M[:2, :2].T + M[:2, 2]
    err = np.sqrt(np.mean(np.sum((fit(grid) - truth) ** 2, axis=1)))
    assert err < (0.6 if model == "tps" else 0.25)
    assert fit.residuals.shape == (40, 2) and np.abs(fit.residuals[:5]).max() > 20
    assert json.dumps(fit.to_json())  # serialisable


def test_fit_refuses_with_reason() -> None:
    pts = affine_points(M, 20, 4.0, 0)
    fit = fit_subregion("noisy", pts, reg_cfg(ransac=False, max_rmse=1.0))
    assert not fit.ok and "RMSE" in fit.reason and "max_rmse 1.0" in fit.reason
    fit = fit_subregion("few", pts[:3], reg_cfg(model="projective"))
    assert not fit.ok and "needs at least 4" in fit.reason
    line = np.column_stack([np.arange(6.0), np.arange(6.0), np.arange(6.0), np.arange(6.0)])
    assert not fit_subregion("line", line, reg_cfg(ransac=False)).ok


def test_map_coords_grid_approximation_is_subpixel() -> None:
    fit = fit_subregion("a", affine_points(M, 30, 0.3, 0), reg_cfg(model="tps"))
    mx, my = map_coords(fit, 40, 60, 200, 150, step=8)
    ys, xs = np.mgrid[60:210, 40:240]
    exact = fit(np.column_stack([xs.ravel(), ys.ravel()]).astype(float))
    assert np.abs(mx.ravel() - exact[:, 0]).max() < 0.05
    assert np.abs(my.ravel() - exact[:, 1]).max() < 0.05


# ------------------------------------------------------------------ warping

def test_warp_window_matches_full_image_warp(tmp_path: Path) -> None:
    import rasterio

    from saropt.build.rasters import OpticalSource
    from saropt.build.warp import warp_window

    opt = textured(700, 700)
    with rasterio.open(tmp_path / "o.tif", "w", driver="GTiff", width=700, height=700,
                       count=3, dtype="uint8") as dst:
        dst.write(np.moveaxis(opt, -1, 0))
    fit = fit_subregion("a", affine_points(M, 20, 0.0, 0), reg_cfg())
    src = OpticalSource(tmp_path / "o.tif")
    full = cv2.warpAffine(opt, M[:2], (600, 600), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP)
    win, valid = warp_window(fit, src, 100, 250, 256, 300)
    ref = full[250:550, 100:356]
    assert valid.all()
    assert np.abs(win.astype(int) - ref).max() <= 2  # fixed-point remap vs warpAffine
    win, valid = warp_window(fit, src, 600, 600, 100, 100)  # maps past the optical edge
    assert not valid.all() and valid.any()


# ------------------------------------------------------------------ patch grid

def test_grid_positions_follow_geometry() -> None:
    sr = SubRegion("r", (10, 20, 10 + 1000, 20 + 700))
    pos = grid_positions(sr, 256, 205)
    xs, ys = sorted({p[0] for p in pos}), sorted({p[1] for p in pos})
    assert xs == [10, 215, 420, 625] and ys == [20, 225, 430]  # 625+256 <= 1010 < 830+256
    blocks = plan_blocks(sr, 256, 205, 2)
    assert len(blocks) == 4 and sum(len(b.positions) for b in blocks) == 12
    assert blocks[0].window(256) == (10, 20, 461, 461)
    tri = SubRegion("t", (0, 0, 700, 700), np.array([[-1, -1], [700, -1], [-1, 700]], float))
    assert [(x, y) for x, y, _, _ in grid_positions(tri, 256, 205)] == [(0, 0)]
    notch = np.array([[-1, -1], [700, -1], [700, 700], [300, 700], [300, 100], [-1, 700]], float)
    pos = [(x, y) for x, y, _, _ in grid_positions(SubRegion("n", (0, 0, 700, 700), notch),
                                                     256, 205)]
    assert pos == [(410, 0), (410, 205), (410, 410)]


# ------------------------------------------------------------------ screening

def test_texture_score_separates_flat_sea_from_land() -> None:
    rng = np.random.default_rng(0)
    sea_sar = np.clip(40 * np.sqrt(rng.exponential(1, (256, 256))), 0, 255).astype(np.uint8)
    land = textured(256, 256)
    flat = np.full((256, 256, 3), (30, 60, 90), np.uint8)
    assert texture_score(flat) == 0.0 and texture_score(sea_sar) < 5 < texture_score(land)


def test_seam_score_flags_planted_seams_only() -> None:
    img = textured(256, 256, seed=3)
    seam = img.astype(int)
    seam[140:] += 30
    seam = np.clip(seam, 0, 255).astype(np.uint8)
    tilted = cv2.warpAffine(seam, cv2.getRotationMatrix2D((128, 128), 2, 1), (256, 256),
                            borderMode=cv2.BORDER_REFLECT)
    road = img.copy()
    road[100:110] = 90  # a straight road across the patch is not a seam
    coast = img.copy()
    coast[:, :120] = (30, 60, 90)  # textured land against flat sea is not a seam either
    assert seam_score(seam) > 15 and seam_score(tilted) > 15
    assert seam_score(seam.transpose(1, 0, 2).copy()) > 15
    assert seam_score(img) < 15 and seam_score(road) < 15 and seam_score(coast) < 15


def test_duplicates_by_perceptual_hash() -> None:
    a, b = textured(256, 256, 1), textured(256, 256, 2)
    noisy = np.clip(a + np.random.default_rng(0).normal(0, 4, a.shape), 0, 255).astype(np.uint8)
    idx = DuplicateIndex()
    assert idx.query(phash(a), phash(a)) == (None, None)
    idx.add(phash(a), phash(a), 1)
    dist, of = idx.query(phash(noisy), phash(noisy))
    assert of == 1 and dist <= 4
    assert idx.query(phash(b), phash(b))[0] > 12


# ------------------------------------------------------------------ SAR scaling

@pytest.mark.parametrize("dtype", ["uint16", "float32"])
def test_sar_scaling_percentile_db_and_nodata(tmp_path: Path, dtype: str) -> None:
    import rasterio

    from saropt.build.rasters import SarSource

    rng = np.random.default_rng(0)
    amp = (100 * np.sqrt(rng.exponential(1, (200, 300))) + 1).astype(dtype)
    amp[:10] = 0
    with rasterio.open(tmp_path / "s.tif", "w", driver="GTiff", width=300, height=200,
                       count=1, dtype=dtype, nodata=0) as dst:
        dst.write(amp[None])
    cfg = BuildConfig(sar="s", optical="o", out="x", tiepoints="t").sar_scaling
    sar = SarSource(tmp_path / "s.tif", None, cfg)
    assert sar.scaler.method == "db"
    img, valid = sar.read(0, 0, 300, 200)
    assert img.dtype == np.uint8 and not valid[:10].any() and valid[10:].all()
    v = img[10:]
    assert np.mean(v == 0) < 0.02 and np.mean(v == 255) < 0.02 and v.std() > 20
    with pytest.raises(DataError, match="sar_scaling.method 'none' needs uint8"):
        SarSource(tmp_path / "s.tif", None, cfg.model_copy(update={"method": "none"}))
