"""Automatic screening of patch pairs, replacing the paper's manual inspection where it can.

* **texture** (per modality): standard deviation (grey levels) of the patch block-averaged 8x8,
  which suppresses SAR speckle (by ~8x) but keeps structure; calm sea and flat areas score low.
* **seam** (optical): mosaicking seamlines are straight steps across the whole patch. For every
  row (and column) boundary, and lines tilted up to ~3 degrees, the median over the line of the
  signed 2-pixel step; the score is the largest |median| over the robust spread (1.4826 MAD, at
  least 1 grey level) of those medians. Texture and short edges give medians near zero; a seam
  gives one line far out. The score is multiplied by the ratio of the weaker to the stronger
  side's local texture (mean absolute difference along the line in 24-px bands on either
  side), so a coastline (textured land against flat sea) is not a seam while a brightness jump
  inside texture is.
* **near-duplicates**: 64-bit DCT perceptual hashes of the SAR and optical patches; a patch whose
  two hashes are both within ``duplicate_max_hamming`` bits of one already kept patch is dropped.
"""

from __future__ import annotations

import cv2
import numpy as np

TILTS = np.tan(np.deg2rad([-3.0, -1.5, 0.0, 1.5, 3.0]))


def to_gray(img: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(img, cv2.COLOR_RGB2GRAY) if img.ndim == 3 else img


def texture_score(img: np.ndarray, factor: int = 8) -> float:
    """Standard deviation of the ``factor``-times block-averaged grey image."""
    g = to_gray(img).astype(np.float32)
    h, w = g.shape
    small = cv2.resize(g, (max(2, w // factor), max(2, h // factor)),
                       interpolation=cv2.INTER_AREA)
    return float(small.std())


def _line_medians(g: np.ndarray) -> np.ndarray:
    """Median 2-pixel step along every (slightly tilted) row boundary: (tilts, rows)."""
    d = g[2:, :] - g[:-2, :]
    n, w = d.shape
    cols = np.arange(w)
    out = []
    for t in TILTS:
        off = np.round(t * (cols - w / 2)).astype(int)
        rows = np.arange(n)[:, None] + off[None, :]
        inside = (rows >= 0) & (rows < n)
        vals = np.where(inside, d[np.clip(rows, 0, n - 1), cols[None, :]], np.nan)
        ok = inside.mean(axis=1) > 0.9
        out.append(np.where(ok, np.nanmedian(vals, axis=1), 0.0))
    return np.asarray(out)


def seam_score(img: np.ndarray, band: int = 24) -> float:
    """How far the strongest straight full-length step stands out (see module docstring)."""
    g = to_gray(img).astype(np.float32)
    scores = []
    for arr in (g, g.T):
        m = _line_medians(arr)
        spread = max(1.4826 * float(np.median(np.abs(m - np.median(m)))), 1.0)
        t, r = np.unravel_index(int(np.argmax(np.abs(m))), m.shape)
        scores.append(float(np.abs(m[t, r])) / spread * _side_balance(arr, r + 1, band))
    return max(scores)


def _side_balance(g: np.ndarray, row: int, band: int) -> float:
    """min/max of the local texture (std of the row-to-row step) in bands above and below."""
    d = np.abs(np.diff(g, axis=1))
    above, below = d[max(0, row - band - 2):max(0, row - 2)], d[row + 2:row + band + 2]
    if above.size == 0 or below.size == 0:
        return 0.0
    a, b = float(above.mean()), float(below.mean())
    return min(a, b) / max(a, b, 1.0)


def phash(img: np.ndarray) -> int:
    """64-bit DCT perceptual hash (low 8x8 frequencies of a 32x32 version vs their median)."""
    small = cv2.resize(to_gray(img).astype(np.float32), (32, 32), interpolation=cv2.INTER_AREA)
    low = cv2.dct(small)[:8, :8].ravel()
    bits = low > np.median(low[1:])
    return int(np.packbits(bits.astype(np.uint8)).view(">u8")[0])


class DuplicateIndex:
    """Hashes of kept patches; ``query`` gives the closest kept patch by max(Hamming SAR, opt)."""

    def __init__(self) -> None:
        self.sar = np.zeros(0, np.uint64)
        self.opt = np.zeros(0, np.uint64)
        self.ids: list[int] = []

    def query(self, h_sar: int, h_opt: int) -> tuple[int | None, int | None]:
        if not self.ids:
            return None, None
        d = np.maximum(np.bitwise_count(self.sar ^ np.uint64(h_sar)),
                       np.bitwise_count(self.opt ^ np.uint64(h_opt)))
        i = int(np.argmin(d))
        return int(d[i]), self.ids[i]

    def add(self, h_sar: int, h_opt: int, pid: int) -> None:
        self.sar = np.append(self.sar, np.uint64(h_sar))
        self.opt = np.append(self.opt, np.uint64(h_opt))
        self.ids.append(pid)
