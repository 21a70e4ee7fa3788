"""SAR rendering (1 m, GaoFen-3-like spotlight) of the ground on the SAR grid.

Intensity model: per-class backscatter sigma0 with texture; buildings lean toward the sensor by
``h / tan(incidence)`` (layover), cast a radar shadow of ``h * tan(incidence)`` away from it and
show a bright double-bounce line at their near-range wall foot; ships carry strong point
scatterers whose unweighted sinc side-lobes form crosses along range and azimuth. Distributed
clutter gets multiplicative Gamma speckle with L looks; point targets a mild fluctuation.
"""

from __future__ import annotations

import cv2
import numpy as np

from saropt.synth.config import BARE, BUILDING, PIER, ROAD, SEA, SHIP, VEGETATION, WorldConfig
from saropt.synth.ground import FILL_SHIFT, Ground, fill_poly
from saropt.synth.noise import fractal_noise, smooth_noise

#: mean sigma0 (linear) per class
SIGMA0 = {SEA: 0.012, BARE: 0.05, VEGETATION: 0.11, ROAD: 0.006, BUILDING: 1e-5, PIER: 0.25,
          SHIP: 0.8}
CALM_SIGMA0 = 2e-6
SHADOW_SIGMA0 = 1e-5
MARGIN = 96  # ground margin rendered around the SAR grid (layover reaches in from outside)


def render_sar_intensity(rng: np.random.Generator, ground: Ground,
                         cfg: WorldConfig) -> np.ndarray:
    """Speckled intensity (float32, SAR grid) in sigma0 units."""
    h, w = ground.sar_shape
    m = min(MARGIN, ground.pad)
    o = ground.pad - m
    classes = ground.classes[o:o + h + 2 * m, o:o + w + 2 * m]
    shape = classes.shape
    flip = cfg.sensor_side == "right"
    sigma = _clutter(rng, classes, ground, o, shape)
    strong = np.zeros(shape, np.float32)
    _buildings(sigma, strong, ground, o, cfg, flip)
    _ships(rng, sigma, strong, ground, o)
    _piers(strong, ground, o, flip)
    looks = np.float32(cfg.looks)
    inten = sigma * rng.standard_gamma(looks, shape, dtype=np.float32) / looks
    strong = strong * rng.standard_gamma(8.0, shape, dtype=np.float32) / np.float32(8.0)
    inten += strong + _sidelobes(strong, cfg.sidelobe_length)
    inten = cv2.GaussianBlur(inten, (0, 0), 0.45)
    return inten[m:m + h, m:m + w]


def _clutter(rng: np.random.Generator, classes: np.ndarray, ground: Ground, o: int,
             shape: tuple[int, int]) -> np.ndarray:
    lut = np.array([SIGMA0[k] for k in range(7)], np.float32)
    sigma = lut[classes]
    side = float(min(shape))
    tex = fractal_noise(rng, shape, [side / 5, 80, 12], [1, 0.5, 0.4])
    fine = smooth_noise(rng, shape, 2.0)
    # sea: wind-roughness variations and swell along the wind direction
    wd = np.deg2rad(ground.wind_deg)
    xs = np.arange(shape[1], dtype=np.float32) * np.float32(np.cos(wd))
    ys = np.arange(shape[0], dtype=np.float32) * np.float32(np.sin(wd))
    swell = np.sin((xs[None, :] + ys[:, None]) * np.float32(2 * np.pi / 90.0))
    mod = np.exp(np.float32(0.45) * tex + np.float32(0.25) * swell)
    mod_land = np.exp(np.float32(0.5) * tex + np.float32(0.35) * fine)
    sea = classes == SEA
    sigma *= np.where(sea, mod, mod_land)
    for x0, y0, x1, y1 in ground.calm_rects:
        p = ground.pad - o
        sl = (slice(y0 + p, y1 + p), slice(x0 + p, x1 + p))
        sigma[sl] = np.where(sea[sl], np.float32(CALM_SIGMA0), sigma[sl])
    return sigma


def _shift_x(poly: np.ndarray, dx: float) -> np.ndarray:
    return poly + np.array([dx, 0.0])


def _buildings(sigma: np.ndarray, strong: np.ndarray, ground: Ground, o: int, cfg: WorldConfig,
               flip: bool) -> None:
    tan_i = np.tan(np.deg2rad(cfg.incidence_deg))
    toward = 1.0 if flip else -1.0  # x direction pointing to the sensor
    shadow = np.zeros(sigma.shape, np.uint8)
    wall = np.zeros(sigma.shape, np.float32)
    roof = np.zeros(sigma.shape, np.float32)
    dbl = np.zeros(sigma.shape, np.float32)
    for b in sorted(ground.buildings, key=lambda b: b.height):
        fp = b.poly - o
        lay = b.height / tan_i
        shd = b.height * tan_i
        fill_poly(shadow, _hull(fp, _shift_x(fp, -toward * shd)), 1)
        fill_poly(wall, _hull(fp, _shift_x(fp, toward * lay)), 0.18 + 0.004 * b.height)
        fill_poly(roof, _shift_x(fp, toward * lay), 0.06 + 0.1 * ((b.roof >> 5) % 4) / 3)
        _near_edges(dbl, fp, toward, 60.0)
    sigma[shadow > 0] = np.float32(SHADOW_SIGMA0)
    sigma += wall + roof
    strong += dbl


