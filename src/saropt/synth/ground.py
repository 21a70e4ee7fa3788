"""The scene model: what is on the ground, on a padded SAR-aligned grid at 1 m per pixel.

The ground is generated on the SAR grid plus a margin ``pad`` on every side, so the optical image,
which covers a slightly rotated and larger footprint, sees real ground everywhere. Polygons are in
padded-grid pixel coordinates (x = column, pixel centres at integers).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

from saropt.synth.config import BARE, BUILDING, PIER, ROAD, SEA, SHIP, VEGETATION, WorldConfig
from saropt.synth.noise import fractal_noise, smooth_noise

FILL_SHIFT = 4  # cv2 sub-pixel bits for polygon drawing
_SCALE = float(1 << FILL_SHIFT)


@dataclass
class Building:
    """A building footprint (padded-grid px = metres) with its height in metres."""

    poly: np.ndarray  # (K, 2) convex footprint (4 corners, or a circle's 20 for tanks)
    height: float
    roof: int  # random code: roof palette index and appearance flags
    kind: str = "house"  # house | warehouse | container | tank


@dataclass
class Ship:
    """A ship: hull polygon (padded-grid px), size and height in metres, heading in degrees."""

    poly: np.ndarray  # (5, 2) hull: stern port, bow shoulder port, bow, shoulder stbd, stern stbd
    length: float
    width: float
    heading_deg: float  # bow direction, degrees clockwise from image up (-y)
    inshore: bool
    height: float
    paint: int
    moving: bool = False  # under way: a wake behind it


@dataclass
class Ground:
    """The scene model on the padded grid (1 m per pixel, ``pad`` px around the SAR grid).

    ``classes``: uint8 ``(Hp, Wp)`` codes of :data:`saropt.synth.config.CLASS_CODES`;
    ``heights``: float32 ``(Hp, Wp)`` metres; object lists in padded-grid px.
    """

    classes: np.ndarray  # uint8 (Hp, Wp)
    heights: np.ndarray  # float32 (Hp, Wp)
    pad: int
    sar_shape: tuple[int, int]
    buildings: list[Building] = field(default_factory=list)
    ships: list[Ship] = field(default_factory=list)
    piers: list[np.ndarray] = field(default_factory=list)
    calm_rects: list[list[int]] = field(default_factory=list)  # SAR-grid [x0, y0, x1, y1]
    cars: list[np.ndarray] = field(default_factory=list)  # (4, 2) footprints on the streets
    sea_normal: np.ndarray = field(default_factory=lambda: np.array([1.0, 0.0]))
    wind_deg: float = 0.0
    textures: dict[str, np.ndarray] = field(default_factory=dict)  # shared by both renderers


def texture_fields(rng: np.random.Generator, shape: tuple[int, int],
                   side: float) -> dict[str, np.ndarray]:
    """Unit-std float32 ``shape`` fields seen by both sensors (soil moisture, crowns, roughness).

    ``low`` (tens to hundreds of metres), ``mid`` (about 5 m) and ``fine`` (about 2 m); ``block``
    (one value per block between roads) is added by ``make_ground``. ``side``: scene side, m.
    """
    return {"low": fractal_noise(rng, shape, [side / 6, 120, 30], [1, 0.6, 0.3]),
            "mid": smooth_noise(rng, shape, 5.0), "fine": smooth_noise(rng, shape, 2.0)}


def fill_poly(img: np.ndarray, poly: np.ndarray, value: float | tuple) -> None:
    """Fill one polygon with sub-pixel precision (pixel centres at integer coordinates)."""
    pts = np.round(np.asarray(poly, np.float64) * _SCALE).astype(np.int32)
    cv2.fillPoly(img, [pts], value, lineType=cv2.LINE_8, shift=FILL_SHIFT)


def rect_poly(center: np.ndarray, along: np.ndarray, length: float, width: float) -> np.ndarray:
    """Corners of a rotated rectangle (length along unit vector ``along``)."""
    across = np.array([-along[1], along[0]])
    hl, hw = length / 2, width / 2
    return np.array([center - along * hl - across * hw, center + along * hl - across * hw,
                     center + along * hl + across * hw, center - along * hl + across * hw])


def hull_poly(center: np.ndarray, heading_deg: float, length: float, width: float) -> np.ndarray:
    """Ship hull polygon with a pointed bow; heading clockwise from image up."""
    h = np.deg2rad(heading_deg)
    fwd = np.array([np.sin(h), -np.cos(h)])
    side = np.array([np.cos(h), np.sin(h)])  # starboard
    bow = min(width * 1.2, length * 0.3)
    local = [(-length / 2, -width / 2), (length / 2 - bow, -width / 2), (length / 2, 0.0),
             (length / 2 - bow, width / 2), (-length / 2, width / 2)]
    return np.array([center + fwd * a + side * b for a, b in local])


def _local_hits(mask: np.ndarray, poly: np.ndarray, grow: int = 0) -> bool:
    """True when ``poly`` (grown by ``grow`` px) touches a nonzero ``mask`` pixel or leaves it."""
    h, w = mask.shape
    x0, y0 = np.floor(poly.min(0)).astype(int) - grow - 1
    x1, y1 = np.ceil(poly.max(0)).astype(int) + grow + 2
    if x0 < 0 or y0 < 0 or x1 > w or y1 > h:
        return True
    local = np.zeros((y1 - y0, x1 - x0), np.uint8)
    p = poly - [x0, y0]
    fill_poly(local, p, 1)
    if grow:
        pts = np.round(p * _SCALE).astype(np.int32)
        cv2.polylines(local, [pts], True, 1, thickness=2 * grow + 1, shift=FILL_SHIFT)
    return bool(np.any(mask[y0:y1, x0:x1][local > 0]))


def _mark(mask: np.ndarray, poly: np.ndarray, grow: int = 0) -> None:
    fill_poly(mask, poly, 1)
    if grow:
        pts = np.round(poly * _SCALE).astype(np.int32)
        cv2.polylines(mask, [pts], True, 1, thickness=2 * grow + 1, shift=FILL_SHIFT)


def sample_ship_length(rng: np.random.Generator, cfg: WorldConfig, cap: float = 1e9) -> float:
    """A ship length in metres: log-normal around ``cfg.ship_length_median_m``, clipped.

    Clipped to ``cfg.ship_length_m`` with the upper end lowered to ``cap`` (not below the lower).
    """
    lo, hi = cfg.ship_length_m
    hi = max(lo, min(hi, cap))
    return float(np.clip(cfg.ship_length_median_m * np.exp(0.75 * rng.standard_normal()), lo, hi))


def sample_ship_width(rng: np.random.Generator, length: float) -> float:
    """A beam in metres for a ``length`` m ship: length / U(4.5, 7.5), at least 2.5 m."""
    return float(max(2.5, length / rng.uniform(4.5, 7.5)))


def make_ground(rng: np.random.Generator, sar_shape: tuple[int, int], pad: int,
                cfg: WorldConfig) -> Ground:
    """Generate classes, heights, buildings, piers and ships on the padded grid.

    ``sar_shape``: ``(H, W)`` px of the SAR grid (1 m per px); the ground is ``(H + 2 pad,
    W + 2 pad)``.
    """
    h, w = sar_shape
    hp, wp = h + 2 * pad, w + 2 * pad
    side = float(min(h, w))
    theta = rng.uniform(0, 2 * np.pi)
    n = np.array([np.cos(theta), np.sin(theta)])  # points from land to sea
    t = np.array([-n[1], n[0]])
    centre = np.array([wp / 2, hp / 2]) + n * (cfg.land_fraction - 0.5) * side * 0.9
    harbour_u = rng.uniform(-0.2, 0.2) * side
    harbour_len = float(np.clip(0.35 * side, 250, 1600))
    ground = Ground(classes=np.zeros((hp, wp), np.uint8), heights=np.zeros((hp, wp), np.float32),
                    pad=pad, sar_shape=sar_shape, sea_normal=n,
                    wind_deg=float(rng.uniform(0, 360)))
    land = _coast(rng, (hp, wp), centre, n, t, harbour_u, harbour_len if cfg.harbour else 0.0,
                  side)
    classes = ground.classes
    classes[land] = BARE
    urban = _land_cover(rng, ground, land, centre, n, t, harbour_u, cfg, side)
    road, alpha, cars = _roads(rng, (hp, wp), theta, cfg)
    road &= land
    classes[road] = ROAD
    if cfg.harbour:
        _piers(rng, ground, centre, n, t, harbour_u, harbour_len)
    _buildings(rng, ground, urban & land, road, alpha, cfg, near_port=(centre, t, harbour_u,
                                                                        harbour_len))
    _calm_sea(rng, ground, cfg)
    _ships(rng, ground, centre, n, t, harbour_u, harbour_len, cfg)
    ground.textures = texture_fields(rng, (hp, wp), side)
    ground.textures["block"] = _block_field(rng, land & ~road)
    ground.cars = [c for c in cars if _all_on(classes, c, ROAD)]
    return ground


def _all_on(classes: np.ndarray, poly: np.ndarray, code: int) -> bool:
    ij = np.round(poly).astype(int)
    h, w = classes.shape
    if (ij < 0).any() or (ij[:, 0] >= w).any() or (ij[:, 1] >= h).any():
        return False
    return bool((classes[ij[:, 1], ij[:, 0]] == code).all())


def _block_field(rng: np.random.Generator, free: np.ndarray) -> np.ndarray:
    """One random value in [-1, 1] per block between roads (parcels of different crop or soil)."""
    n_lab, labels = cv2.connectedComponents(free.astype(np.uint8), connectivity=4)
    vals = rng.uniform(-1, 1, n_lab).astype(np.float32)
    vals[0] = 0.0
    return vals[labels]


def _coarse_coords(shape: tuple[int, int], factor: int,
                   origin: np.ndarray) -> tuple[np.ndarray, np.ndarray, tuple[int, int]]:
    """Full-grid x and y of the centres of a ``factor``-times coarser grid, minus ``origin``."""
    hp, wp = shape
    cs = (-(-hp // factor), -(-wp // factor))
    xs = (np.arange(cs[1], dtype=np.float32) + 0.5) * factor - 0.5 - np.float32(origin[0])
    ys = (np.arange(cs[0], dtype=np.float32) + 0.5) * factor - 0.5 - np.float32(origin[1])
    return xs, ys, cs


def upsample_to(field: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Bilinear upsampling of a coarse field to ``shape`` (H, W)."""
    return cv2.resize(field, (shape[1], shape[0]), interpolation=cv2.INTER_LINEAR)


