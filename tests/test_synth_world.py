"""The synthetic world: determinism, exact geometric truth, tie points, rendering sanity."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from saropt.synth import SceneMapping, WorldConfig, make_scene_pair, warp_opt_to_sar
from saropt.synth.config import BUILDING, SEA, SHIP


def test_same_seed_same_bytes_different_seed_differs():
    a, b, c = make_scene_pair(160, 11), make_scene_pair(160, 11), make_scene_pair(160, 12)
    for name in ("sar_amp", "sar8", "optical", "optical_on_sar", "classes", "heights"):
        assert getattr(a, name).tobytes() == getattr(b, name).tobytes(), name
    assert a.tie_points.tobytes() == b.tie_points.tobytes()
    assert json.dumps(a.truth()) == json.dumps(b.truth())
    assert a.sar_amp.tobytes() != c.sar_amp.tobytes()
    assert a.optical.tobytes() != c.optical.tobytes()


def test_dtypes_and_shapes(synth_pair):
    p = synth_pair
    h, w = p.shape
    assert p.sar_amp.dtype == np.uint16 and p.sar_amp.shape == (h, w)
    assert p.sar8.dtype == np.uint8 and p.classes.dtype == np.uint8
    assert p.heights.dtype == np.float32
    assert p.optical.dtype == np.uint8 and p.optical.ndim == 3 and p.optical.shape[2] == 3
    assert p.optical_on_sar.shape == (h, w, 3)
    assert set(np.unique(p.classes)) <= set(range(7))
    assert (p.classes == SEA).any() and (p.classes != SEA).any()


def test_mapping_inverse_and_roundtrip(synth_pair):
    m = synth_pair.mapping
    rng = np.random.default_rng(0)
    pts = rng.uniform(0, 384, (500, 2))
    assert np.abs(m.opt_to_sar(m.sar_to_opt(pts)) - pts).max() < 1e-8
    m2 = SceneMapping.from_dict(json.loads(json.dumps(m.to_dict())))
    assert np.allclose(m2.sar_to_opt(pts), m.sar_to_opt(pts))
    with pytest.raises(ValueError):
        m.opt_to_sar(np.zeros(3))


def test_mapping_is_not_affine(synth_pair):
    """The non-linear term is there: an affine fit leaves a residual of about a pixel or more."""
    m = synth_pair.mapping
    g = np.stack(np.meshgrid(np.linspace(0, 383, 20), np.linspace(0, 383, 20)), -1).reshape(-1, 2)
    opt = m.sar_to_opt(g)
    design = np.hstack([g, np.ones((len(g), 1))])
    coef, *_ = np.linalg.lstsq(design, opt, rcond=None)
    assert np.abs(design @ coef - opt).max() > 0.3


def _boundary_band(classes: np.ndarray, radius: int = 1) -> np.ndarray:
    """Pixels within ``radius`` px of a class change."""
    k = np.ones((2 * radius + 1, 2 * radius + 1), np.uint8)
    return cv2.dilate(classes, k) != cv2.erode(classes, k)


def test_optical_grid_class_map_warps_onto_sar_within_1px(synth_pair):
    """Class maps agree after warping the optical grid onto the SAR grid with the true mapping:
    every disagreeing pixel lies within 1 px of a land/sea or building boundary."""
    p = synth_pair
    warped = warp_opt_to_sar(p.classes_opt, p.mapping, p.shape, nearest=True)
    bad = warped != p.classes
    assert bad.mean() < 0.02
    assert not (bad & ~_boundary_band(p.classes, 1)).any()
    for code in (SEA, BUILDING):
        a, b = warped == code, p.classes == code
        assert (a ^ b).sum() <= 0.05 * max(1, b.sum()), code


def test_optical_image_warps_onto_optical_on_sar(synth_pair):
    """The optical image itself (not only its class map) lines up with the SAR-grid rendering."""
    p = synth_pair
    warped = warp_opt_to_sar(p.optical, p.mapping, p.shape).astype(np.float32)
    ref = p.optical_on_sar.astype(np.float32)
    inner = (slice(4, -4), slice(4, -4))
    corr = np.corrcoef(warped[inner].ravel(), ref[inner].ravel())[0, 1]
    assert corr > 0.95
    shifted = np.roll(ref, 3, axis=1)
    assert corr > np.corrcoef(warped[inner].ravel(), shifted[inner].ravel())[0, 1] + 0.02


def test_tie_points_inliers_near_truth_outliers_far(synth_pair):
    p = synth_pair
    cfg = WorldConfig()
    t = p.tie_points
    sar = np.stack([t["sar_x"], t["sar_y"]], 1)
    opt = np.stack([t["opt_x"], t["opt_y"]], 1)
    err = np.linalg.norm(p.mapping.sar_to_opt(sar) - opt, axis=1)
    inl = ~t["is_outlier"]
    assert t["is_outlier"].sum() >= 1
    assert err[inl].max() < 6 * cfg.tie_noise_px
    assert 0.3 < np.sqrt((err[inl] ** 2).mean() / 2) / cfg.tie_noise_px < 2.0
    assert err[~inl].min() > cfg.tie_outlier_offset_px[0] / 2
    for name, sub in p.subregions.items():
        x0, y0, x1, y1 = sub["rect"]
        mine = t[t["subregion"] == name]
        assert len(mine) >= 3
        assert ((mine["sar_x"] >= x0) & (mine["sar_x"] < x1) & (mine["sar_y"] >= y0)
                & (mine["sar_y"] < y1)).all()


def test_ship_boxes_cover_ship_pixels(synth_pair):
    p = synth_pair
    assert p.ships, "the fixture scene should hold ships"
    cover = np.zeros(p.shape, bool)
    for s in p.ships:
        x0, y0, x1, y1 = s["sar_box"]
        assert 0 <= x0 < x1 <= p.shape[1] and 0 <= y0 < y1 <= p.shape[0]
        cover[int(np.floor(y0)):int(np.ceil(y1)), int(np.floor(x0)):int(np.ceil(x1))] = True
        ox0, oy0, ox1, oy1 = s["opt_box"]
        assert 0 <= ox0 < ox1 <= p.optical.shape[1] and 0 <= oy0 < oy1 <= p.optical.shape[0]
        assert 10 <= s["length_m"] <= 300
    assert cover[p.classes == SHIP].all()


def test_sar_looks_like_sar(synth_pair):
    """Ships far brighter than sea; sea darker than land; speckle on homogeneous areas."""
    p = synth_pair
    amp = p.sar_amp.astype(np.float64)
    calm = np.zeros(p.shape, bool)
    for x0, y0, x1, y1 in p.calm_sea:
        calm[y0:y1, x0:x1] = True
    sea = (p.classes == SEA) & ~calm & ~_boundary_band(p.classes, 3)
    land = np.isin(p.classes, [1, 2]) & ~_boundary_band(p.classes, 3)
    ship = p.classes == SHIP
    assert np.median(amp[ship]) > 5 * np.median(amp[sea])
    assert np.median(amp[land]) > 1.5 * np.median(amp[sea])
    cv = amp[sea].std() / amp[sea].mean()
    assert cv > 0.3  # speckle, not a flat field
    if calm.any():
        assert p.sar8[calm & (p.classes == SEA)].std() < 2.0


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 10_000), strength=st.floats(0.0, 3.0), h=st.integers(64, 5000),
       w=st.integers(64, 5000))
def test_random_mapping_inverts_and_covers_the_sar_scene(seed, strength, h, w):
    from saropt.synth.geometry import random_mapping

    m, (ho, wo) = random_mapping(np.random.default_rng(seed), (h, w), strength, 4.0, 0.04, 0.02,
                                 3.0)
    corners = np.array([[0, 0], [w - 1, 0], [0, h - 1], [w - 1, h - 1]], float)
    opt = m.sar_to_opt(corners)
    assert np.abs(m.opt_to_sar(opt) - corners).max() < 1e-7
    assert (opt >= 0).all() and (opt[:, 0] <= wo - 1).all() and (opt[:, 1] <= ho - 1).all()


@settings(max_examples=30, deadline=None)
@given(st.lists(st.integers(0, 65535), min_size=10, max_size=200))
def test_db_scaling_is_monotonic(values):
    from saropt.synth.sar import amplitude_to_uint8

    amp = np.array(values, np.uint16).reshape(1, -1)
    out = amplitude_to_uint8(amp)
    order = np.argsort(amp[0], kind="stable")
    assert (np.diff(out[0][order].astype(int)) >= 0).all()


def test_patch_origins_use_the_qxs_stride():
    from saropt.synth.writers import patch_origins, qxs_dir_names

    assert qxs_dir_names(256, 0.2) == ("opt_256_oc_0.2", "sar_256_oc_0.2")
    origins = patch_origins((1000, 700), 256, 0.2)
    xs, ys = sorted({x for x, _ in origins}), sorted({y for _, y in origins})
    assert xs == [0, 205, 410] and ys == [0, 205, 410, 615]


@pytest.mark.parametrize("side", ["left", "right"])
def test_layover_toward_the_sensor_shadow_away(side):
    """Beside building footprints the SAR is bright on the sensor side (layover, double bounce)
    and dark on the far side (radar shadow)."""
    cfg = WorldConfig(sensor_side=side, land_fraction=0.9, urban_fraction=0.9, harbour=False,
                      calm_sea_patches=0)
    p = make_scene_pair(256, 5, cfg)
    b = (p.classes == BUILDING).astype(np.uint8)
    amp = p.sar_amp.astype(np.float64)

    def band(dx: int) -> np.ndarray:
        """Pixels just outside the footprints, ``dx`` columns from them."""
        return np.roll(b, dx, axis=1).astype(bool) & (b == 0)

    left, right = band(-2), band(2)
    near, far = (left, right) if side == "left" else (right, left)
    assert b.sum() > 500
    assert np.median(amp[near]) > 3 * np.median(amp[far])
