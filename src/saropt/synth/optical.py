"""Optical rendering: a Google-Earth-like RGB view of the ground, with sun shadows."""

from __future__ import annotations

import cv2
import numpy as np

from saropt.synth.config import BARE, BUILDING, PIER, ROAD, SEA, SHIP, VEGETATION, WorldConfig
from saropt.synth.ground import FILL_SHIFT, Ground, fill_poly, rect_poly, wake_mask

ROOF_PALETTE = np.array([[150, 148, 142], [180, 178, 170], [120, 118, 115], [160, 95, 75],
                         [135, 80, 65], [200, 200, 195], [95, 110, 125], [170, 160, 130],
                         [110, 125, 110], [210, 205, 190]], np.float32)
HULL_PALETTE = np.array([[200, 200, 198], [60, 62, 70], [140, 45, 40], [40, 70, 120],
                         [225, 225, 220], [90, 95, 85], [170, 120, 60]], np.float32)
CONTAINER_PALETTE = np.array([[170, 50, 40], [40, 80, 150], [210, 120, 40], [60, 120, 70],
                              [200, 200, 195], [120, 120, 125], [150, 40, 90], [90, 60, 40]],
                             np.float32)
CAR_PALETTE = np.array([[230, 230, 228], [30, 30, 32], [130, 130, 135], [170, 40, 35],
                        [40, 60, 130], [200, 200, 205], [90, 90, 95]], np.float32)
_BASE = {SEA: (24, 56, 72), BARE: (150, 138, 115), VEGETATION: (62, 86, 50), ROAD: (108, 108, 104),
         BUILDING: (150, 148, 142), PIER: (168, 163, 152), SHIP: (200, 200, 198)}


#: texture amplitude per class (grey levels per unit-std field) ...
_WEIGHTS = {"low": {SEA: 6, BARE: 20, VEGETATION: 12, ROAD: 5, PIER: 6},
            "mid": {SEA: 2.5, BARE: 3, VEGETATION: 15, ROAD: 1, PIER: 2},
            "fine": {BARE: 5, VEGETATION: 6, ROAD: 3, PIER: 4},
            "block": {BARE: 22, VEGETATION: 10}}
#: ... and the colour direction it varies along
_TINT = {SEA: (0.9, 1.0, 0.55), BARE: (1.0, 0.85, 0.65), VEGETATION: (0.6, 1.0, 0.55),
         ROAD: (1, 1, 1), BUILDING: (1, 1, 1), PIER: (1, 1, 1), SHIP: (1, 1, 1)}
SHALLOW_GAIN = 38.0  # grey levels added to the sea at the shore, decaying over 40 m


def _lut256(table: dict[int, float]) -> np.ndarray:
    lut = np.zeros(256, np.float32)
    for k, v in table.items():
        lut[k] = v
    return lut


def render_optical(ground: Ground, cfg: WorldConfig) -> np.ndarray:
    """uint8 (Hp, Wp, 3) RGB on the padded ground grid (1 m per px).

    Class colours times the shared textures, roofs, cars, ships, wakes, and sun shadows of
    buildings and ships cast away from ``cfg.sun_azimuth_deg`` with length height /
    tan(``cfg.sun_elevation_deg``) (degrees); a slight Gaussian blur (sigma 0.6 px).
    """
    classes = ground.classes
    tex = _texture(ground)
    channels = []
    for c in range(3):
        ch = cv2.LUT(classes, _lut256({k: v[c] for k, v in _TINT.items()}))
        ch *= tex
        ch += cv2.LUT(classes, _lut256({k: v[c] for k, v in _BASE.items()}))
        channels.append(np.clip(ch, 0, 255).astype(np.uint8))
    img = cv2.merge(channels)
    _wakes(img, ground)
    _roofs(img, ground, cfg.sun_azimuth_deg)
    _cars(img, ground)
    _ships(img, ground)
    _shadows(img, ground, cfg)
    return cv2.GaussianBlur(img, (0, 0), 0.6)


def _texture(ground: Ground) -> np.ndarray:
    """Scalar texture per pixel: class-weighted shared fields; shallows; no ripple on calm sea."""
    classes = ground.classes
    fields = ground.textures
    tex = np.zeros(classes.shape, np.float32)
    for name, weights in _WEIGHTS.items():
        tex += cv2.LUT(classes, _lut256(weights)) * fields[name]
    sea = classes == SEA
    dist = cv2.distanceTransform(sea.astype(np.uint8), cv2.DIST_L2, 3)
    shade = np.exp(dist * np.float32(-1 / 40.0))
    tex += shade * (sea * np.float32(SHALLOW_GAIN))
    p = ground.pad
    for x0, y0, x1, y1 in ground.calm_rects:
        r = (slice(y0 + p, y1 + p), slice(x0 + p, x1 + p))
        calm = fields["low"][r] * np.float32(_WEIGHTS["low"][SEA]) + shade[r] * SHALLOW_GAIN
        tex[r] = np.where(sea[r], calm, tex[r])
    return tex


def _calm_mask(ground: Ground, shape: tuple[int, int]) -> np.ndarray:
    m = np.zeros(shape, bool)
    p = ground.pad
    for x0, y0, x1, y1 in ground.calm_rects:
        m[y0 + p:y1 + p, x0 + p:x1 + p] = True
    return m & (ground.classes == SEA)


