"""Bilinear warping of the optical onto a window of the SAR grid (``cv2.remap``), reading only
the optical window that the SAR window maps into."""

from __future__ import annotations

import cv2
import numpy as np

from saropt.build.rasters import OpticalSource
from saropt.build.register import Fit, map_coords


def warp_window(fit: Fit, optical: OpticalSource, x0: int, y0: int, w: int, h: int,
                step: int = 8) -> tuple[np.ndarray, np.ndarray]:
    """(h, w, 3) uint8 optical resampled on the SAR window, and its validity mask (pixels whose
    optical position lies inside the optical raster)."""
    mx, my = map_coords(fit, x0, y0, w, h, step)
    oh, ow = optical.shape
    valid = (mx >= 0) & (mx <= ow - 1) & (my >= 0) & (my <= oh - 1)
    out = np.zeros((h, w, 3), np.uint8)
    if not valid.any():
        return out, valid
    ox0, oy0 = int(np.floor(mx[valid].min())), int(np.floor(my[valid].min()))
    ox1 = min(ow, int(np.floor(mx[valid].max())) + 2)
    oy1 = min(oh, int(np.floor(my[valid].max())) + 2)
    src = optical.read(ox0, oy0, ox1 - ox0, oy1 - oy0)
    mx -= ox0
    my -= oy0
    warped = cv2.remap(src, mx, my, interpolation=cv2.INTER_LINEAR,
                       borderMode=cv2.BORDER_REPLICATE)
    if valid.all():
        return warped, valid
    out[valid] = warped[valid]
    return out, valid
