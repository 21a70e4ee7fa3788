"""Windowed raster access (rasterio): SAR scaled to 8-bit with a validity mask, optical as RGB.

Any format GDAL reads works (GeoTIFF, PNG, JPEG); only the requested windows are read, so a
scene is never held whole in memory.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from saropt.errors import DataError

#: GDAL's block cache, bounded so peak memory does not grow with the scene.
GDAL_ENV = {"GDAL_CACHEMAX": 16 * 1024 * 1024}


def open_raster(path: Path, key: str):
    """Open ``path`` with rasterio (a ``DatasetReader``); errors name the config ``key``.

    Raises:
        DataError: (a SaroptError) when the file does not exist or GDAL cannot read it.
    """
    import rasterio
    from rasterio.errors import NotGeoreferencedWarning, RasterioIOError

    if not Path(path).is_file():
        raise DataError(f"{key}: file {path} does not exist")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", NotGeoreferencedWarning)
            return rasterio.open(path)
    except RasterioIOError as err:
        raise DataError(f"{key}: {path} is not a readable raster ({err})") from None


def read_window(ds, bands: list[int], x0: int, y0: int, w: int, h: int) -> np.ndarray:
    """``(len(bands), h, w)`` array (the raster's dtype) of a window inside the raster.

    ``bands`` are 1-based rasterio band indexes; ``x0``, ``y0``, ``w``, ``h`` in px.
    """
    from rasterio.errors import NotGeoreferencedWarning
    from rasterio.windows import Window

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        return ds.read(bands, window=Window(x0, y0, w, h))


@dataclass
class SarScaler:
    """Maps SAR values to 8-bit: ``(f(v) - lo) / (hi - lo) * 255`` rounded and clipped to 0..255.

    ``f`` is ``20 * log10(amplitude)`` (dB, amplitude floored at 1e-6) for ``db``, the value
    itself for ``linear``; ``lo``/``hi`` are in dB or amplitude units accordingly. ``identity``
    casts uint8 input unchanged.
    """

    method: str  # "identity" (uint8 in) | "db" | "linear"
    lo: float = 0.0
    hi: float = 255.0

    def __call__(self, values: np.ndarray) -> np.ndarray:
        """Raw SAR values (any shape) -> uint8 of the same shape."""
        if self.method == "identity":
            return values.astype(np.uint8)
        v = values.astype(np.float32)
        if self.method == "db":
            v = 20.0 * np.log10(np.maximum(v, 1e-6))
        scaled = (v - self.lo) * (255.0 / max(self.hi - self.lo, 1e-6))
        return np.clip(scaled + 0.5, 0, 255).astype(np.uint8)

    def to_json(self) -> dict:
        """``{"method", "lo", "hi"}`` as recorded in ``registration.json``."""
        return {"method": self.method, "lo": float(self.lo), "hi": float(self.hi)}


class SarSource:
    """Band 1 of the SAR raster: windows as 8-bit plus a valid-data mask.

    ``shape`` is ``(H, W)`` px. ``scaling`` is a ``SarScaling`` config: the percentiles are
    estimated on a decimated read of the whole band (see :class:`SarScaler`). Invalid pixels
    are non-finite values and ``nodata`` (the file's own nodata tag when None).

    Raises:
        DataError: when the file cannot be opened, ``sar_scaling.method`` is ``none`` for
            non-uint8 data, or the band has no valid pixel.
    """

    def __init__(self, path: Path, nodata: float | None, scaling) -> None:
        self.ds = open_raster(path, "sar")
        self.path = Path(path)
        self.shape = (self.ds.height, self.ds.width)
        self.dtype = np.dtype(self.ds.dtypes[0])
        self.nodata = nodata if nodata is not None else self.ds.nodata
        self.scaler = self._fit_scaler(scaling)

    def _valid(self, values: np.ndarray) -> np.ndarray:
        valid = np.isfinite(values) if values.dtype.kind == "f" else np.ones(values.shape, bool)
        if self.nodata is not None:
            valid &= values != self.nodata
        return valid

    def _fit_scaler(self, cfg) -> SarScaler:
        method = cfg.method
        if method == "auto":
            method = "none" if self.dtype == np.uint8 else "percentile_db"
        if method == "none":
            if self.dtype != np.uint8:
                raise DataError(f"sar: {self.path} is {self.dtype}; sar_scaling.method 'none' "
                                "needs uint8 input (use percentile_db or percentile)")
            return SarScaler("identity")
        sample = self.decimated(cfg.sample_side)
        values = sample[self._valid(sample)].astype(np.float64)
        if values.size == 0:
            raise DataError(f"sar: {self.path} has no valid pixels (nodata={self.nodata})")
        if method == "percentile_db":
            values = 20.0 * np.log10(np.maximum(values, 1e-6))
        lo, hi = np.percentile(values, [cfg.low, cfg.high])
        return SarScaler("db" if method == "percentile_db" else "linear", float(lo), float(hi))

    def decimated(self, side: int) -> np.ndarray:
        """The whole band at most ``side`` pixels on its long side (nearest), raw values."""
        h, w = self.shape
        f = max(1.0, max(h, w) / side)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return self.ds.read(1, out_shape=(max(1, int(h / f)), max(1, int(w / f))))

    def read(self, x0: int, y0: int, w: int, h: int) -> tuple[np.ndarray, np.ndarray]:
        """uint8 ``(h, w)`` scaled window at ``(x0, y0)`` px and its bool ``(h, w)`` valid mask."""
        raw = read_window(self.ds, [1], x0, y0, w, h)[0]
        return self.scaler(raw), self._valid(raw)

    def close(self) -> None:
        """Close the rasterio dataset."""
        self.ds.close()


class OpticalSource:
    """The optical raster as uint8 RGB windows (1 band is repeated, a 4th band is ignored).

    ``shape`` is ``(H, W)`` px.

    Raises:
        DataError: when the file cannot be opened, is not uint8, or has other than 1, 3 or 4
            bands.
    """

    def __init__(self, path: Path) -> None:
        self.ds = open_raster(path, "optical")
        self.path = Path(path)
        self.shape = (self.ds.height, self.ds.width)
        if self.ds.dtypes[0] != "uint8":
            raise DataError(f"optical: {path} is {self.ds.dtypes[0]}; expected 8-bit RGB")
        if self.ds.count not in (1, 3, 4):
            raise DataError(f"optical: {path} has {self.ds.count} bands; expected 1, 3 or 4")
        self.bands = [1, 1, 1] if self.ds.count == 1 else [1, 2, 3]

    def read(self, x0: int, y0: int, w: int, h: int) -> np.ndarray:
        """uint8 ``(h, w, 3)`` RGB window at ``(x0, y0)`` px (inside the raster)."""
        if self.ds.count == 1:
            band = read_window(self.ds, [1], x0, y0, w, h)[0]
            return np.repeat(band[:, :, None], 3, axis=2)
        return np.ascontiguousarray(np.moveaxis(read_window(self.ds, self.bands, x0, y0, w, h),
                                                0, -1))

    def close(self) -> None:
        """Close the rasterio dataset."""
        self.ds.close()
