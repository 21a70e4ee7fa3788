"""Tie points from georeferencing, and the map side of tie-point files (rasterio).

When both GeoTIFFs carry a CRS and geotransform, SAR pixel centres are taken to map
coordinates, reprojected to the optical CRS and into optical pixels. Also the map side of QGIS
``.points`` files and of GCPs stored in a GeoTIFF: map coordinates placed on a raster by its
geotransform or its own GCPs (:func:`map_to_pixel`).
"""

from __future__ import annotations

import numpy as np

from saropt.build.tiepoints import CORNER_TO_CENTRE, SubRegion
from saropt.errors import DataError


def georef_tiepoints(sar_ds, opt_ds, subregions: list[SubRegion], n: int = 8
                     ) -> dict[str, np.ndarray]:
    """An ``n`` x ``n`` grid of tie points per sub-region, from the two rasters' georeferencing.

    The grid spans each sub-region's bounding box (first to last pixel centre); each SAR pixel
    goes through the SAR geotransform, ``rasterio.warp.transform`` to the optical CRS, and the
    inverse optical geotransform.

    Returns:
        ``{name: (n * n, 4) array of sar_x, sar_y, opt_x, opt_y}`` in builder pixels.

    Raises:
        DataError: when either raster lacks a CRS or a geotransform.
    """
    from rasterio.warp import transform as reproject_xy

    for ds, key in ((sar_ds, "sar"), (opt_ds, "optical")):
        if ds.crs is None or ds.transform.is_identity:
            raise DataError(f"{key}: {ds.name} is not georeferenced; georeference: true needs "
                            "a CRS and geotransform on both rasters (or give tiepoints)")
    out = {}
    for sr in subregions:
        x0, y0, x1, y1 = sr.bbox
        gx, gy = np.meshgrid(np.linspace(x0, x1 - 1, n), np.linspace(y0, y1 - 1, n))
        sx, sy = gx.ravel(), gy.ravel()
        mx, my = sar_ds.transform * (sx + 0.5, sy + 0.5)
        ox, oy = reproject_xy(sar_ds.crs, opt_ds.crs, list(mx), list(my))
        col, row = ~opt_ds.transform * (np.asarray(ox), np.asarray(oy))
        out[sr.name] = np.column_stack([sx, sy, np.asarray(col) - 0.5, np.asarray(row) - 0.5])
    return out


def _crs_of(definition: object) -> object:
    from rasterio.crs import CRS
    from rasterio.errors import CRSError

    if definition is None or isinstance(definition, CRS):
        return definition
    try:
        return CRS.from_user_input(definition)
    except CRSError as err:
        raise DataError(f"cannot read the coordinate reference system {str(definition)[:80]!r}"
                        f" ({err})") from None


def map_to_pixel(ds, xy: np.ndarray, crs: object = None) -> np.ndarray:
    """Map coordinates (N, 2) in ``crs`` (None: the raster's own) -> (N, 2) x, y pixels of ``ds``.

    Pixels are in the builder's convention (centres at integers). ``crs`` is anything
    ``rasterio.crs.CRS.from_user_input`` reads (WKT, ``EPSG:4326``...). The raster is located
    by its geotransform, else by its own GCPs (GDAL's GCP transformer, as rasterio exposes it).

    Raises:
        DataError: ``ds`` has neither a CRS + geotransform nor GCPs, or ``crs`` is unreadable.
    """
    from rasterio.transform import GCPTransformer
    from rasterio.warp import transform as reproject_xy

    gcps, gcp_crs = ds.gcps
    if ds.crs is not None and not ds.transform.is_identity:
        own, locate = ds.crs, None
    elif gcps:
        own, locate = gcp_crs, GCPTransformer(gcps)
    else:
        raise DataError(f"{ds.name} has neither a CRS with a geotransform nor GCPs: map "
                        "coordinates cannot be placed on it")
    xs, ys = xy[:, 0].tolist(), xy[:, 1].tolist()
    crs = _crs_of(crs)
    if crs is not None and own is not None and crs != own:
        xs, ys = reproject_xy(crs, own, xs, ys)
    if locate is None:
        inv, x, y = ~ds.transform, np.asarray(xs, float), np.asarray(ys, float)
        col, row = inv.a * x + inv.b * y + inv.c, inv.d * x + inv.e * y + inv.f
    else:
        row, col = locate.rowcol(xs, ys, op=lambda v: v)
    return np.column_stack([np.asarray(col, float), np.asarray(row, float)]) + CORNER_TO_CENTRE


def oriented(source_px: np.ndarray, other_px: np.ndarray, source_image: str) -> np.ndarray:
    """(N, 4) ``sar_x, sar_y, opt_x, opt_y`` from source-image and other-image pixels.

    ``source_px`` are ``(N, 2)`` pixels of the file's source image (``"sar"`` or
    ``"optical"``), ``other_px`` those of the other image.

    Raises:
        DataError: when ``source_image`` is neither ``"sar"`` nor ``"optical"``.
    """
    if source_image not in ("sar", "optical"):
        raise DataError(f"source_image must be sar or optical, got {source_image!r}")
    sar, opt = (source_px, other_px) if source_image == "sar" else (other_px, source_px)
    return np.column_stack([sar, opt])


def qgis_tiepoints(path, source_image: str, sar_ds, opt_ds) -> tuple[np.ndarray, int]:
    """Tie points (N, 4) from a QGIS ``.points`` file that georeferences ``source_image``.

    The file's map coordinates are placed on the other raster (:func:`map_to_pixel`); without a
    ``#CRS`` line they are taken to be in the other raster's CRS.

    Returns:
        ``(points, disabled)``: ``(N, 4)`` sar_x, sar_y, opt_x, opt_y px, and the number of
        disabled rows left out.

    Raises:
        DataError: as :func:`saropt.build.tiepoints.read_qgis_points` and
            :func:`map_to_pixel`.
    """
    from saropt.build.tiepoints import read_qgis_points

    pts = read_qgis_points(path)
    other = opt_ds if source_image == "sar" else sar_ds
    return oriented(pts.source, map_to_pixel(other, pts.map, pts.crs), source_image), \
        pts.disabled


def envi_tiepoints(path, source_image: str) -> np.ndarray:
    """Tie points (N, 4) from an ENVI image-to-image ``.pts`` file.

    Its *warp* image is ``source_image`` (the base image is the other).

    Raises:
        DataError: as :func:`saropt.build.tiepoints.read_envi_pts`.
    """
    from saropt.build.tiepoints import read_envi_pts

    base, warp = read_envi_pts(path)
    return oriented(warp, base, source_image)


def gcp_tiepoints(which: str, sar_ds, opt_ds) -> np.ndarray:
    """Tie points (N, 4) from the GCPs stored in the ``which`` raster (``"sar"``/``"optical"``).

    Each GCP's pixel/line (GDAL: corner-based, centre of the first pixel at
    0.5) on that raster, its map position placed on the other raster by
    :func:`map_to_pixel`.

    Raises:
        DataError: the raster holds no GCPs, or the other cannot place map coordinates.
    """
    ds, other = (sar_ds, opt_ds) if which == "sar" else (opt_ds, sar_ds)
    gcps, crs = ds.gcps
    if not gcps:
        raise DataError(f"gcps: {which}: {ds.name} stores no GCPs (set gcps to the raster that "
                        "has them, or give tiepoints)")
    src = np.array([[g.col, g.row] for g in gcps], float) + CORNER_TO_CENTRE
    mp = np.array([[g.x, g.y] for g in gcps], float)
    return oriented(src, map_to_pixel(other, mp, crs), which)