def _coast(rng: np.random.Generator, shape: tuple[int, int], centre: np.ndarray, n: np.ndarray,
           t: np.ndarray, harbour_u: float, harbour_len: float, side: float) -> np.ndarray:
    """Land mask: a straight-ish shore (normal ``n``) bent by fractal noise.

    Straight at the harbour quay; computed on a 4x coarser grid and interpolated.
    """
    f = 4
    xs, ys, cs = _coarse_coords(shape, f, centre)
    s = xs[None, :] * np.float32(n[0]) + ys[:, None] * np.float32(n[1])
    noise = fractal_noise(rng, cs, [side / 3 / f, side / 10 / f, side / 40 / f, 12 / f],
                          [1, 0.45, 0.15, 0.03])
    noise *= np.float32(0.13 * side)
    if harbour_len > 0:
        u = xs[None, :] * np.float32(t[0]) + ys[:, None] * np.float32(t[1]) - np.float32(harbour_u)
        weight = 1 - np.exp(-np.maximum(np.abs(u) - harbour_len / 2, 0) ** 2 / (0.1 * side) ** 2)
        noise *= weight.astype(np.float32)
    land = (upsample_to(s + noise, shape) < 0).astype(np.uint8)
    k = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (9, 9))
    land = cv2.morphologyEx(land, cv2.MORPH_OPEN, k)
    land = cv2.morphologyEx(land, cv2.MORPH_CLOSE, k)
    return land.astype(bool)


