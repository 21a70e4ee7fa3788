"""Smooth random fields: white noise upsampled with cubic interpolation (fast, vectorised).

Multi-scale fields are summed on a coarse grid (a quarter of the finest scale) and upsampled
once, so a full-size field costs one ``cv2.resize`` whatever the number of scales.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np


def _upsample(small: np.ndarray, factor: int, shape: tuple[int, int], offset: int) -> np.ndarray:
    h, w = shape
    sh, sw = small.shape
    big = cv2.resize(small, (sw * factor, sh * factor), interpolation=cv2.INTER_CUBIC)
    return big[offset:offset + h, offset:offset + w]


def _normalise(field: np.ndarray) -> np.ndarray:
    h, w = field.shape
    sub = field[:: max(1, h // 256), :: max(1, w // 256)]
    field -= np.float32(sub.mean())
    field /= np.float32(sub.std() or 1.0)
    return field


def smooth_noise(rng: np.random.Generator, shape: tuple[int, int], scale: float) -> np.ndarray:
    """Zero-mean, unit-std float32 field with correlation length about ``scale`` pixels."""
    return fractal_noise(rng, shape, [scale], [1.0])


def fractal_noise(rng: np.random.Generator, shape: tuple[int, int], scales: Sequence[float],
                  weights: Sequence[float] | None = None) -> np.ndarray:
    """Weighted sum of smooth fields at several scales (pixels), normalised to unit std.

    Returns a zero-mean float32 ``shape`` array; ``weights`` default to ``0.5 ** i``. Scales
    below 2 px count as 2 px.
    """
    weights = list(weights or [0.5 ** i for i in range(len(scales))])
    h, w = shape
    scales = [max(2.0, float(s)) for s in scales]  # finer than 2 px is plain white noise
    factor = max(1, int(min(scales) // 4))
    ch, cw = -(-h // factor) + 4, -(-w // factor) + 4
    coarse = np.zeros((ch, cw), np.float32)
    for s, wgt in zip(scales, weights):
        s_c = s / factor
        nh, nw = int(np.ceil(ch / s_c)) + 4, int(np.ceil(cw / s_c)) + 4
        small = rng.standard_normal((nh, nw), dtype=np.float32)
        layer = cv2.resize(small, (int(nw * s_c), int(nh * s_c)), interpolation=cv2.INTER_CUBIC)
        o = int(2 * s_c)
        layer = _normalise(layer[o:o + ch, o:o + cw].copy())
        coarse += np.float32(wgt) * layer
    field = _upsample(coarse, factor, shape, 2 * factor) if factor > 1 else coarse[:h, :w]
    return _normalise(np.ascontiguousarray(field))