def _roofs(img: np.ndarray, ground: Ground, sun_azimuth_deg: float) -> None:
    """Flat roofs with an outline and fixtures, or pitched roofs (sunlit and shaded halves)."""
    az = np.deg2rad(sun_azimuth_deg)
    to_sun = np.array([np.sin(az), -np.cos(az)])
    for b in ground.buildings:
        colour = ROOF_PALETTE[b.roof % len(ROOF_PALETTE)] * (0.85 + 0.3 * ((b.roof >> 4) % 8) / 8)
        p = b.poly
        if b.kind == "container":
            fill_poly(img, p, tuple(float(c) for c in
                                    CONTAINER_PALETTE[b.roof % len(CONTAINER_PALETTE)]))
            continue
        if b.kind == "tank":
            fill_poly(img, p, (205.0, 205.0, 200.0))
            pts = np.round(p * (1 << FILL_SHIFT)).astype(np.int32)
            cv2.polylines(img, [pts], True, (120.0, 120.0, 118.0), 2, shift=FILL_SHIFT)
            c = p.mean(0)
            fill_poly(img, c + (p - c) * 0.8, (185.0, 186.0, 182.0))  # floating lid
            continue
        if b.kind == "house" and (b.roof >> 10) % 2 and b.height < 20:  # pitched roof
            if np.linalg.norm(p[1] - p[0]) < np.linalg.norm(p[3] - p[0]):
                p = np.roll(p, 1, axis=0)
            m0, m1 = (p[0] + p[3]) / 2, (p[1] + p[2]) / 2
            half_a, half_b = np.array([p[0], p[1], m1, m0]), np.array([m0, m1, p[2], p[3]])
            lit_a = np.dot(half_a.mean(0) - half_b.mean(0), to_sun) > 0
            for half, lit in ((half_a, lit_a), (half_b, not lit_a)):
                fill_poly(img, half, tuple(float(c) * (1.12 if lit else 0.72) for c in colour))
            continue
        fill_poly(img, p, tuple(float(c) for c in colour))
        pts = np.round(p * (1 << FILL_SHIFT)).astype(np.int32)
        cv2.polylines(img, [pts], True, tuple(float(c) * 0.7 for c in colour), 1,
                      shift=FILL_SHIFT)
        if (b.roof >> 8) % 3 == 0:  # roof fixtures
            c = p.mean(0)
            fill_poly(img, c + (p - c) * 0.35, tuple(float(v) * 1.15 for v in colour))


def _wakes(img: np.ndarray, ground: Ground) -> None:
    """White foam behind moving ships, on the sea only."""
    foam = np.array([225, 232, 235], np.float32)
    for s in ground.ships:
        got = wake_mask(s, ground.classes.shape)
        if got is None:
            continue
        sl, m = got
        a = (m * np.float32(0.45) * (ground.classes[sl] == SEA))[..., None]
        img[sl] = (img[sl] * (1 - a) + foam * a).astype(np.uint8)


def _cars(img: np.ndarray, ground: Ground) -> None:
    for i, car in enumerate(ground.cars):
        fill_poly(img, car, tuple(float(v) for v in CAR_PALETTE[(i * 7919) % len(CAR_PALETTE)]))


def _ships(img: np.ndarray, ground: Ground) -> None:
    for s in ground.ships:
        colour = HULL_PALETTE[s.paint % len(HULL_PALETTE)]
        fill_poly(img, s.poly, tuple(float(c) for c in colour))
        stern = (s.poly[0] + s.poly[4]) / 2
        bow = s.poly[2]
        fwd = (bow - stern) / max(s.length, 1e-6)
        if s.length > 25:  # white superstructure near the stern
            c = stern + fwd * s.length * 0.15
            fill_poly(img, rect_poly(c, fwd, s.length * 0.12, s.width * 0.75), (235, 235, 232))
            if s.length > 90 and (s.paint >> 3) % 2:  # deck cargo
                rng = np.random.default_rng(s.paint)
                for k in range(int(s.length // 25)):
                    cc = stern + fwd * s.length * (0.3 + 0.6 * (k + 0.5) / (s.length // 25))
                    col = tuple(float(v) for v in rng.uniform(60, 200, 3))
                    fill_poly(img, rect_poly(cc, fwd, 18, s.width * 0.8), col)


def _shadows(img: np.ndarray, ground: Ground, cfg: WorldConfig) -> None:
    az = np.deg2rad(cfg.sun_azimuth_deg)
    away = np.array([-np.sin(az), np.cos(az)])  # shadow direction in image coordinates
    k = 1.0 / np.tan(np.deg2rad(cfg.sun_elevation_deg))
    caster = np.zeros(ground.classes.shape, np.float32)
    objs = [(b.poly, b.height) for b in ground.buildings] + [(s.poly, s.height * 0.5)
                                                            for s in ground.ships]
    for poly, hgt in sorted(objs, key=lambda o: o[1]):
        moved = poly + away * hgt * k
        hull = cv2.convexHull(np.concatenate([poly, moved]).astype(np.float32))[:, 0]
        fill_poly(caster, hull, float(hgt))
    shade = caster > ground.heights + 0.5
    img[shade] = (img[shade] * np.array([0.42, 0.46, 0.56], np.float32)).astype(np.uint8)
