"""``make_scene_pair``: the ground rendered as a SAR image and as an optical image, with truth."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np

from saropt.synth.config import CLASS_CODES, WorldConfig
from saropt.synth.geometry import SceneMapping, grid_sar_coords, random_mapping
from saropt.synth.ground import Ground, fill_poly, make_ground
from saropt.synth.optical import render_optical
from saropt.synth.sar import amplitude_to_uint8, render_sar_intensity, to_amplitude_uint16

TIE_DTYPE = np.dtype([("subregion", "U16"), ("sar_x", "f8"), ("sar_y", "f8"), ("opt_x", "f8"),
                      ("opt_y", "f8"), ("is_outlier", "?")])


@dataclass
class ScenePair:
    """One rendered scene: SAR and optical images, their class/height maps and the truth."""

    sar_amp: np.ndarray  # uint16 (H, W) amplitude DN
    sar8: np.ndarray  # uint8 (H, W), dB-scaled
    optical: np.ndarray  # uint8 (Ho, Wo, 3) on the optical grid
    optical_on_sar: np.ndarray  # uint8 (H, W, 3), the optical rendered on the SAR grid
    classes: np.ndarray  # uint8 (H, W), codes in CLASS_CODES
    heights: np.ndarray  # float32 (H, W), metres above ground
    mapping: SceneMapping
    tie_points: np.ndarray  # structured array, TIE_DTYPE
    subregions: dict[str, dict[str, list[int]]]
    ships: list[dict[str, Any]]
    classes_opt: np.ndarray | None = None  # uint8 (Ho, Wo), the class map on the optical grid
    calm_sea: list[list[int]] = field(default_factory=list)  # SAR rects [x0, y0, x1, y1]
    seed: int = 0
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def shape(self) -> tuple[int, int]:
        """``(H, W)`` of the SAR grid in px (1 m per px)."""
        return self.sar8.shape

    def truth(self) -> dict[str, Any]:
        """Everything known about the pair, JSON-ready (``truth.json``)."""
        return {"seed": self.seed, "sar_shape": list(self.shape),
                "optical_shape": list(self.optical.shape[:2]),
                "pixel_convention": "0-based, x = column, pixel centres at integers; boxes xyxy "
                                    "with exclusive x2/y2 edges",
                "mapping": self.mapping.to_dict(), "class_codes": CLASS_CODES,
                "subregions": self.subregions,
                "tie_points": [{k: _py(tp[k]) for k in TIE_DTYPE.names}
                               for tp in self.tie_points],
                "ships": self.ships, "calm_sea": [{"rect": r} for r in self.calm_sea],
                **self.meta}


def _py(v: Any) -> Any:
    return v.item() if isinstance(v, np.generic) else v


def _shape2(size: int | tuple[int, int]) -> tuple[int, int]:
    if isinstance(size, int | np.integer):
        return int(size), int(size)
    h, w = size
    return int(h), int(w)


def make_scene_pair(size: int | tuple[int, int], seed: int, cfg: WorldConfig | None = None,
                    progress: bool = False) -> ScenePair:
    """Render a scene pair; ``size`` is the SAR grid side or (height, width) in pixels (1 m).

    ``progress`` shows a progress bar over the rendering steps. Deterministic in ``seed`` and
    ``cfg`` (default :class:`WorldConfig`).

    Raises:
        ValueError: when a side is below 64 px.
    """
    from tqdm import tqdm

    cfg = cfg or WorldConfig()
    h, w = _shape2(size)
    if min(h, w) < 64:
        raise ValueError(f"scene size {size} too small (minimum 64 px)")
    bar = tqdm(total=4, desc=f"scene {h}x{w}", disable=not progress)
    rng = np.random.default_rng(seed)
    mapping, opt_shape = random_mapping(
        rng, (h, w), cfg.distortion_strength, cfg.rotation_deg, cfg.scale_jitter, cfg.shear,
        cfg.nonlinear_px)
    pad = _needed_pad(mapping, opt_shape, (h, w))
    bar.set_postfix_str("ground")
    ground = make_ground(rng, (h, w), pad, cfg)
    bar.update(1)
    bar.set_postfix_str("optical")
    optical_pad = render_optical(ground, cfg)
    optical, classes_opt = _remap_to_optical([optical_pad, ground.classes],
                                             [cv2.INTER_LINEAR, cv2.INTER_NEAREST], mapping,
                                             opt_shape, pad)
    bar.update(1)
    bar.set_postfix_str("SAR")
    inten = render_sar_intensity(rng, ground, cfg)
    amp = to_amplitude_uint16(inten, cfg)
    del inten
    sar8 = amplitude_to_uint8(amp, cfg.sar8_percentiles, cfg.sar8_dynamic_range_db,
                              cfg.sar8_noise_floor_dn)
    bar.update(1)
    bar.set_postfix_str("truth")
    crop = (slice(pad, pad + h), slice(pad, pad + w))
    subregions = make_subregions((h, w), cfg.subregion_grid)
    ties = make_tie_points(rng, mapping, subregions, opt_shape, cfg)
    ships = ship_records(ground, mapping, opt_shape)
    meta = {"sensor": {"side": cfg.sensor_side, "incidence_deg": cfg.incidence_deg,
                       "looks": cfg.looks, "pixel_spacing_m": 1.0},
            "sun": {"azimuth_deg": cfg.sun_azimuth_deg, "elevation_deg": cfg.sun_elevation_deg},
            "pad": pad}
    bar.update(1)
    bar.close()
    return ScenePair(sar_amp=amp, sar8=sar8, optical=optical,
                     optical_on_sar=np.ascontiguousarray(optical_pad[crop]),
                     classes=np.ascontiguousarray(ground.classes[crop]),
                     heights=np.ascontiguousarray(ground.heights[crop]), mapping=mapping,
                     tie_points=ties, subregions=subregions, ships=ships,
                     classes_opt=classes_opt, calm_sea=ground.calm_rects, seed=seed, meta=meta)


def _needed_pad(mapping: SceneMapping, opt_shape: tuple[int, int],
                sar_shape: tuple[int, int]) -> int:
    ho, wo = opt_shape
    xs, ys = np.arange(wo, dtype=float), np.arange(ho, dtype=float)
    border = np.concatenate([np.stack([xs, np.zeros(wo)], 1),
                             np.stack([xs, np.full(wo, ho - 1.0)], 1),
                             np.stack([np.zeros(ho), ys], 1),
                             np.stack([np.full(ho, wo - 1.0), ys], 1)])
    sar = mapping.opt_to_sar(border)
    h, w = sar_shape
    over = max(-sar[:, 0].min(), -sar[:, 1].min(), sar[:, 0].max() - (w - 1),
               sar[:, 1].max() - (h - 1), 0.0)
    return int(np.ceil(over)) + 8


def _remap_to_optical(images: list[np.ndarray], interps: list[int], mapping: SceneMapping,
                      opt_shape: tuple[int, int], pad: int,
                      block_rows: int = 512) -> list[np.ndarray]:
    """Resample padded-ground-grid images onto the optical grid (maps computed once per block)."""
    outs = [np.zeros(tuple(opt_shape) + im.shape[2:], im.dtype) for im in images]
    for r0 in range(0, opt_shape[0], block_rows):
        r1 = min(opt_shape[0], r0 + block_rows)
        mx, my = grid_sar_coords(mapping, opt_shape, r0, r1)
        mx += np.float32(pad)
        my += np.float32(pad)
        for im, interp, out in zip(images, interps, outs):
            out[r0:r1] = cv2.remap(im, mx, my, interp, borderMode=cv2.BORDER_REPLICATE)
    return outs


def make_subregions(shape: tuple[int, int],
                    grid: tuple[int, int]) -> dict[str, dict[str, list[int]]]:
    """A rows x cols grid of rectangles ``[x0, y0, x1, y1]`` (SAR pixels) named ``r{i}c{j}``."""
    h, w = shape
    rows, cols = grid
    ys = np.linspace(0, h, rows + 1).round().astype(int)
    xs = np.linspace(0, w, cols + 1).round().astype(int)
    return {f"r{i}c{j}": {"rect": [int(xs[j]), int(ys[i]), int(xs[j + 1]), int(ys[i + 1])]}
            for i in range(rows) for j in range(cols)}


def make_tie_points(rng: np.random.Generator, mapping: SceneMapping,
                    subregions: dict[str, dict[str, list[int]]], opt_shape: tuple[int, int],
                    cfg: WorldConfig) -> np.ndarray:
    """Tie points per sub-region: true correspondence + Gaussian noise, a few gross outliers.

    ``cfg.tie_points_per_subregion`` points each, uniform inside the central 90 % of the
    sub-region; optical side noise ``cfg.tie_noise_px`` px (std), outliers moved by
    ``cfg.tie_outlier_offset_px`` px, clipped to the optical grid. Returns a :data:`TIE_DTYPE`
    array (px, 3 decimals) with ``is_outlier`` set.
    """
    k = cfg.tie_points_per_subregion
    rows = []
    for name, sub in subregions.items():
        x0, y0, x1, y1 = sub["rect"]
        mx, my = 0.05 * (x1 - x0), 0.05 * (y1 - y0)
        sar = np.stack([rng.uniform(x0 + mx, x1 - mx - 1, k), rng.uniform(y0 + my, y1 - my - 1, k)],
                       1)
        rows += [(name, *p) for p in sar]
    ties = np.zeros(len(rows), TIE_DTYPE)
    ties["subregion"] = [r[0] for r in rows]
    sar = np.array([r[1:] for r in rows], float)
    opt = mapping.sar_to_opt(sar) + rng.normal(0, cfg.tie_noise_px, sar.shape)
    n_out = int(round(cfg.tie_outlier_fraction * len(rows)))
    out_idx = rng.choice(len(rows), n_out, replace=False)
    ang = rng.uniform(0, 2 * np.pi, n_out)
    mag = rng.uniform(*cfg.tie_outlier_offset_px, n_out)
    opt[out_idx] += np.stack([np.cos(ang), np.sin(ang)], 1) * mag[:, None]
    ho, wo = opt_shape
    opt[:, 0] = np.clip(opt[:, 0], 0, wo - 1)
    opt[:, 1] = np.clip(opt[:, 1], 0, ho - 1)
    ties["sar_x"], ties["sar_y"] = sar[:, 0].round(3), sar[:, 1].round(3)
    ties["opt_x"], ties["opt_y"] = opt[:, 0].round(3), opt[:, 1].round(3)
    ties["is_outlier"][out_idx] = True
    return ties


def ship_records(ground: Ground, mapping: SceneMapping,
                 opt_shape: tuple[int, int]) -> list[dict[str, Any]]:
    """Every ship with its hull, its box on the SAR grid and on the optical grid (xyxy).

    Boxes are xyxy px with exclusive x2/y2; hulls and quads ``(K, 2)`` px; sizes in metres,
    heading in degrees clockwise from image up.
    """
    h, w = ground.sar_shape
    recs = []
    for i, s in enumerate(ground.ships):
        hull = s.poly - ground.pad
        hull_opt = mapping.sar_to_opt(hull)
        quad = oriented_rect(hull, s.width)
        recs.append({"id": i, "sar_box": _box(hull, (h, w)), "opt_box": _box(hull_opt, opt_shape),
                     "sar_hull": hull.round(2).tolist(), "opt_hull": hull_opt.round(2).tolist(),
                     "sar_quad": quad.round(2).tolist(),
                     "opt_quad": mapping.sar_to_opt(quad).round(2).tolist(),
                     "length_m": round(s.length, 2), "width_m": round(s.width, 2),
                     "heading_deg": round(s.heading_deg, 2), "inshore": bool(s.inshore),
                     "height_m": round(s.height, 2)})
    return recs


def oriented_rect(hull: np.ndarray, width: float) -> np.ndarray:
    """The ship's length x width rectangle (4, 2), clockwise on screen.

    Starting from the stern-port corner, in pixel-centre coordinates like the hull.
    """
    stern = (hull[0] + hull[4]) / 2
    bow = hull[2]
    fwd = (bow - stern) / max(float(np.linalg.norm(bow - stern)), 1e-9)
    side = np.array([-fwd[1], fwd[0]])
    quad = np.array([stern - side * width / 2, bow - side * width / 2, bow + side * width / 2,
                     stern + side * width / 2])
    a, b = quad[1] - quad[0], quad[2] - quad[1]
    return quad if a[0] * b[1] - a[1] * b[0] > 0 else quad[::-1].copy()


def _box(poly: np.ndarray, shape: tuple[int, int]) -> list[float]:
    """The xyxy box (exclusive edges) of the pixels the polygon rasterises to.

    As a box drawn around a mask (like HRSID's), clipped to the image; empty boxes are zero-size.
    """
    h, w = shape
    x0, y0 = np.floor(poly.min(0)).astype(int) - 2
    x1, y1 = np.ceil(poly.max(0)).astype(int) + 3
    local = np.zeros((y1 - y0, x1 - x0), np.uint8)
    fill_poly(local, poly - [x0, y0], 1)
    ys, xs = np.nonzero(local)
    bx0, by0 = int(np.clip(xs.min() + x0, 0, w)), int(np.clip(ys.min() + y0, 0, h))
    bx1, by1 = int(np.clip(xs.max() + x0 + 1, 0, w)), int(np.clip(ys.max() + y0 + 1, 0, h))
    return [float(bx0), float(by0), float(bx1), float(by1)]
