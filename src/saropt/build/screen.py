"""Automatic screening of patch pairs, replacing the paper's manual inspection where it can.

The paper removes, by eye, patches without meaningful texture (texture-less sea), with visible
mosaicking seamlines, or with similar scenes (paper 002 section II.G, paper 003 Algorithm 1
step 7). Scores (OpenCV for resizing, DCT and shearing):

* **texture** (per modality): standard deviation (grey levels) of the patch block-averaged 8x8,
  which suppresses SAR speckle (by ~8x) but keeps structure; calm sea and flat areas score low.
* **seam** (optical): mosaicking seamlines are straight brightness steps across the whole
  patch. For every row (and column) line, tilted up to 3 degrees, the median over the line of
  the signed grey-level step across 2 px and across 24 px; the line's step is the smaller of
  the two when they agree in sign (a seam persists on both scales, the two edges of a road
  cancel across 24 px), else 0; texture and short edges give medians near zero. The score (grey
  levels) is the strongest line's step times the ratio of the weaker to the stronger side's
  local texture (mean absolute difference along the line in 24-px bands on either side), so a
  coastline (textured land against flat sea) is not a seam while a brightness jump inside
  texture is.
* **near-duplicates**: 64-bit DCT perceptual hashes of the SAR and optical patches; a patch whose
  two hashes are both within ``duplicate_max_hamming`` bits of one already kept patch is dropped.
"""

from __future__ import annotations

import cv2
import numpy as np

TILTS = np.tan(np.deg2rad([-3.0, -1.5, 0.0, 1.5, 3.0]))


def to_gray(img: np.ndarray) -> np.ndarray:
    """``(H, W, 3)`` RGB -> ``(H, W)`` grey (``cv2.COLOR_RGB2GRAY``); ``(H, W)`` as it is."""
    return cv2.cvtColor(img, cv2.COLOR_RGB2GRAY) if img.ndim == 3 else img


def texture_score(img: np.ndarray, factor: int = 8) -> float:
    """Standard deviation (grey levels) of the ``factor``-times block-averaged grey image.

    ``img``: ``(H, W)`` or ``(H, W, 3)`` RGB, 0..255; averaged by ``cv2.INTER_AREA`` to at
    least 2 x 2 px. Always >= 0; calm sea and flat areas score low.
    """
    g = to_gray(img).astype(np.float32)
    h, w = g.shape
    small = cv2.resize(g, (max(2, w // factor), max(2, h // factor)),
                       interpolation=cv2.INTER_AREA)
    return float(small.std())


def _line_medians(g: np.ndarray, gap: int) -> np.ndarray:
    """Median (upper) step ``g[c + gap] - g[c - gap]`` along every (slightly tilted) line.

    Lines run through row ``c``, for ``c`` in ``[gap, n - gap)``: shape (tilts, n - 2 * gap).
    Each tilt shears the image so its lines become rows; lines that would leave the patch get 0.
    """
    h, w = g.shape
    n = h - 2 * gap
    out = np.zeros((len(TILTS), n), np.float32)
    for i, t in enumerate(TILTS):
        shear = np.float32([[1, 0, 0], [t, 1, -t * w / 2]])  # row y of output = y + t (x - w/2)
        sheared = g if t == 0 else cv2.warpAffine(g, shear, (w, h), flags=cv2.INTER_NEAREST
                                                  | cv2.WARP_INVERSE_MAP)
        d = sheared[2 * gap:] - sheared[:-2 * gap]
        m = int(np.ceil(abs(t) * w / 2)) + 1
        lo, hi = m, n - m
        if hi > lo:
            out[i, lo:hi] = np.partition(d[lo:hi], w // 2, axis=1)[:, w // 2]
    return out


def _persistent_steps(g: np.ndarray, wide: int = 12) -> np.ndarray:
    """Line steps seen both across 2 px and across ``2 * wide`` px.

    Same sign: the smaller magnitude; 0 otherwise. A seam persists on both scales, the two edges
    of a road cancel on the wide one.
    """
    narrow = _line_medians(g, 1)[:, wide - 1:g.shape[0] - wide - 1]
    broad = _line_medians(g, wide)
    same = np.sign(narrow) == np.sign(broad)
    return np.where(same, np.minimum(np.abs(narrow), np.abs(broad)), 0.0)


def seam_score(img: np.ndarray, band: int = 24, wide: int = 12) -> float:
    """How far the strongest straight full-length step stands out (see module docstring).

    ``img``: ``(H, W)`` or ``(H, W, 3)`` RGB, 0..255. Score in grey levels (0..255), 0 for a
    patch with no persistent step; rows and columns, tilted up to 3 degrees, are both tried.
    ``band`` and ``wide`` in px.
    """
    g = to_gray(img).astype(np.float32)
    scores = []
    for arr in (g, np.ascontiguousarray(g.T)):
        if arr.shape[0] <= 2 * wide + 2:
            continue
        z = _persistent_steps(arr, wide)  # grey levels
        t, r = np.unravel_index(int(np.argmax(z)), z.shape)
        scores.append(float(z[t, r]) * _side_balance(arr, r + wide, band))
    return max(scores, default=0.0)


def _side_balance(g: np.ndarray, row: int, band: int) -> float:
    """min/max of the local texture (mean |difference along the line|) in bands either side."""
    above = np.abs(np.diff(g[max(0, row - band - 1):max(0, row - 1)], axis=1))
    below = np.abs(np.diff(g[row + 1:row + band + 1], axis=1))
    if above.size == 0 or below.size == 0:
        return 0.0
    a, b = float(above.mean()), float(below.mean())
    return min(a, b) / max(a, b, 1.0)


def phash(img: np.ndarray) -> int:
    """64-bit DCT perceptual hash (low 8x8 frequencies of a 32x32 version vs their median).

    ``img``: ``(H, W)`` or ``(H, W, 3)`` RGB. Compare two hashes by the Hamming distance of
    their bits (0..64); the median leaves out the DC term.
    """
    small = cv2.resize(to_gray(img).astype(np.float32), (32, 32), interpolation=cv2.INTER_AREA)
    low = cv2.dct(small)[:8, :8].ravel()
    bits = low > np.median(low[1:])
    return int(np.packbits(bits.astype(np.uint8)).view(">u8")[0])


class DuplicateIndex:
    """Hashes of kept patches; ``query`` gives the closest kept patch by max(Hamming SAR, opt).

    A pair is a near-duplicate of a kept one when both its SAR and its optical hash are close,
    i.e. the larger of the two Hamming distances is small.
    """

    def __init__(self) -> None:
        self.hashes = np.zeros((1024, 2), np.uint64)
        self.ids: list[int] = []

    def query(self, h_sar: int, h_opt: int) -> tuple[int | None, int | None]:
        """``(distance, id)`` of the closest kept pair (max of the two Hamming distances, bits).

        ``(None, None)`` while nothing is kept.
        """
        n = len(self.ids)
        if n == 0:
            return None, None
        h = self.hashes[:n]
        d = np.maximum(np.bitwise_count(h[:, 0] ^ np.uint64(h_sar)),
                       np.bitwise_count(h[:, 1] ^ np.uint64(h_opt)))
        i = int(np.argmin(d))
        return int(d[i]), self.ids[i]

    def add(self, h_sar: int, h_opt: int, pid: int) -> None:
        """Record the hashes of kept pair ``pid``."""
        n = len(self.ids)
        if n == len(self.hashes):
            self.hashes = np.concatenate([self.hashes, np.zeros_like(self.hashes)])
        self.hashes[n] = (h_sar, h_opt)
        self.ids.append(pid)
