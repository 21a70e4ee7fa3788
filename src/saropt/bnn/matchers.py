"""Library baselines for SAR-optical localisation: costs over template offsets, lower is better.

Each baseline is a *cost* over template offsets, as :mod:`saropt.bnn.locate` expects. Paper 003
(section 1) names cross-correlation and mutual information as the signal-based similarity
measures widely used for optical-SAR matching:

* ``ncc``: 1 - normalised cross-correlation of intensities (OpenCV ``matchTemplate``,
  ``TM_CCOEFF_NORMED``), the whole window in one call.
* ``ncc_grad``: the same on gradient magnitudes (Sobel of the Gaussian-smoothed image,
  sigma 1.5 px, which tames SAR speckle), the usual answer to SAR-optical contrast reversal.
* ``mi``: -normalised mutual information (H(A) + H(B)) / H(A, B) of 32-bin joint grey-level
  histograms (Studholme et al. 1999; the standard histogram estimator, equal to
  ``skimage.metrics.normalized_mutual_information``), position by position.

Images: the SAR template ``(T, T)`` grey, the optical search window ``(T + 2R, T + 2R)`` grey or
``(.., .., 3)`` RGB, uint8 or float. An offset ``(dx, dy)`` puts the template's top-left corner at
``(R + dx, R + dy)`` of the search window (x = column). No torch import here.
"""

from __future__ import annotations

from collections.abc import Callable

import cv2
import numpy as np

from saropt.errors import SaroptError

CostFn = Callable[[np.ndarray], np.ndarray]


def grey(img: np.ndarray) -> np.ndarray:
    """float32 grey image ``(H, W)`` of an ``(H, W)``, ``(H, W, 1)`` or ``(H, W, 3)`` array.

    RGB is converted with OpenCV's ``COLOR_RGB2GRAY`` weights (0.299 R + 0.587 G + 0.114 B, ITU-R
    BT.601), values unscaled. Raises :class:`SaroptError` for other shapes.
    """
    a = np.asarray(img)
    if a.ndim == 3:
        if a.shape[2] == 1:
            a = a[:, :, 0]
        else:
            a = cv2.cvtColor(np.ascontiguousarray(a[:, :, :3]).astype(np.float32),
                             cv2.COLOR_RGB2GRAY)
    if a.ndim != 2:
        raise SaroptError(f"expected an (H, W) or (H, W, 3) image, got shape {a.shape}")
    return a.astype(np.float32, copy=False)


def gradient_magnitude(img: np.ndarray, sigma: float = 1.5) -> np.ndarray:
    """|Sobel| (3x3) of the grey image smoothed by a Gaussian of ``sigma`` px, float32 (H, W)."""
    g = cv2.GaussianBlur(grey(img), (0, 0), sigma)
    gx = cv2.Sobel(g, cv2.CV_32F, 1, 0, ksize=3)
    gy = cv2.Sobel(g, cv2.CV_32F, 0, 1, ksize=3)
    return cv2.magnitude(gx, gy)


def window_radius(template: np.ndarray, search: np.ndarray) -> int:
    """R (px) such that the search window is the template plus R on every side.

    Raises :class:`SaroptError` unless both are square and the window is the template + 2R.
    """
    t, s = np.asarray(template).shape[:2], np.asarray(search).shape[:2]
    if t[0] != t[1] or s[0] != s[1]:
        raise SaroptError(f"template {t} and search window {s} must be square")
    if (s[0] - t[0]) % 2 or s[0] < t[0]:
        raise SaroptError(f"search window {s[0]} px must be the template {t[0]} px + 2 R")
    return (s[0] - t[0]) // 2


