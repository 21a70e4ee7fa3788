"""A test scene of any size with an exactly known affine SAR -> optical mapping.

The scene is written window by window (so the 4x-larger scenes of the memory benchmark are never
held whole).

The ground is a smooth random texture defined on optical coordinates; the optical image samples
it on its own grid, the SAR image samples it through the mapping and adds speckle. The left
``sea_fraction`` of the optical scene is calm sea: flat in the optical, dark speckle in the SAR.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from saropt.build.tiepoints import write_tiepoints

CELL = 12  # px per coarse texture cell


@dataclass
class AffineScene:
    """A written test scene: its folder, ``(H, W)`` shapes in px and the exact 3x3 mapping."""

    dir: Path
    sar_shape: tuple[int, int]
    opt_shape: tuple[int, int]
    matrix: np.ndarray  # 3x3, SAR pixel -> optical pixel

    def sar_to_opt(self, xy: np.ndarray) -> np.ndarray:
        """Exact optical pixels ``(N, 2)`` of SAR pixels ``xy`` ``(N, 2)`` (x, y)."""
        p = np.column_stack([xy, np.ones(len(xy))]) @ self.matrix.T
        return p[:, :2]


def _matrix(scale: float, angle_deg: float, shift: tuple[float, float]) -> np.ndarray:
    a = np.deg2rad(angle_deg)
    r = scale * np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
    return np.array([[r[0, 0], r[0, 1], shift[0]], [r[1, 0], r[1, 1], shift[1]], [0, 0, 1]])


def _ground(coarse: np.ndarray, ox: np.ndarray, oy: np.ndarray, sea_x: float) -> np.ndarray:
    """(h, w, 3) float ground colour at optical coordinates; sea left of ``sea_x``."""
    img = cv2.remap(coarse, (ox / CELL).astype(np.float32), (oy / CELL).astype(np.float32),
                    cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT)
    sea = (ox < sea_x)[..., None]
    return np.where(sea, np.array([30.0, 60.0, 90.0], np.float32), img)


def make_affine_scene(out_dir: str | Path, sar_size: int = 1024, seed: int = 0,
                      scale: float = 1.1, angle_deg: float = 4.0, sea_fraction: float = 0.0,
                      n_points: int = 40, noise_px: float = 0.3, n_outliers: int = 0,
                      window: int = 1024) -> AffineScene:
    """Write a test scene with a known affine mapping into ``out_dir``.

    Files: ``sar.tif`` (uint16 speckled amplitude, ``sar_size`` px square, nodata 0),
    ``optical.tif`` (uint8 RGB), ``tiepoints.csv`` (``n_points`` points with Gaussian noise of
    ``noise_px`` px on the optical side, the first ``n_outliers`` moved 15-40 px),
    ``subregions.json`` (one sub-region, the whole SAR grid) and ``truth.json`` (the 3x3
    ``sar_to_opt`` matrix). The mapping scales by ``scale``, rotates by ``angle_deg`` degrees
    and shifts by (40, 20) px. Written with rasterio in ``window`` px tiles.
    """
    import rasterio

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    m = _matrix(scale, angle_deg, (40.0, 20.0))
    corners = np.array([[0, 0], [sar_size, 0], [0, sar_size], [sar_size, sar_size]], float)
    opt_c = np.column_stack([corners, np.ones(4)]) @ m.T
    opt_size = int(np.ceil(opt_c[:, :2].max())) + 40
    coarse = cv2.GaussianBlur(rng.uniform(20, 235, (opt_size // CELL + 8, opt_size // CELL + 8, 3))
                              .astype(np.float32), (0, 0), 1.0)
    coarse = (coarse - coarse.mean()) * 2.2 + 128
    sea_x = sea_fraction * opt_size
    profile = dict(driver="GTiff", tiled=True, blockxsize=256, blockysize=256)
    with rasterio.open(out / "optical.tif", "w", width=opt_size, height=opt_size, count=3,
                       dtype="uint8", **profile) as dst:
        for y0 in range(0, opt_size, window):
            for x0 in range(0, opt_size, window):
                w, h = min(window, opt_size - x0), min(window, opt_size - y0)
                ox, oy = np.meshgrid(np.arange(x0, x0 + w, dtype=np.float32),
                                     np.arange(y0, y0 + h, dtype=np.float32))
                rgb = np.clip(_ground(coarse, ox, oy, sea_x), 0, 255).astype(np.uint8)
                dst.write(np.moveaxis(rgb, -1, 0), window=rasterio.windows.Window(x0, y0, w, h))
    with rasterio.open(out / "sar.tif", "w", width=sar_size, height=sar_size, count=1,
                       dtype="uint16", nodata=0, **profile) as dst:
        for y0 in range(0, sar_size, window):
            for x0 in range(0, sar_size, window):
                w, h = min(window, sar_size - x0), min(window, sar_size - y0)
                xs, ys = np.meshgrid(np.arange(x0, x0 + w, dtype=np.float64),
                                     np.arange(y0, y0 + h, dtype=np.float64))
                ox = m[0, 0] * xs + m[0, 1] * ys + m[0, 2]
                oy = m[1, 0] * xs + m[1, 1] * ys + m[1, 2]
                grey = _ground(coarse, ox, oy, sea_x).mean(axis=2)
                sea = ox < sea_x
                refl = np.where(sea, 25.0, 40.0 + 4.0 * np.clip(grey, 0, 255))
                speckle = np.sqrt(rng.exponential(1.0, (h, w)))
                amp = np.clip(refl * speckle, 1, 65535).astype(np.uint16)
                dst.write(amp[None], window=rasterio.windows.Window(x0, y0, w, h))
    scene = AffineScene(out, (sar_size, sar_size), (opt_size, opt_size), m)
    sar_pts = rng.uniform(5, sar_size - 5, (n_points, 2))
    opt_pts = scene.sar_to_opt(sar_pts) + rng.normal(0, noise_px, (n_points, 2))
    opt_pts[:n_outliers] += rng.uniform(15, 40, (n_outliers, 2)) * rng.choice([-1, 1],
                                                                               (n_outliers, 2))
    write_tiepoints(out / "tiepoints.csv", {"scene": np.hstack([sar_pts, opt_pts])})
    (out / "subregions.json").write_text(json.dumps({"scene": {"rect": [0, 0, sar_size,
                                                                         sar_size]}}))
    (out / "truth.json").write_text(json.dumps({"sar_to_opt": m.tolist()}))
    return scene
