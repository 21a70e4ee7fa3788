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
from saropt.synth.ground import FILL_SHIFT, Ground, fill_poly, wake_mask

#: mean sigma0 (linear) per class
SIGMA0 = {SEA: 0.006, BARE: 0.05, VEGETATION: 0.14, ROAD: 0.004, BUILDING: 1e-5, PIER: 0.25,
          SHIP: 0.8}
CALM_SIGMA0 = 1e-6
SHADOW_SIGMA0 = 1e-5
MARGIN = 96  # ground margin rendered around the SAR grid (layover reaches in from outside)


def render_sar_intensity(rng: np.random.Generator, ground: Ground,
                         cfg: WorldConfig) -> np.ndarray:
    """Speckled intensity (float32 ``sar_shape``, SAR grid) in linear sigma0 units.

    Gamma speckle with ``cfg.looks`` looks; ``cfg.incidence_deg`` (degrees) sets layover and
    shadow lengths, ``cfg.sensor_side`` the direction of range.
    """
    h, w = ground.sar_shape
    m = min(MARGIN, ground.pad)
    o = ground.pad - m
    classes = ground.classes[o:o + h + 2 * m, o:o + w + 2 * m]
    shape = classes.shape
    flip = cfg.sensor_side == "right"
    sigma = _clutter(classes, ground, o, shape)
    strong = np.zeros(shape, np.float32)  # deterministic scatterers: double bounce, edges
    points = np.zeros(shape, np.float32)  # ship scatterers, the only ones with visible side-lobes
    _buildings(sigma, strong, ground, o, cfg, flip)
    point_yx = _ships(rng, sigma, points, ground, o)
    _piers(strong, ground, o, flip)
    _cars(rng, strong, ground, o)
    _wakes(sigma, ground, o, classes)
    _sea_spikes(rng, sigma, classes)
    looks = np.float32(cfg.looks)
    inten = sigma * rng.standard_gamma(looks, shape, dtype=np.float32) / looks
    strong += points
    flat = strong.reshape(-1)
    hot = np.flatnonzero(flat)
    flat[hot] *= rng.standard_gamma(8.0, len(hot), dtype=np.float32) / np.float32(8.0)
    inten += strong
    inten += _sidelobes(strong, point_yx, cfg.sidelobe_length)
    inten = cv2.GaussianBlur(inten, (0, 0), 0.45)
    return inten[m:m + h, m:m + w]


#: log-texture weights per class: sigma0 *= exp(low * a + mid * b + fine * c + block * d)
_TEX = {SEA: (0.45, 0.15, 0.0, 0.0), BARE: (0.5, 0.1, 0.25, 0.6),
        VEGETATION: (0.35, 0.5, 0.2, 0.35), ROAD: (0.3, 0.0, 0.1, 0.0),
        BUILDING: (0.0, 0.0, 0.0, 0.0), PIER: (0.2, 0.0, 0.2, 0.0), SHIP: (0.0, 0.0, 0.3, 0.0)}


def _clutter(classes: np.ndarray, ground: Ground, o: int,
             shape: tuple[int, int]) -> np.ndarray:
    """Mean sigma0 per pixel: class level times textures shared with the optical rendering.

    The sea adds swell along the wind; calm patches drop to the noise floor.
    """
    sl = (slice(o, o + shape[0]), slice(o, o + shape[1]))
    tex = np.array([_TEX[k] for k in range(7)], np.float32)
    expo = tex[classes, 0] * ground.textures["low"][sl]
    expo += tex[classes, 1] * ground.textures["mid"][sl]
    expo += tex[classes, 2] * ground.textures["fine"][sl]
    expo += tex[classes, 3] * ground.textures["block"][sl]
    sea = classes == SEA
    wd = np.deg2rad(ground.wind_deg)
    k = np.float32(2 * np.pi / 90.0)
    xs = np.arange(shape[1], dtype=np.float32) * np.float32(np.cos(wd)) * k
    ys = np.arange(shape[0], dtype=np.float32) * np.float32(np.sin(wd)) * k
    # sin(a + b) separably: swell crests perpendicular to the wind, 90 m apart
    swell = np.sin(ys)[:, None] * np.cos(xs)[None, :] + np.cos(ys)[:, None] * np.sin(xs)[None, :]
    expo += np.float32(0.15) * swell * sea
    lut = np.array([SIGMA0[k] for k in range(7)], np.float32)
    sigma = lut[classes] * np.exp(expo)
    p = ground.pad - o
    for x0, y0, x1, y1 in ground.calm_rects:
        r = (slice(y0 + p, y1 + p), slice(x0 + p, x1 + p))
        sigma[r] = np.where(sea[r], np.float32(CALM_SIGMA0), sigma[r])
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
        wall_val = 0.3 + 0.01 * b.height
        for a, c, facing in _facing_edges(fp, toward):
            quad = np.array([a, c, c + [toward * lay, 0.0], a + [toward * lay, 0.0]])
            fill_poly(wall, quad, wall_val * (0.4 + 0.6 * facing))
            _line(dbl, a, c, 60.0 * facing ** 4)
        fill_poly(roof, _shift_x(fp, toward * lay), 0.03 + 0.08 * ((b.roof >> 5) % 4) / 3)
        _roof_points(dbl, _shift_x(fp, toward * lay), b.roof)
    sigma[shadow > 0] = np.float32(SHADOW_SIGMA0)
    sigma += wall + roof
    strong += dbl


