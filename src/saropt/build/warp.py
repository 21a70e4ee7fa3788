"""Bilinear warping of the optical onto a window of the SAR grid (``cv2.remap``).

Only the optical window that the SAR window maps into is read. The optical image is resampled
onto the fixed SAR grid by bilinear interpolation, as in paper 002 section II.E (paper 003
Algorithm 1 step 5).
"""

from __future__ import annotations

import cv2
import numpy as np

from saropt.build.rasters import OpticalSource
from saropt.build.register import Fit, map_coords


def warp_window(fit: Fit, optical: OpticalSource, x0: int, y0: int, w: int, h: int,
                step: int = 8) -> tuple[np.ndarray, np.ndarray]:
    """Optical resampled on the SAR window ``(x0, y0, w, h)`` (SAR px), and its validity mask.

    ``fit`` maps SAR to optical pixels (:func:`saropt.build.register.map_coords`, evaluated
    exactly every ``step`` px for the non-linear models); OpenCV ``cv2.remap`` with
    ``INTER_LINEAR`` does the bilinear resampling.

    Returns:
        ``(image, valid)``: uint8 ``(h, w, 3)`` (zero where invalid) and bool ``(h, w)``, true
        where the pixel's optical position lies inside the optical raster.
    """
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