class NCCMatcher:
    """Cost 1 - NCC (``cv2.matchTemplate``, ``TM_CCOEFF_NORMED``), in [0, 2].

    On grey intensities or, with ``gradient=True``, on gradient magnitudes
    (:func:`gradient_magnitude` with ``sigma`` px). A NaN score counts as NCC 0 (cost 1).
    """

    exhaustive = True  # the whole map costs about as much as a few positions

    def __init__(self, gradient: bool = False, sigma: float = 1.5) -> None:
        self.gradient, self.sigma = gradient, sigma
        self.name = "ncc_grad" if gradient else "ncc"

    def _prep(self, img: np.ndarray) -> np.ndarray:
        return gradient_magnitude(img, self.sigma) if self.gradient else grey(img)

    def cost_map(self, template: np.ndarray, search: np.ndarray) -> np.ndarray:
        """The whole cost map ``(2R + 1, 2R + 1)`` float64, indexed ``[dy + R, dx + R]``."""
        window_radius(template, search)
        r = cv2.matchTemplate(self._prep(search), self._prep(template), cv2.TM_CCOEFF_NORMED)
        return 1.0 - np.nan_to_num(r, nan=0.0).astype(np.float64)

    def cost_fn(self, template: np.ndarray, search: np.ndarray) -> CostFn:
        """Cost function: ``(K, 2)`` offsets (dx, dy) -> ``(K,)`` costs (from :meth:`cost_map`)."""
        full = self.cost_map(template, search)
        r = (full.shape[0] - 1) // 2
        return lambda off: full[off[:, 1] + r, off[:, 0] + r]


def quantise(img: np.ndarray, bins: int) -> np.ndarray:
    """Grey levels to ``bins`` equal-width bins over the image's own [min, max], int64 (H, W)."""
    g = grey(img)
    lo, hi = float(g.min()), float(g.max())
    q = np.floor((g - lo) * (bins / max(hi - lo, 1e-12))).astype(np.int64)
    return np.clip(q, 0, bins - 1)


def entropy(counts: np.ndarray) -> float:
    """Shannon entropy (nats) of a histogram of counts (any shape; empty bins ignored)."""
    p = counts[counts > 0].astype(np.float64)
    p /= p.sum()
    return float(-(p * np.log(p)).sum())


def normalized_mutual_information(a: np.ndarray, b: np.ndarray, bins: int = 32) -> float:
    """Normalised mutual information (H(A) + H(B)) / H(A, B) of two same-shape images, in [1, 2].

    Studholme et al. 1999; ``bins``-bin histograms over each image's own range, equal to
    ``skimage.metrics.normalized_mutual_information(a, b, bins=bins)`` (tested).
    """
    qa, qb = quantise(a, bins), quantise(b, bins)
    return _nmi(qa.ravel(), qb.ravel(), bins)


def _nmi(qa: np.ndarray, qb: np.ndarray, bins: int) -> float:
    joint = np.bincount(qa * bins + qb, minlength=bins * bins).reshape(bins, bins)
    h_ab = entropy(joint)
    return (entropy(joint.sum(1)) + entropy(joint.sum(0))) / max(h_ab, 1e-12)


class MIMatcher:
    """Cost -NMI (in [-2, -1]) of the template and the optical window at each offset.

    :func:`normalized_mutual_information` with ``bins`` bins, except that the optical window is
    quantised once over the whole search window's range (not each window's own).
    """

    exhaustive = False
    name = "mi"

    def __init__(self, bins: int = 32) -> None:
        self.bins = bins

    def cost_fn(self, template: np.ndarray, search: np.ndarray) -> CostFn:
        """A cost function ``(K, 2)`` offsets (dx, dy) -> ``(K,)`` costs, one histogram each."""
        r = window_radius(template, search)
        t = template.shape[0]
        qt = quantise(template, self.bins).ravel()
        qs = quantise(search, self.bins)

        def costs(off: np.ndarray) -> np.ndarray:
            out = np.empty(len(off))
            for k, (dx, dy) in enumerate(off):
                win = qs[r + dy:r + dy + t, r + dx:r + dx + t]
                out[k] = -_nmi(qt, win.ravel(), self.bins)
            return out

        return costs


BASELINES = ("ncc", "ncc_grad", "mi")


def make_baseline(name: str) -> NCCMatcher | MIMatcher:
    """A library baseline by name: ``ncc``, ``ncc_grad`` or ``mi``; :class:`SaroptError` else."""
    if name == "ncc":
        return NCCMatcher(gradient=False)
    if name == "ncc_grad":
        return NCCMatcher(gradient=True)
    if name == "mi":
        return MIMatcher()
    raise SaroptError(f"unknown matcher {name!r}; baselines: {', '.join(BASELINES)}")