def _land_cover(rng: np.random.Generator, ground: Ground, land: np.ndarray, centre: np.ndarray,
                n: np.ndarray, t: np.ndarray, harbour_u: float, cfg: WorldConfig,
                side: float) -> np.ndarray:
    """Vegetation on part of the non-urban land; returns the urban mask (denser near the port)."""
    shape = ground.classes.shape
    f = 8
    port = centre + t * harbour_u
    xs, ys, cs = _coarse_coords(shape, f, port)
    urb = fractal_noise(rng, cs, [side / 4 / f, side / 12 / f], [1, 0.4])
    urb += np.float32(1.5) * np.exp(-(xs[None, :] ** 2 + ys[:, None] ** 2)
                                    / np.float32((0.35 * side) ** 2))
    urb = upsample_to(urb, shape)
    sub = (slice(None, None, 7), slice(None, None, 7))
    thr = np.quantile(urb[sub][land[sub]], 1 - cfg.urban_fraction) if land[sub].any() else 0
    urban = urb > thr
    veg = upsample_to(fractal_noise(rng, (shape[0] // 4 + 1, shape[1] // 4 + 1),
                                    [side / 32, 15, 4], [1, 0.5, 0.2]), shape)
    rest = land & ~urban
    vthr = (np.quantile(veg[sub][rest[sub]], 1 - cfg.vegetation_fraction)
            if rest[sub].any() else 0)
    ground.classes[rest & (veg > vthr)] = VEGETATION
    ground.classes[urban & land & (veg > vthr + 0.5)] = VEGETATION  # parks and gardens
    return urban


def _roads(rng: np.random.Generator, shape: tuple[int, int], theta: float,
           cfg: WorldConfig) -> tuple[np.ndarray, float, list[np.ndarray]]:
    """A jittered grid of streets (some segments missing).

    Returns the mask, the grid angle and candidate car footprints in the lanes.
    """
    hp, wp = shape
    mask = np.zeros(shape, np.uint8)
    alpha = theta + rng.normal(0, 0.15)
    dirs = [np.array([np.cos(alpha), np.sin(alpha)]),
            np.array([-np.sin(alpha), np.cos(alpha)])]
    diag = float(np.hypot(hp, wp))
    c = np.array([wp / 2, hp / 2])
    offsets = []
    cars: list[np.ndarray] = []
    for _ in range(2):
        sp = rng.uniform(*cfg.road_spacing_m)
        k = int(diag / sp / 2) + 2
        offsets.append(np.arange(-k, k + 1) * sp + rng.uniform(-0.25, 0.25, 2 * k + 1) * sp)
    for fam in range(2):
        d, e = dirs[fam], dirs[1 - fam]
        for off in offsets[fam]:
            widths = rng.uniform(*cfg.road_width_m)
            cuts = offsets[1 - fam]
            for a, b in zip(cuts[:-1], cuts[1:]):
                if rng.random() < 0.15:
                    continue
                p0 = c + e * off + d * a
                p1 = c + e * off + d * b
                cv2.line(mask, tuple(np.round(p0 * _SCALE).astype(int)),
                         tuple(np.round(p1 * _SCALE).astype(int)), 1, int(round(widths)),
                         lineType=cv2.LINE_8, shift=FILL_SHIFT)
                n_cars = rng.poisson(abs(b - a) / 45)
                u = rng.uniform(0, 1, n_cars)[:, None]
                lane = rng.choice([-1, 1], n_cars)[:, None] * widths / 4
                centres = p0 + (p1 - p0) * u + e * lane
                cars += _rects(centres, d, rng.uniform(4, 5.5, n_cars),
                               rng.uniform(1.7, 2.1, n_cars))
    return mask.astype(bool), float(alpha), cars


def _rects(centres: np.ndarray, along: np.ndarray, lengths: np.ndarray,
           widths: np.ndarray) -> list[np.ndarray]:
    """``rect_poly`` for many rectangles sharing a direction (vectorised)."""
    across = np.array([-along[1], along[0]])
    hl, hw = (lengths / 2)[:, None], (widths / 2)[:, None]
    corners = np.stack([centres - along * hl - across * hw, centres + along * hl - across * hw,
                        centres + along * hl + across * hw, centres - along * hl + across * hw], 1)
    return list(corners)


def _piers(rng: np.random.Generator, ground: Ground, centre: np.ndarray, n: np.ndarray,
           t: np.ndarray, harbour_u: float, harbour_len: float) -> None:
    side = float(min(ground.sar_shape))
    u = harbour_u - harbour_len / 2 + rng.uniform(30, 60)
    while u < harbour_u + harbour_len / 2 - 40:
        length = float(np.clip(rng.uniform(0.06, 0.14) * side, 60, 420))
        width = float(rng.uniform(10, 24))
        base = centre + t * u - n * 15
        poly = rect_poly(base + n * (length / 2), n, length + 0.0, width)
        fill_poly(ground.classes, poly, PIER)
        fill_poly(ground.heights, poly, 2.0)
        ground.piers.append(poly)
        u += max(70.0, length * rng.uniform(0.5, 0.9)) + width


def _buildings(rng: np.random.Generator, ground: Ground, urban: np.ndarray, road: np.ndarray,
               alpha: float, cfg: WorldConfig, near_port: tuple) -> None:
    """Buildings on lots of a grid aligned with the streets, lots on roads or sea left empty.

    Large low warehouses near the port, a few towers.
    """
    classes, heights = ground.classes, ground.heights
    hp, wp = classes.shape
    blocked = (~urban | road | (classes == PIER)).astype(np.uint8)
    blocked = cv2.dilate(blocked, np.ones((5, 5), np.uint8))
    centre, t, harbour_u, harbour_len = near_port
    port = centre + t * harbour_u
    d = np.array([np.cos(alpha), np.sin(alpha)])
    e = np.array([-d[1], d[0]])
    if cfg.harbour:
        no_road = cv2.dilate((~urban | (classes == PIER)).astype(np.uint8),
                             np.ones((5, 5), np.uint8))
        _port_facilities(rng, ground, blocked, no_road, d, port, harbour_len)
    lot = rng.uniform(22, 42, 2)
    half = float(np.hypot(hp, wp)) / 2
    us = np.arange(-half, half, lot[0])
    vs = np.arange(-half, half, lot[1])
    uu, vv = np.meshgrid(us, vs)
    cen = np.array([wp / 2, hp / 2]) + uu.ravel()[:, None] * d + vv.ravel()[:, None] * e
    cen += rng.uniform(-0.04, 0.04, cen.shape) * lot.mean()
    ix, iy = np.round(cen).astype(int).T
    ok = (ix >= 0) & (ix < wp) & (iy >= 0) & (iy < hp)
    ok[ok] = blocked[iy[ok], ix[ok]] == 0
    cen = cen[ok][rng.permutation(int(ok.sum()))]
    fill = min(1.0, 0.35 * cfg.building_density)
    for p in cen:
        if rng.random() > fill:
            continue
        kind = "house"
        if np.hypot(*(p - port)) < 0.45 * harbour_len and rng.random() < 0.35:
            length, width = rng.uniform(50, 130), rng.uniform(25, 50)
            height, kind = rng.uniform(7, 16), "warehouse"
        else:
            length, width = lot[0] * rng.uniform(0.45, 0.8) - 3, lot[1] * rng.uniform(0.4, 0.8) - 3
            height = float(np.clip(cfg.building_height_median_m *
                                   np.exp(0.5 * rng.standard_normal()), 3,
                                   cfg.building_height_max_m))
            if rng.random() < 0.03:
                height = rng.uniform(30, cfg.building_height_max_m)
        poly = rect_poly(p, d, length, width)
        if _local_hits(blocked, poly, grow=2):
            continue
        _mark(blocked, poly, grow=2)
        fill_poly(classes, poly, BUILDING)
        fill_poly(heights, poly, float(height))
        ground.buildings.append(Building(poly=poly, height=float(height),
                                         roof=int(rng.integers(0, 1 << 16)), kind=kind))


def _port_facilities(rng: np.random.Generator, ground: Ground, blocked: np.ndarray,
                     no_road: np.ndarray, d: np.ndarray, port: np.ndarray,
                     harbour_len: float) -> None:
    """Container yards and a tank farm (round tanks) on free land near the port.

    Yards are paved over the street grid, with rows of 12 x 2.4 m containers stacked 1-4 high.
    """
    e = np.array([-d[1], d[0]])
    for kind in ["yard"] * int(rng.integers(1, 3)) + ["tanks"] * int(rng.integers(0, 2)):
        for _ in range(40):
            c = port + rng.uniform(-0.6, 0.6, 2) * harbour_len
            size = rng.uniform([120, 70], [240, 140]) if kind == "yard" else \
                rng.uniform([80, 60], [160, 110])
            area = rect_poly(c, d, size[0], size[1])
            if _local_hits(no_road if kind == "yard" else blocked, area, grow=4):
                continue
            _mark(no_road, area, grow=4)
            _mark(blocked, area, grow=4)
            if kind == "yard":
                fill_poly(ground.classes, area, ROAD)  # paved
                _containers(rng, ground, c, d, e, size)
            else:
                _tanks(rng, ground, c, d, e, size)
            break


def _add_building(ground: Ground, poly: np.ndarray, height: float, roof: int, kind: str) -> None:
    fill_poly(ground.classes, poly, BUILDING)
    fill_poly(ground.heights, poly, float(height))
    ground.buildings.append(Building(poly=poly, height=float(height), roof=roof, kind=kind))


def _containers(rng: np.random.Generator, ground: Ground, c: np.ndarray, d: np.ndarray,
                e: np.ndarray, size: np.ndarray) -> None:
    """Blocks of 4 containers along ``d`` by 6 across, with driving lanes between blocks."""
    along = np.arange(-size[0] / 2 + 10, size[0] / 2 - 16, 12.6)
    across = np.arange(-size[1] / 2 + 8, size[1] / 2 - 6, 2.6)
    for i, a in enumerate(along):
        for j, b in enumerate(across):
            if i % 5 == 4 or j % 7 == 6 or rng.random() < 0.12:  # lanes and gaps
                continue
            stack = int(rng.integers(1, 5))
            _add_building(ground, rect_poly(c + d * (a + 6.1) + e * b, d, 12.2, 2.44),
                          2.6 * stack, int(rng.integers(0, 1 << 16)), "container")


def _tanks(rng: np.random.Generator, ground: Ground, c: np.ndarray, d: np.ndarray,
           e: np.ndarray, size: np.ndarray) -> None:
    """A grid of round storage tanks (20-gons)."""
    r = float(rng.uniform(8, 18))
    step = 2.6 * r
    ang = np.linspace(0, 2 * np.pi, 20, endpoint=False)
    circle = np.stack([np.cos(ang), np.sin(ang)], 1)
    for a in np.arange(-size[0] / 2 + step / 2, size[0] / 2 - r, step):
        for b in np.arange(-size[1] / 2 + step / 2, size[1] / 2 - r, step):
            _add_building(ground, c + d * a + e * b + circle * r, rng.uniform(12, 20),
                          int(rng.integers(0, 1 << 16)), "tank")


def _calm_sea(rng: np.random.Generator, ground: Ground, cfg: WorldConfig) -> None:
    h, w = ground.sar_shape
    pad = ground.pad
    land = ground.classes != SEA
    land_near = cv2.dilate(land.astype(np.uint8), np.ones((41, 41), np.uint8))
    for _ in range(cfg.calm_sea_patches * 30):
        if len(ground.calm_rects) >= cfg.calm_sea_patches:
            break
        fw, fh = rng.uniform(*cfg.calm_sea_size, 2) * np.array([w, h])
        x0, y0 = rng.uniform(0, w - fw), rng.uniform(0, h - fh)
        rect = [int(x0), int(y0), int(x0 + fw), int(y0 + fh)]
        if land_near[rect[1] + pad:rect[3] + pad, rect[0] + pad:rect[2] + pad].any():
            continue
        if any(_overlap(rect, r, grow=60) for r in ground.calm_rects):
            continue
        ground.calm_rects.append(rect)


def _overlap(a: list[int], b: list[int], grow: int = 0) -> bool:
    return not (a[2] + grow <= b[0] or b[2] + grow <= a[0] or a[3] + grow <= b[1]
                or b[3] + grow <= a[1])


def _ships(rng: np.random.Generator, ground: Ground, centre: np.ndarray, n: np.ndarray,
           t: np.ndarray, harbour_u: float, harbour_len: float, cfg: WorldConfig) -> None:
    h, w = ground.sar_shape
    pad = ground.pad
    occupied = (ground.classes != SEA).astype(np.uint8)
    # keep ships fully inside the SAR grid and out of calm patches
    inside = np.ones_like(occupied)
    inside[pad + 4:pad + h - 4, pad + 4:pad + w - 4] = 0
    occupied |= inside
    for x0, y0, x1, y1 in ground.calm_rects:
        occupied[y0 + pad - 30:y1 + pad + 30, x0 + pad - 30:x1 + pad + 30] = 1
    for pier in ground.piers:
        base = (pier[0] + pier[3]) / 2
        pier_len = float(np.linalg.norm(pier[1] - pier[0]))
        pier_w = float(np.linalg.norm(pier[3] - pier[0]))
        for sgn in (-1, 1):
            along = 22.0
            while along < pier_len - 15:
                length = sample_ship_length(rng, cfg, cap=pier_len - along)
                width = sample_ship_width(rng, length)
                if rng.random() < cfg.mooring_probability:
                    c = (base + n * (along + length / 2)
                         + t * sgn * (pier_w / 2 + rng.uniform(1.5, 4) + width / 2))
                    head = _heading(n if rng.random() < 0.5 else -n)
                    _try_ship(rng, ground, occupied, c, head, length, width, inshore=True,
                              grow=1)
                along += length + rng.uniform(5, 25)
    # along the quay between piers
    if cfg.harbour:
        u = harbour_u - harbour_len / 2
        while u < harbour_u + harbour_len / 2:
            length = sample_ship_length(rng, cfg, cap=200)
            width = sample_ship_width(rng, length)
            if rng.random() < cfg.mooring_probability:
                c = centre + t * (u + length / 2) + n * (rng.uniform(1.5, 4) + width / 2)
                _try_ship(rng, ground, occupied, c, _heading(t if rng.random() < .5 else -t),
                          length, width, inshore=True, grow=1)
            u += length + rng.uniform(5, 30)
    sea_km2 = float((ground.classes[pad:pad + h, pad:pad + w] == SEA).sum()) / 1e6
    n_off = int(rng.poisson(cfg.offshore_ships_per_km2 * sea_km2))
    placed = 0
    for _ in range(n_off * 20):
        if placed >= n_off:
            break
        length = sample_ship_length(rng, cfg)
        width = sample_ship_width(rng, length)
        c = np.array([rng.uniform(pad, pad + w), rng.uniform(pad, pad + h)])
        placed += _try_ship(rng, ground, occupied, c, rng.uniform(0, 360), length, width,
                            inshore=False, grow=25, moving=bool(rng.random() < 0.5))


def _heading(v: np.ndarray) -> float:
    return float(np.degrees(np.arctan2(v[0], -v[1])) % 360)


def _try_ship(rng: np.random.Generator, ground: Ground, occupied: np.ndarray, c: np.ndarray,
              heading: float, length: float, width: float, inshore: bool, grow: int,
              moving: bool = False) -> bool:
    poly = hull_poly(c, heading, length, width)
    if _local_hits(occupied, poly, grow=grow):
        return False
    _mark(occupied, poly, grow=2)
    fill_poly(ground.classes, poly, SHIP)
    height = float(min(3 + 0.08 * length, 30))
    fill_poly(ground.heights, poly, height)
    ground.ships.append(Ship(poly=poly, length=length, width=width, heading_deg=float(heading),
                             inshore=inshore, height=height, paint=int(rng.integers(0, 1 << 16)),
                             moving=moving))
    return True


def wake_mask(ship: Ship, shape: tuple[int, int],
              offset: int = 0) -> tuple[tuple[slice, slice], np.ndarray] | None:
    """Strength (0..1, float32) of a moving ship's wake in a local window of an image.

    The image has ``shape`` ``(H, W)`` and its origin at padded-grid coordinate ``offset``. The
    wake is a turbulent centre strip and the two Kelvin arms (19.5 degrees), fading with
    distance behind the stern.

    Returns:
        ``((row slice, column slice), strength)`` of the local window, or None if the ship is
        not moving or the wake lies outside the image.
    """
    if not ship.moving:
        return None
    poly = ship.poly - offset
    stern = (poly[0] + poly[4]) / 2
    fwd = (poly[2] - stern) / max(ship.length, 1e-6)
    side = np.array([-fwd[1], fwd[0]])
    lw = ship.length * 2.0
    ang = np.deg2rad(19.5)
    tip = stern - fwd * lw
    arms = [stern - (fwd * np.cos(ang) + sgn * side * np.sin(ang)) * lw * 0.8 for sgn in (-1, 1)]
    pts = np.array([stern, tip, *arms])
    h, w = shape
    x0, y0 = np.maximum(np.floor(pts.min(0)).astype(int) - 4, 0)
    x1, y1 = np.minimum(np.ceil(pts.max(0)).astype(int) + 5, [w, h])
    if x0 >= x1 or y0 >= y1:
        return None
    o = np.array([x0, y0], float)
    local = np.zeros((y1 - y0, x1 - x0), np.float32)
    centre = np.array([stern - side * ship.width * 0.4, stern + side * ship.width * 0.4,
                       tip + side * ship.width * 1.2, tip - side * ship.width * 1.2]) - o
    fill_poly(local, centre, 1.0)
    for arm in arms:
        p0 = tuple(int(v) for v in np.round((stern - o) * _SCALE))
        p1 = tuple(int(v) for v in np.round((arm - o) * _SCALE))
        cv2.line(local, p0, p1, 0.5, 2, shift=FILL_SHIFT)
    local = cv2.GaussianBlur(local, (0, 0), 1.5)
    xs = np.arange(x0, x1, dtype=np.float32) - np.float32(stern[0])
    ys = np.arange(y0, y1, dtype=np.float32) - np.float32(stern[1])
    behind = -(xs[None, :] * np.float32(fwd[0]) + ys[:, None] * np.float32(fwd[1]))
    local *= np.clip(1 - behind / np.float32(lw), 0, 1)
    return (slice(y0, y1), slice(x0, x1)), local
