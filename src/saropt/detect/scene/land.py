"""Land masks for scene detections: each box is ``land``, ``inshore`` or ``offshore``.

``land``: the box centre is on land; ``inshore``: land under a box corner or at one of 8 points
on the circle of ``inshore_m`` metres around the centre (a sampled ring, not the whole disc);
``offshore``: neither.

A mask is a raster (any GDAL format; non-zero, non-nodata pixels are land; with a CRS it may
cover any area at any resolution, without one it must have the scene's pixel grid) or a GeoJSON
vector file (RFC 7946 lon/lat, or any CRS named in a legacy ``"crs"`` member; polygons are
land). Points go from scene pixels to lon/lat (the scene's georeference) to the mask's CRS
(pyproj); a CRS that cannot be transformed is an error before any work starts.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from saropt.detect.scene.raster import Georef, gdal_env, quiet
from saropt.errors import DataError

VECTOR_SUFFIXES = (".geojson", ".json")
#: vector formats people hold coastlines in, read only after conversion to GeoJSON
OTHER_VECTOR_SUFFIXES = (".shp", ".gpkg", ".kml", ".kmz", ".gml", ".fgb", ".sqlite", ".tab")
DEFAULT_INSHORE_M = 500.0


class LandMask:
    """``is_land(x, y)`` for scene pixel coordinates (arrays), from a raster or GeoJSON mask.

    ``georef`` places scene pixels in lon/lat; ``scene_size`` is ``(width, height)`` px, the
    grid a mask without CRS must have. Formats and CRS rules in the module docstring.

    Raises:
        DataError: a missing or unreadable mask, a GeoJSON without polygons, another vector
            format, a CRS pyproj cannot read or reach from the scene, a CRS mask on a scene
            without georeference, or a CRS-less raster not on the scene's grid.
    """

    def __init__(self, path: str | Path, georef: Georef, scene_size: tuple[int, int]) -> None:
        self.path = Path(path)
        if not self.path.exists():
            raise DataError(f"land mask {self.path} does not exist")
        self.georef, self.scene_size = georef, scene_size
        self.kind = "vector" if self.path.suffix.lower() in VECTOR_SUFFIXES else "raster"
        if self.kind == "vector":
            self._init_vector()
        else:
            self._init_raster()
        self._check_transform()

    # ---------------------------------------------------------------- opening
    def _init_vector(self) -> None:
        import shapely
        from shapely.geometry import shape

        from saropt.utils.io import read_text_file

        try:  # a byte-order mark or UTF-16 (QGIS / Windows tools) as every other text input
            data = json.loads(read_text_file(self.path))
        except (OSError, ValueError) as err:
            raise DataError(f"land mask {self.path}: not readable GeoJSON ({err})") from None
        feats = data.get("features", [data]) if isinstance(data, dict) else []
        geoms = []
        for f in feats:
            g = f.get("geometry", f) if isinstance(f, dict) else None
            if g and g.get("type") in ("Polygon", "MultiPolygon"):
                geoms.append(shape(g))
        if not geoms:
            raise DataError(f"land mask {self.path}: no Polygon or MultiPolygon features")
        self.geom = shapely.union_all(geoms)
        shapely.prepare(self.geom)
        crs = (data.get("crs") or {}).get("properties", {}).get("name", "EPSG:4326")
        self.crs = self._crs(crs)

    def _init_raster(self) -> None:
        import rasterio

        try:
            with gdal_env(), quiet(), rasterio.open(self.path) as src:
                self.crs = self._crs(src.crs.to_wkt()) if src.crs else None
                self.transform, self.nodata = src.transform, src.nodata
                self.shape = (src.height, src.width)
        except rasterio.errors.RasterioIOError as err:
            if self.path.suffix.lower() in OTHER_VECTOR_SUFFIXES:
                raise DataError(f"land mask {self.path}: a {self.path.suffix} vector file; "
                                "masks are GeoJSON or rasters: convert it with ogr2ogr -f "
                                f"GeoJSON {self.path.stem}.geojson {self.path.name}") from None
            raise DataError(f"land mask {self.path}: GDAL cannot open it ({err})") from None
        if self.crs is None and self.shape != (self.scene_size[1], self.scene_size[0]):
            raise DataError(f"land mask {self.path}: has no CRS, so it must have the scene's "
                            f"pixel grid ({self.scene_size[0]} x {self.scene_size[1]}), got "
                            f"{self.shape[1]} x {self.shape[0]}")

    def _crs(self, text: str) -> Any:
        from pyproj import CRS
        from pyproj.exceptions import CRSError

        try:
            return CRS.from_user_input(text)
        except CRSError as err:
            raise DataError(f"land mask {self.path}: CRS {text[:60]!r} is not understood "
                            f"({err}); reproject the mask to EPSG:4326") from None

    def _check_transform(self) -> None:
        if self.crs is None:
            return
        if not self.georef.georeferenced:
            raise DataError(f"land mask {self.path}: the scene has no georeference, so a mask "
                            "in a CRS cannot be placed on it; give a mask on the scene's pixel "
                            "grid (a raster without CRS)")
        from pyproj import Transformer

        try:
            self._to_mask = Transformer.from_crs("EPSG:4326", self.crs, always_xy=True)
            w, h = self.scene_size
            lon, lat = self.georef.lonlat(np.array([w / 2]), np.array([h / 2]))
            x, y = self._to_mask.transform(lon, lat, errcheck=True)
        except Exception as err:  # noqa: BLE001 - pyproj raises several types
            raise DataError(f"land mask {self.path}: cannot transform the scene's lon/lat to "
                            f"the mask's CRS ({err})") from None
        if not np.all(np.isfinite(np.concatenate([np.ravel(x), np.ravel(y)]))):
            raise DataError(f"land mask {self.path}: the scene centre has no coordinates in "
                            "the mask's CRS")

    # ---------------------------------------------------------------- queries
    def is_land(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Boolean land mask at scene pixel coordinates ``x``, ``y`` (same-shape arrays).

        Outside the mask is not land; raster pixels equal to 0 or nodata are not land.
        """
        x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
        if self.crs is None:  # raster on the scene's pixel grid
            return self._sample(x.ravel(), y.ravel(), pixel=True).reshape(x.shape)
        from saropt.detect.scene.outputs import wrap

        lon, lat = self.georef.lonlat(x, y)  # into [-180, 180): a scene past 180 E
        lon = wrap(lon.ravel())
        # a lon/lat mask may itself run past 180 (0..360 or 170..190): look there too
        shifts = (0.0, 360.0, -360.0) if self.crs.is_geographic else (0.0,)
        land = np.zeros(lon.shape, bool)
        for shift in shifts:
            mx, my = self._to_mask.transform(lon + shift, lat.ravel())
            mx, my = np.asarray(mx), np.asarray(my)
            if self.kind == "vector":
                import shapely

                land |= shapely.contains_xy(self.geom, mx, my)
            else:
                land |= self._sample(mx, my, pixel=False)
        return land.reshape(x.shape)

    def _sample(self, x: np.ndarray, y: np.ndarray, pixel: bool) -> np.ndarray:
        import rasterio

        if pixel:
            cols, rows = np.floor(x), np.floor(y)
        else:
            from rasterio.transform import rowcol

            rows, cols = (np.asarray(v, np.float64) for v in rowcol(self.transform, x, y))
        h, w = self.shape
        inside = (cols >= 0) & (rows >= 0) & (cols < w) & (rows < h)
        out = np.zeros(len(x), bool)
        if not inside.any():
            return out
        r, c = rows[inside].astype(int), cols[inside].astype(int)
        r0, r1, c0, c1 = r.min(), r.max() + 1, c.min(), c.max() + 1
        with gdal_env(), quiet(), rasterio.open(self.path) as src:
            if (r1 - r0) * (c1 - c0) <= 4_000_000:  # one window holds them all
                from rasterio.windows import Window

                block = src.read(1, window=Window(c0, r0, c1 - c0, r1 - r0))
                vals = block[r - r0, c - c0]
            else:
                xy = [src.xy(ri, ci) for ri, ci in zip(r, c)]
                vals = np.array([v[0] for v in src.sample(xy, indexes=1)])
        land = vals != 0
        if self.nodata is not None:
            land &= vals != self.nodata
        out[inside] = land
        return out

    def classify(self, boxes: np.ndarray, radius_px: float) -> list[str]:
        """``land`` / ``inshore`` / ``offshore`` per xyxy scene-pixel box of ``boxes`` ``(N, 4)``.

        ``land`` when the centre is on land; ``inshore`` when a corner or one of 8 points on the
        circle of ``radius_px`` pixels around the centre is; else ``offshore``.
        """
        b = np.asarray(boxes, np.float64).reshape(-1, 4)
        if len(b) == 0:
            return []
        cx, cy = (b[:, 0] + b[:, 2]) / 2, (b[:, 1] + b[:, 3]) / 2
        ang = np.linspace(0, 2 * np.pi, 8, endpoint=False)
        ring_x = cx[:, None] + radius_px * np.cos(ang)[None]
        ring_y = cy[:, None] + radius_px * np.sin(ang)[None]
        px = np.concatenate([cx[:, None], b[:, [0, 2, 2, 0]], ring_x], axis=1)
        py = np.concatenate([cy[:, None], b[:, [1, 1, 3, 3]], ring_y], axis=1)
        land = self.is_land(px, py)
        return ["land" if row[0] else "inshore" if row.any() else "offshore" for row in land]