def _hull(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return cv2.convexHull(np.concatenate([a, b]).astype(np.float32))[:, 0].astype(np.float64)


def _near_edges(img: np.ndarray, poly: np.ndarray, toward: float, peak: float,
                thickness: int = 1) -> None:
    """Bright lines on the polygon edges that face the sensor, strongest when square to range."""
    c = poly.mean(0)
    for a, b in zip(poly, np.roll(poly, -1, 0)):
        d = b - a
        normal = np.array([d[1], -d[0]]) / (np.linalg.norm(d) + 1e-9)
        if np.dot(normal, (a + b) / 2 - c) < 0:
            normal = -normal
        facing = normal[0] * toward
        if facing <= 0.1:
            continue
        val = peak * facing ** 4
        p0 = tuple(np.round(a * (1 << FILL_SHIFT)).astype(int))
        p1 = tuple(np.round(b * (1 << FILL_SHIFT)).astype(int))
        cv2.line(img, p0, p1, float(val), thickness, shift=FILL_SHIFT)


def _ships(rng: np.random.Generator, sigma: np.ndarray, strong: np.ndarray, ground: Ground,
           o: int) -> None:
    h, w = strong.shape
    for s in ground.ships:
        poly = s.poly - o
        fill_poly(sigma, poly, float(rng.uniform(0.5, 2.5)))
        stern = (poly[0] + poly[4]) / 2
        fwd = (poly[2] - stern) / max(s.length, 1e-6)
        n_pts = int(np.clip(s.length / 8, 2, 40))
        pos = stern + fwd[None] * (rng.uniform(0.05, 0.95, n_pts) * s.length)[:, None]
        pos += rng.normal(0, s.width * 0.2, (n_pts, 2))
        vals = np.exp(rng.uniform(np.log(5), np.log(150), n_pts)) * (s.length / 60) ** 0.5
        vals[0] *= 3  # superstructure
        ij = np.round(pos).astype(int)
        ok = (ij[:, 0] >= 0) & (ij[:, 0] < w) & (ij[:, 1] >= 0) & (ij[:, 1] < h)
        np.add.at(strong, (ij[ok, 1], ij[ok, 0]), vals[ok].astype(np.float32))


def _piers(strong: np.ndarray, ground: Ground, o: int, flip: bool) -> None:
    for p in ground.piers:
        _near_edges(strong, p - o, 1.0 if flip else -1.0, 3.0)


def _sidelobes(strong: np.ndarray, length: int) -> np.ndarray:
    """Cross-shaped side-lobes of an unweighted sinc impulse response (range and azimuth)."""
    if length <= 0:
        return np.zeros_like(strong)
    k = np.arange(-length, length + 1, dtype=np.float64)
    kern = 0.5 * (np.sinc(k + 0.5) ** 2 + np.sinc(k - 0.5) ** 2)
    kern[length] = 0.0
    kern = kern.astype(np.float32)
    delta = np.zeros(1, np.float32) + 1
    src = np.where(strong > 3.0, strong, np.float32(0))
    rows = cv2.sepFilter2D(src, cv2.CV_32F, kern, delta, borderType=cv2.BORDER_CONSTANT)
    cols = cv2.sepFilter2D(src, cv2.CV_32F, delta, kern, borderType=cv2.BORDER_CONSTANT)
    return rows + cols


def to_amplitude_uint16(intensity: np.ndarray, cfg: WorldConfig) -> np.ndarray:
    """Amplitude DN = sqrt(intensity) * amplitude_scale, rounded and clipped to uint16."""
    amp = np.sqrt(intensity) * np.float32(cfg.amplitude_scale)
    return np.clip(np.rint(amp), 0, 65535).astype(np.uint16)


def amplitude_to_uint8(amp: np.ndarray, percentiles: tuple[float, float] = (1.0, 99.8),
                       dynamic_range_db: float = 36.0) -> np.ndarray:
    """dB scaling: ``db = 20 log10(max(amp, 1))``, clipped to ``[lo, hi]`` and stretched to 0..255.

    ``hi`` is the upper percentile of ``db``; ``lo`` is the lower percentile but at least
    ``hi - dynamic_range_db``, so large black areas (calm sea, shadow) cannot stretch the noise.
    Percentiles are taken on a regular subsample of at most ~1M pixels.
    """
    step = max(1, int(np.sqrt(amp.size / 1e6)))
    db = np.float32(20.0) * np.log10(np.maximum(amp, 1).astype(np.float32))
    sub = db[::step, ::step]
    lo, hi = np.percentile(sub, percentiles)
    lo = max(float(lo), float(hi) - dynamic_range_db)
    hi = max(float(hi), lo + 1e-3)
    scaled = (db - np.float32(lo)) * np.float32(255.0 / (hi - lo))
    return np.clip(np.rint(scaled), 0, 255).astype(np.uint8)
