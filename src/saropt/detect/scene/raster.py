"""A single-band SAR scene of any size: opened and checked, read in windows, georeferenced.

Georeference, in this order of preference: an affine transform with a CRS; ground control
points (Sentinel-1 GRD, rasterio's ``GCPTransformer``, a polynomial fit); rational polynomial
coefficients (GaoFen-3 L1A, rasterio's ``RPCTransformer`` at height 0); or none, in which case
every coordinate written is a scene pixel and the outputs say so. Pixel coordinates are edge
coordinates (``x = column``, the first pixel spans ``[0, 1)``), as rasterio's ``offset="ul"``.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from saropt.errors import DataError

#: GDAL block cache while reading a scene (MB): bounds memory whatever the scene size; it holds
#: the few rows of file blocks that overlapping tiles share (--gdal-cache-mb)
GDAL_CACHE_MB = 64
SUPPORTED_DTYPES = ("uint8", "uint16", "int16", "uint32", "int32", "float32", "float64")


def gdal_env(cache_mb: int | None = None) -> Any:
    """A ``rasterio.Env`` with a GDAL block cache of ``cache_mb`` MB (:data:`GDAL_CACHE_MB`)."""
    import rasterio

    return rasterio.Env(GDAL_CACHEMAX=int(cache_mb or GDAL_CACHE_MB) * 1024 * 1024)


@contextmanager
def quiet() -> Iterator[None]:
    """Silence rasterio's warning about rasters without a geotransform (we report it)."""
    import rasterio.errors

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", rasterio.errors.NotGeoreferencedWarning)
        yield


