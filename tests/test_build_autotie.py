"""Automatic tie points (``saropt data tiepoints``) on a synthetic scene whose SAR -> optical
mapping is known exactly: the points fit the truth, the builder reads the CSV and its RANSAC
fit registers the scene within a stated error."""

from __future__ import annotations

import numpy as np
import pytest

from saropt.cli import main

#: stated accuracy on the 384 px synthetic scene (seed 7), MI matcher, 96 px patches
MAX_MEDIAN_PX = 1.0
MAX_EXCESS_RMSE_PX = 0.5  # affine fit RMSE vs truth above the affine floor


@pytest.fixture(scope="module")
def auto_points(synth_scene_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("autotie") / "tp.csv"
    assert main(["data", "tiepoints", "--sar", str(synth_scene_dir / "sar.tif"), "--optical",
                 str(synth_scene_dir / "optical.tif"), "--out", str(out), "--patch", "96",
                 "--radius", "24", "--subregions", str(synth_scene_dir / "subregions.json"),
                 "--json"]) == 0
    return out


def test_tiepoints_fit_the_true_mapping(auto_points, synth_pair, capsys):
    from saropt.build.config import Registration
    from saropt.build.register import estimate, fit_subregion
    from saropt.build.tiepoints import read_tiepoints

    groups = read_tiepoints(auto_points)  # the builder's reader takes the extra column
    header = auto_points.read_text().splitlines()[0]
    assert header == "subregion,sar_x,sar_y,opt_x,opt_y,confidence"
    pts = np.concatenate(list(groups.values()))
    assert len(pts) >= 15
    err = np.hypot(*(pts[:, 2:4] - synth_pair.mapping.sar_to_opt(pts[:, :2])).T)
    assert np.median(err) < MAX_MEDIAN_PX, np.median(err)
    # the affine fit (the builder's RANSAC) vs the truth over the area the points cover, next to
    # the best an affine can do there (the truth has a non-linear term of up to 3 px)
    lo, hi = pts[:, :2].min(0), pts[:, :2].max(0)
    ys, xs = np.mgrid[lo[1]:hi[1]:8, lo[0]:hi[0]:8]
    xy = np.column_stack([xs.ravel(), ys.ravel()]).astype(float)
    true = synth_pair.mapping.sar_to_opt(xy)

    fit = fit_subregion("scene", pts, Registration(model="affine"))
    assert fit.ok, fit.reason
    rmse = np.sqrt(np.mean(np.sum((fit(xy) - true) ** 2, 1)))
    floor = np.sqrt(np.mean(np.sum((estimate("affine", xy, true)(xy) - true) ** 2, 1)))
    assert rmse < floor + MAX_EXCESS_RMSE_PX, (rmse, floor)
    conf = np.array([float(line.split(",")[-1])
                     for line in auto_points.read_text().splitlines()[1:]])
    assert (conf >= 0.005).all()  # MI's default minimum confidence


def test_tiepoints_cli_errors(synth_scene_dir, tmp_path, capsys):
    args = ["data", "tiepoints", "--sar", str(synth_scene_dir / "sar.tif"), "--optical",
            str(synth_scene_dir / "optical.tif"), "--out", str(tmp_path / "tp.csv")]
    assert main(args + ["--patch", "8"]) == 2
    assert main(args + ["--method", "bnn"]) == 2  # bnn needs --model
    assert main(["data", "tiepoints", "--sar", str(tmp_path / "none.tif"), "--optical",
                 str(synth_scene_dir / "optical.tif"), "--out", str(tmp_path / "x.csv")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert not (tmp_path / "tp.csv").exists()


def test_coarse_shift_finds_translation():
    import cv2

    from saropt.build.autotie import coarse_shift

    rng = np.random.default_rng(0)
    big = cv2.GaussianBlur(rng.uniform(0, 255, (700, 700)).astype(np.float32), (0, 0), 6)
    sar = big[50:562, 80:592]
    opt = big[20:540, 100:620]  # optical = SAR + (-20, 30)
    dx, dy = coarse_shift(sar, opt, side=256)
    assert abs(dx + 20) <= 3 and abs(dy - 30) <= 3  # within the reduction factor (3)


def test_georeferenced_prior(synth_scene_dir, synth_pair, tmp_path):
    """Both rasters georeferenced (the optical's geotransform from an affine fit of the truth):
    the prior comes from the georeference, and the tie points still fit the truth."""
    import rasterio
    from rasterio.transform import Affine

    from saropt.build.autotie import auto_tiepoints
    from saropt.build.register import estimate
    from saropt.build.tiepoints import read_tiepoints

    ys, xs = np.mgrid[0:384:32, 0:384:32]
    sxy = np.column_stack([xs.ravel(), ys.ravel()]).astype(float)
    m = estimate("affine", sxy, synth_pair.mapping.sar_to_opt(sxy)).params  # SAR px -> opt px
    sar_t = Affine(1.0, 0.0, 500000.0, 0.0, -1.0, 4100000.0)  # corner-based, 1 m pixels
    # georef: map = sar_t * (sar + 0.5), opt + 0.5 = ~opt_t * map; want opt = m @ sar
    inv = np.linalg.inv(m)
    opt_to_sar = (Affine.translation(0.5, 0.5) @ Affine(*inv[0], *inv[1])
                  @ Affine.translation(-0.5, -0.5))
    for name, transform in (("sar.tif", sar_t), ("optical.tif", sar_t @ opt_to_sar)):
        with rasterio.open(synth_scene_dir / name) as src:
            profile = src.profile | {"crs": "EPSG:32633", "transform": transform}
            with rasterio.open(tmp_path / name, "w", **profile) as dst:
                dst.write(src.read())
    res = auto_tiepoints(tmp_path / "sar.tif", tmp_path / "optical.tif", tmp_path / "tp.csv",
                         patch=96, radius=8, progress=False)
    assert res["prior"] == {"kind": "georeference"}
    pts = np.concatenate(list(read_tiepoints(tmp_path / "tp.csv").values()))
    err = np.hypot(*(pts[:, 2:4] - synth_pair.mapping.sar_to_opt(pts[:, :2])).T)
    assert len(pts) >= 15 and np.median(err) < MAX_MEDIAN_PX
