"""Synthetic SAR scenes with known ships and a deterministic blob detector for the scene tests.

The scene is uint16 sea speckle (Gamma, mean ~120 DN) with ships as bright rectangles
(~3000 DN) at known pixel boxes (edge coordinates, x2/y2 exclusive). The blob detector
thresholds the 8-bit tile and reports each connected component's box: a ship wholly in a tile
comes out as exactly its true box, a ship cut by the tile as a box touching the tile edge.
"""

from __future__ import annotations

import time
import warnings
from pathlib import Path

import numpy as np

from saropt.detect.scene.detectors import SceneDetector
from saropt.detect.scene.radiometry import Radiometry

SHIP_DN = 3000
UTM = "EPSG:32633"
ORIGIN = (500000.0, 4000000.0)  # UTM 33N easting / northing of the top-left corner
PIXEL_M = 10.0


def ship_boxes(width: int, height: int, n: int, seed: int, max_len: int = 40) -> np.ndarray:
    """``n`` non-touching ship boxes (int xyxy), lengths 6..max_len px, some along x, some y."""
    rng = np.random.default_rng(seed)
    boxes: list[list[int]] = []
    tries = 0
    while len(boxes) < n and tries < 100 * n:
        tries += 1
        a, b = int(rng.integers(6, max_len + 1)), int(rng.integers(3, 9))
        w, h = (a, b) if rng.random() < 0.5 else (b, a)
        x, y = int(rng.integers(0, width - w + 1)), int(rng.integers(0, height - h + 1))
        c = [x, y, x + w, y + h]
        if all(c[0] >= o[2] + 3 or c[2] + 3 <= o[0] or c[1] >= o[3] + 3 or c[3] + 3 <= o[1]
               for o in boxes):
            boxes.append(c)
    return np.array(boxes, np.int64).reshape(-1, 4)


def write_scene(path: Path, width: int, height: int, boxes: np.ndarray, seed: int = 0,
                georef: str = "affine", nodata: int | None = None, strip: int = 512,
                dtype: str = "uint16") -> Path:
    """Write the scene in row strips (bounded memory). ``georef``: affine (UTM 33N, 10 m),
    gcps (the same corners as GCPs in EPSG:4326), rpcs, none."""
    import rasterio
    from rasterio.control import GroundControlPoint
    from rasterio.transform import Affine
    from rasterio.windows import Window

    profile = {"driver": "GTiff", "width": width, "height": height, "count": 1,
               "dtype": dtype, "tiled": True, "blockxsize": 256, "blockysize": 256,
               "compress": "deflate"}
    if nodata is not None:
        profile["nodata"] = nodata
    if georef == "affine":
        profile.update(crs=UTM, transform=Affine(PIXEL_M, 0, ORIGIN[0], 0, -PIXEL_M, ORIGIN[1]))
    rng = np.random.default_rng(seed)
    warnings.filterwarnings("ignore", category=rasterio.errors.NotGeoreferencedWarning)
    with rasterio.open(path, "w", **profile) as dst:
        for y0 in range(0, height, strip):
            h = min(strip, height - y0)
            sea = rng.gamma(2.0, 60.0, size=(h, width)).astype(np.float32)
            for x1, y1, x2, y2 in boxes:
                a, b = max(y1, y0), min(y2, y0 + h)
                if a < b:
                    sea[a - y0:b - y0, x1:x2] = SHIP_DN
            dst.write(sea.clip(0, 65535).astype(dtype)[None], window=Window(0, y0, width, h))
        if georef == "gcps":
            corners = [(0, 0), (width, 0), (0, height), (width, height), (width / 2, height / 2)]
            gcps = [GroundControlPoint(row=r, col=c, x=15.0 + c * 1e-4 + r * 2e-5,
                                       y=36.0 - r * 9e-5 + c * 1e-5) for c, r in corners]
            dst.gcps = (gcps, "EPSG:4326")
        elif georef == "rpcs":
            dst.rpcs = example_rpc(width, height)
    return path


def example_rpc(width: int, height: int):
    """An RPC model of a north-up scene with a small skew near 15 E 36 N."""
    from rasterio.rpc import RPC

    num_line, num_samp = [0.0] * 20, [0.0] * 20
    den = [1.0] + [0.0] * 19
    num_line[2], num_line[1] = -1.0, 0.05  # line ~ -lat + 0.05 lon
    num_samp[1], num_samp[2] = 1.0, 0.02  # sample ~ lon + 0.02 lat
    return RPC(height_off=0.0, height_scale=500.0, lat_off=36.0, lat_scale=0.05,
               line_den_coeff=den, line_num_coeff=num_line, line_off=height / 2,
               line_scale=height / 2, long_off=15.0, long_scale=0.05,
               samp_den_coeff=den, samp_num_coeff=num_samp, samp_off=width / 2,
               samp_scale=width / 2)


class BlobDetector(SceneDetector):
    """Connected components of the thresholded 8-bit tile as detections (score = mean/255)."""

    def __init__(self, tile: int = 256, overlap: float = 0.25, thr: int = 100,
                 name: str = "blobs", delay_s: float = 0.0) -> None:
        self.tile, self.overlap, self.thr, self.name = tile, overlap, thr, name
        self.radiometry = Radiometry(kind="linear", low=0.0, high=4000.0)
        self.scale, self.notes, self.delay_s = 1.0, [], delay_s
        self.fingerprint = f"blobs:{thr}"

    def min_tile(self) -> int:
        return 16

    def detect(self, tiles: list[np.ndarray]) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        import cv2

        if self.delay_s:
            time.sleep(self.delay_s)
        out = []
        for t in tiles:
            mask = (t >= self.thr).astype(np.uint8)
            n, lab, st, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
            boxes, scores = [], []
            for i in range(1, n):
                x, y, w, h = st[i, :4]
                boxes.append([x, y, x + w, y + h])
                scores.append(float(t[lab == i].mean()) / 255.0)
            out.append((np.array(boxes, np.float32).reshape(-1, 4),
                        np.array(scores, np.float32), np.ones(len(boxes), np.int64)))
        return out