@dataclass
class Georef:
    """A scene's georeference: pixel (edge) coordinates -> lon/lat (WGS84), or pixels when none.

    ``kind`` is ``"affine"`` (``transform`` + ``crs``), ``"gcps"`` (``gcps`` + ``crs``, rasterio's
    ``GCPTransformer``), ``"rpcs"`` (``rpcs``, rasterio's ``RPCTransformer`` at height 0) or
    ``"none"``; ``crs`` is WKT (or ``"EPSG:4326"`` for RPCs), reprojected with pyproj.
    """

    kind: str  # "affine" | "gcps" | "rpcs" | "none"
    crs: str | None = None
    transform: Any = None  # affine.Affine (kind affine)
    gcps: Any = None  # list of rasterio GroundControlPoint (kind gcps)
    rpcs: Any = None  # rasterio RPC (kind rpcs)
    _cache: dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def georeferenced(self) -> bool:
        """Whether coordinates are lon/lat (any ``kind`` but ``"none"``)."""
        return self.kind != "none"

    def _to_wgs84(self, xs: np.ndarray, ys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if "proj" not in self._cache:
            from pyproj import CRS, Transformer

            src = CRS.from_user_input(self.crs)
            self._cache["proj"] = (None if src == CRS.from_epsg(4326) else
                                   Transformer.from_crs(src, "EPSG:4326", always_xy=True))
        tr = self._cache["proj"]
        return (xs, ys) if tr is None else tr.transform(xs, ys)

    def lonlat(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Lon/lat in degrees (WGS84) of pixel edge coordinates ``x`` (column), ``y`` (row).

        Arrays of any one shape in, two float64 arrays of that shape out; for
        ``kind == "none"`` copies of the pixel coordinates themselves.
        """
        x = np.asarray(x, np.float64)
        y = np.asarray(y, np.float64)
        if self.kind == "none":
            return x.copy(), y.copy()
        if self.kind == "affine":
            a = self.transform
            xs = a.a * x + a.b * y + a.c
            ys = a.d * x + a.e * y + a.f
            return tuple(np.asarray(v, np.float64) for v in self._to_wgs84(xs, ys))
        from rasterio.transform import GCPTransformer, RPCTransformer

        shape = x.shape
        if self.kind == "gcps":
            with GCPTransformer(self.gcps) as t:
                xs, ys = t.xy(y.ravel(), x.ravel(), offset="ul")
            lon, lat = self._to_wgs84(np.asarray(xs), np.asarray(ys))
        else:
            with RPCTransformer(self.rpcs) as t:
                lon, lat = t.xy(y.ravel(), x.ravel(), zs=0, offset="ul")
        return (np.asarray(lon, np.float64).reshape(shape),
                np.asarray(lat, np.float64).reshape(shape))

    def crs_name(self) -> str:
        """A short name of the CRS: ``WGS 84 / UTM zone 33N (EPSG:32633)``."""
        from pyproj import CRS

        crs = CRS.from_user_input(self.crs)
        epsg = crs.to_epsg()
        return f"{crs.name} (EPSG:{epsg})" if epsg else crs.name

    def describe(self) -> str:
        """One line saying how coordinates are made (for reports and the CLI)."""
        if not self.georeferenced:
            return "none: coordinates are scene pixels (x = column, y = row), not lon/lat"
        return {"affine": f"affine transform, CRS {self.crs_name()}",
                "gcps": f"{len(self.gcps or [])} ground control points, CRS {self.crs_name()}",
                "rpcs": "rational polynomial coefficients (height 0)"}[self.kind]


def pixel_spacing_m(geo: Georef, width: int, height: int) -> tuple[float, float] | None:
    """Ground distance in metres of one pixel step in x and y at the scene centre, or None.

    WGS84 geodesic distances (pyproj ``Geod``) between the centre pixel and its right and lower
    neighbours; None without georeference.
    """
    if not geo.georeferenced:
        return None
    from pyproj import Geod

    cx, cy = width / 2.0, height / 2.0
    lon, lat = geo.lonlat(np.array([cx, cx + 1, cx]), np.array([cy, cy, cy + 1]))
    g = Geod(ellps="WGS84")
    _, _, dx = g.inv(lon[0], lat[0], lon[1], lat[1])
    _, _, dy = g.inv(lon[0], lat[0], lon[2], lat[2])
    return float(dx), float(dy)


@dataclass
class SceneInfo:
    """What :func:`open_scene` found out about a scene file."""

    path: Path
    width: int
    height: int
    band: int
    dtype: str
    nodata: float | None
    georef: Georef

    @property
    def megapixels(self) -> float:
        """Scene size in millions of pixels (width x height / 1e6)."""
        return self.width * self.height / 1e6


def _georef(src: Any) -> Georef:
    from affine import Affine

    if src.crs is not None and src.transform != Affine.identity():
        return Georef("affine", crs=src.crs.to_wkt(), transform=src.transform)
    gcps, gcp_crs = src.gcps
    if gcps:
        if gcp_crs is None:
            raise DataError(f"{src.name}: has {len(gcps)} GCPs but no GCP CRS; set one with "
                            "gdal_translate -a_srs or remove the GCPs")
        return Georef("gcps", crs=gcp_crs.to_wkt(), gcps=list(gcps))
    if src.rpcs is not None:
        return Georef("rpcs", crs="EPSG:4326", rpcs=src.rpcs)
    return Georef("none")


def open_scene(path: str | Path, band: int | None = None, nodata: float | None = None
               ) -> SceneInfo:
    """Open and check a scene (rasterio/GDAL) before any work; returns what it found.

    Checks: readable by GDAL, one band (or ``band`` chosen, 1-based), a supported data type
    (:data:`SUPPORTED_DTYPES`), a georeference that reaches WGS84 lon/lat. ``nodata``
    overrides the file's nodata value.

    Raises:
        DataError: a missing or unreadable file, several bands without ``band``, a band out of
            range, an unsupported data type, a ``nodata`` the band cannot hold, GCPs without a
            CRS, or a georeference that cannot reach WGS84.
    """
    import rasterio

    path = Path(path)
    if not path.exists():
        raise DataError(f"scene {path} does not exist")
    try:
        with gdal_env(), quiet(), rasterio.open(path) as src:
            count, dtypes = src.count, src.dtypes
            if band is None:
                if count != 1:
                    raise DataError(f"{path}: has {count} bands; choose one with --band N "
                                    "(1-based)")
                band = 1
            elif not 1 <= band <= count:
                raise DataError(f"{path}: --band {band} is not in 1..{count}")
            dtype = dtypes[band - 1]
            if dtype not in SUPPORTED_DTYPES:
                raise DataError(f"{path}: band {band} has data type {dtype}; supported: "
                                f"{', '.join(SUPPORTED_DTYPES)} (complex SLC: convert to "
                                "amplitude first)")
            file_nodata = src.nodatavals[band - 1]
            if nodata is not None:
                _check_nodata(path, nodata, dtype)
            info = SceneInfo(path, src.width, src.height, band, dtype,
                             nodata if nodata is not None else file_nodata, _georef(src))
    except rasterio.errors.RasterioIOError as err:
        raise DataError(f"scene {path}: GDAL cannot open it ({err})") from None
    _check_georef(path, info)
    return info


def _check_nodata(path: Path, nodata: float, dtype: str) -> None:
    """``--nodata`` must be a value the band can hold (else it would match nothing, or wrap)."""
    if np.dtype(dtype).kind not in "iu":
        return
    lim = np.iinfo(dtype)
    if not (float(nodata).is_integer() and lim.min <= nodata <= lim.max):
        raise DataError(f"{path}: --nodata {nodata:g} is not a {dtype} value (integers "
                        f"{lim.min}..{lim.max}); give the value the file uses for no data")


def _check_georef(path: Path, info: SceneInfo) -> None:
    """The georeference must reach WGS84 lon/lat (checked on the scene centre) before work."""
    if not info.georef.georeferenced:
        return
    try:
        lon, lat = info.georef.lonlat(np.array([info.width / 2]), np.array([info.height / 2]))
        ok = bool(np.isfinite(lon).all() and np.isfinite(lat).all())
    except Exception as err:  # noqa: BLE001 - pyproj and GDAL raise several types
        ok, why = False, f" ({err})"
    else:
        why = ""
    if not ok:
        raise DataError(f"{path}: its {info.georef.kind} georeference (CRS "
                        f"{_short_crs(info.georef)!r}) cannot be transformed to WGS84 "
                        f"lon/lat{why}; reproject it (gdalwarp -t_srs EPSG:4326) or drop the "
                        "CRS (gdal_edit.py -unsetsrs) to work in scene pixels")


def _short_crs(geo: Georef) -> str:
    try:
        return geo.crs_name()
    except Exception:  # noqa: BLE001 - a CRS pyproj cannot read at all
        return str(geo.crs)[:60]


def valid_mask(values: np.ndarray, nodata: float | None) -> np.ndarray:
    """Boolean mask of ``values``' shape, True where a pixel holds data (not nodata, finite)."""
    ok = np.isfinite(values) if values.dtype.kind == "f" else np.ones(values.shape, bool)
    if nodata is not None and not (isinstance(nodata, float) and np.isnan(nodata)):
        ok &= values != values.dtype.type(nodata)
    return ok


def decimated(info: SceneInfo, max_side: int, cache_mb: int | None = None
              ) -> tuple[np.ndarray, float]:
    """The whole band read at most ``max_side`` pixels a side, and the decimation factor (>= 1).

    GDAL nearest-neighbour decimation, block by block, bounded memory; returns the ``(h, w)``
    array in the band's dtype and the factor ``f`` (scene px per array px).
    """
    import rasterio

    f = max(1.0, max(info.width, info.height) / max_side)
    shape = (max(1, int(round(info.height / f))), max(1, int(round(info.width / f))))
    with gdal_env(cache_mb), quiet(), rasterio.open(info.path) as src:
        return src.read(info.band, out_shape=shape), f


class WindowReader:
    """Reads windows of one band; one instance per thread (rasterio handles are not shared).

    Holds a GDAL environment (cache ``cache_mb``) and an open dataset until :meth:`close`.
    """

    def __init__(self, info: SceneInfo, cache_mb: int | None = None) -> None:
        import rasterio

        self.info = info
        self._env = gdal_env(cache_mb)
        self._env.__enter__()
        self._quiet = quiet()
        self._quiet.__enter__()
        self._src = rasterio.open(info.path)

    def read(self, window: tuple[int, int, int, int]) -> tuple[np.ndarray, np.ndarray]:
        """Values ``(h, w)`` (band dtype) and validity mask of window ``(x0, y0, x1, y1)`` px."""
        from rasterio.windows import Window

        x0, y0, x1, y1 = window
        values = self._src.read(self.info.band, window=Window(x0, y0, x1 - x0, y1 - y0))
        return values, valid_mask(values, self.info.nodata)

    def close(self) -> None:
        """Close the dataset and leave the GDAL environment."""
        self._src.close()
        self._quiet.__exit__(None, None, None)
        self._env.__exit__(None, None, None)