def _roof_points(img: np.ndarray, roof: np.ndarray, code: int) -> None:
    """0-3 bright roof fixtures (air conditioners, railings), placed from the roof's code."""
    rng = np.random.default_rng(code)
    h, w = img.shape
    for _ in range(code % 4):
        a, b = rng.uniform(0.15, 0.85, 2)
        p = roof[0] + (roof[1] - roof[0]) * a + (roof[3] - roof[0]) * b
        x, y = int(round(p[0])), int(round(p[1]))
        if 0 <= x < w and 0 <= y < h:
            img[y, x] += np.float32(rng.uniform(2, 25))


def _facing_edges(poly: np.ndarray, toward: float) -> list[tuple[np.ndarray, np.ndarray, float]]:
    """Edges of a convex polygon whose outward normal points to the sensor, with the cosine."""
    c = poly.mean(0)
    out = []
    for a, b in zip(poly, np.roll(poly, -1, 0)):
        d = b - a
        normal = np.array([d[1], -d[0]]) / (np.linalg.norm(d) + 1e-9)
        if np.dot(normal, (a + b) / 2 - c) < 0:
            normal = -normal
        facing = float(normal[0] * toward)
        if facing > 0.05:
            out.append((a, b, facing))
    return out


def _line(img: np.ndarray, a: np.ndarray, b: np.ndarray, value: float, thickness: int = 1) -> None:
    p0 = tuple(int(v) for v in np.round(a * (1 << FILL_SHIFT)))
    p1 = tuple(int(v) for v in np.round(b * (1 << FILL_SHIFT)))
    cv2.line(img, p0, p1, float(value), thickness, shift=FILL_SHIFT)


