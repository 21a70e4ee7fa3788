"""Smooth random fields: white noise upsampled with cubic interpolation (fast, vectorised)."""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np


def smooth_noise(rng: np.random.Generator, shape: tuple[int, int], scale: float) -> np.ndarray:
    """Zero-mean, unit-std float32 field with correlation length about ``scale`` pixels."""
    h, w = shape
    if scale <= 1:
        return rng.standard_normal((h, w), dtype=np.float32)
    s = float(scale)
    sh, sw = int(np.ceil(h / s)) + 4, int(np.ceil(w / s)) + 4
    small = rng.standard_normal((sh, sw), dtype=np.float32)
    big = cv2.resize(small, (int(sw * s), int(sh * s)), interpolation=cv2.INTER_CUBIC)
    o = int(2 * s)
    field = big[o:o + h, o:o + w]
    std = float(field[:: max(1, h // 256), :: max(1, w // 256)].std()) or 1.0
    return field / std


def fractal_noise(rng: np.random.Generator, shape: tuple[int, int], scales: Sequence[float],
                  weights: Sequence[float] | None = None) -> np.ndarray:
    """Weighted sum of smooth fields at several scales, normalised to unit std."""
    weights = weights or [0.5 ** i for i in range(len(scales))]
    out = np.zeros(shape, np.float32)
    for s, wgt in zip(scales, weights):
        out += np.float32(wgt) * smooth_noise(rng, shape, s)
    return out / np.float32(np.sqrt(sum(w * w for w in weights)))
