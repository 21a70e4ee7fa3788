"""Tie points from georeferencing: when both GeoTIFFs carry a CRS and geotransform, SAR pixel
centres are taken to map coordinates, reprojected to the optical CRS and into optical pixels."""

from __future__ import annotations

import numpy as np

from saropt.build.tiepoints import SubRegion
from saropt.errors import DataError


def georef_tiepoints(sar_ds, opt_ds, subregions: list[SubRegion], n: int = 8
                     ) -> dict[str, np.ndarray]:
    """An ``n`` x ``n`` grid of tie points per sub-region, from the two rasters' georeferencing."""
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