def _hull(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return cv2.convexHull(np.concatenate([a, b]).astype(np.float32))[:, 0].astype(np.float64)


def _near_edges(img: np.ndarray, poly: np.ndarray, toward: float, peak: float) -> None:
    """Bright lines on the polygon edges that face the sensor, strongest when square to range."""
    for a, b, facing in _facing_edges(poly, toward):
        _line(img, a, b, peak * facing ** 4)


def _ships(rng: np.random.Generator, sigma: np.ndarray, strong: np.ndarray, ground: Ground,
           o: int) -> tuple[np.ndarray, np.ndarray]:
    """Ship hulls into ``sigma``, their point scatterers into ``strong``.

    Returns the points' (rows, columns), without duplicates.
    """
    h, w = strong.shape
    all_ij = [np.zeros((0, 2), int)]
    for s in ground.ships:
        poly = s.poly - o
        # small boats (wood, fibreglass) are often weak scatterers
        weak = rng.uniform(0.1, 1.0) if s.length < 30 else 1.0
        fill_poly(sigma, poly, float(rng.uniform(0.5, 2.5) * weak))
        stern = (poly[0] + poly[4]) / 2
        fwd = (poly[2] - stern) / max(s.length, 1e-6)
        n_pts = int(np.clip(s.length / 8, 2, 40))
        side = np.array([-fwd[1], fwd[0]])
        pos = stern + fwd[None] * (rng.uniform(0.05, 0.8, n_pts) * s.length)[:, None]
        pos += side[None] * np.clip(rng.normal(0, s.width * 0.2, n_pts), -0.3 * s.width,
                                    0.3 * s.width)[:, None]  # on the hull
        vals = np.exp(rng.uniform(np.log(5), np.log(150), n_pts)) * (s.length / 60) ** 0.5 * weak
        vals[0] *= 3  # superstructure
        ij = np.round(pos).astype(int)
        ok = (ij[:, 0] >= 0) & (ij[:, 0] < w) & (ij[:, 1] >= 0) & (ij[:, 1] < h)
        np.add.at(strong, (ij[ok, 1], ij[ok, 0]), vals[ok].astype(np.float32))
        all_ij.append(ij[ok])
    ij = np.unique(np.concatenate(all_ij), axis=0)
    return ij[:, 1], ij[:, 0]


def _cars(rng: np.random.Generator, strong: np.ndarray, ground: Ground, o: int) -> None:
    """Cars: moderately bright points (metal, dihedral with the road)."""
    if not ground.cars:
        return
    c = np.round(np.array([car.mean(0) for car in ground.cars]) - o).astype(int)
    h, w = strong.shape
    ok = (c[:, 0] >= 0) & (c[:, 0] < w) & (c[:, 1] >= 0) & (c[:, 1] < h)
    vals = rng.uniform(0.5, 6.0, int(ok.sum())).astype(np.float32)
    np.add.at(strong, (c[ok, 1], c[ok, 0]), vals)


def _wakes(sigma: np.ndarray, ground: Ground, o: int, classes: np.ndarray) -> None:
    """The turbulent wake of a moving ship damps the capillary waves: a dark trail."""
    for s in ground.ships:
        got = wake_mask(s, sigma.shape, o)
        if got is None:
            continue
        sl, m = got
        sigma[sl] *= 1 - np.float32(0.75) * m * (classes[sl] == SEA)


def _sea_spikes(rng: np.random.Generator, sigma: np.ndarray, classes: np.ndarray) -> None:
    """Breaking waves and small floating objects: rare bright sea pixels (false-alarm bait)."""
    h, w = classes.shape
    n = rng.poisson(h * w / 4000)
    ys, xs = rng.integers(0, h, n), rng.integers(0, w, n)
    sea = (classes[ys, xs] == SEA) & (sigma[ys, xs] > CALM_SIGMA0)
    sigma[ys[sea], xs[sea]] += rng.uniform(0.05, 1.5, int(sea.sum())).astype(np.float32)


def _piers(strong: np.ndarray, ground: Ground, o: int, flip: bool) -> None:
    for p in ground.piers:
        _near_edges(strong, p - o, 1.0 if flip else -1.0, 3.0)


def _sidelobes(strong: np.ndarray, point_yx: tuple[np.ndarray, np.ndarray],
               length: int) -> np.ndarray:
    """Cross-shaped side-lobes of an unweighted sinc impulse response (range and azimuth).

    Around the point scatterers at ``point_yx``, with the point's fluctuated intensity;
    ``length`` px each way.
    """
    out = np.zeros_like(strong)
    ys, xs = point_yx
    if length <= 0 or len(ys) == 0:
        return out
    k = np.arange(-length, length + 1)
    kern = (0.5 * (np.sinc(k + 0.5) ** 2 + np.sinc(k - 0.5) ** 2)).astype(np.float32)
    kern[length] = 0.0
    val = strong[ys, xs][:, None] * kern[None, :]
    h, w = strong.shape
    for axis_len, fixed, moving, along_x in ((w, ys, xs, True), (h, xs, ys, False)):
        pos = moving[:, None] + k[None, :]
        ok = (pos >= 0) & (pos < axis_len)
        fix = np.broadcast_to(fixed[:, None], pos.shape)
        idx = (fix[ok], pos[ok]) if along_x else (pos[ok], fix[ok])
        np.add.at(out, idx, val[ok])
    return out


def to_amplitude_uint16(intensity: np.ndarray, cfg: WorldConfig) -> np.ndarray:
    """Amplitude DN = sqrt(intensity) * amplitude_scale, rounded and clipped to uint16.

    ``intensity`` in linear sigma0; the output has its shape.
    """
    amp = np.sqrt(intensity) * np.float32(cfg.amplitude_scale)
    return np.clip(np.rint(amp), 0, 65535).astype(np.uint16)


def amplitude_to_uint8(amp: np.ndarray, percentiles: tuple[float, float] = (1.0, 99.5),
                       dynamic_range_db: float = 45.0, noise_floor_dn: float = 8.0) -> np.ndarray:
    """Scale amplitude DN to uint8 in dB: ``20 log10(max(amp, 1))`` clipped to ``[lo, hi]``.

    The clipped dB values are stretched linearly to 0..255; the output has ``amp``'s shape.

    ``lo`` and ``hi`` are percentiles of ``db`` over the pixels above the noise floor
    (``amp >= noise_floor_dn``: radar shadow and calm sea carry no signal and would drag the
    lower clip down), with ``lo >= hi - dynamic_range_db``. Percentiles come from a regular
    subsample of at most ~1M pixels.
    """
    step = max(1, int(np.sqrt(amp.size / 1e6)))
    db = np.float32(20.0) * np.log10(np.maximum(amp, 1).astype(np.float32))
    sub = amp[::step, ::step]
    valid = db[::step, ::step][sub >= noise_floor_dn]
    if valid.size < 16:
        valid = db[::step, ::step].ravel()
    lo, hi = np.percentile(valid, percentiles)
    lo = max(float(lo), float(hi) - dynamic_range_db)
    hi = max(float(hi), lo + 1e-3)
    scaled = (db - np.float32(lo)) * np.float32(255.0 / (hi - lo))
    return np.clip(np.rint(scaled), 0, 255).astype(np.uint8)
