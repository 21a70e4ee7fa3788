"""Exact geometric truth between the SAR grid and the optical grid.

The model maps optical pixels to SAR pixels, ``sar = A @ opt + t + d(opt)`` with a mild smooth
non-linear term ``d_k(opt) = amp_k * sin(2 pi (f_k . opt) / norm + phase_k)`` (pixels, 0-based,
x = column, pixel centres at integers). ``opt_to_sar`` is closed form; ``sar_to_opt`` inverts it
by fixed-point iteration to machine precision (the non-linear term is a strong contraction).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from saropt.errors import DataError


@dataclass(frozen=True)
class SceneMapping:
    """Optical <-> SAR pixel mapping: affine plus a mild sinusoidal term (see module doc)."""

    A: np.ndarray  # (2, 2)
    t: np.ndarray  # (2,)
    amp: np.ndarray  # (2,) pixels
    freq: np.ndarray  # (2, 2) cycles per ``norm`` pixels, row k for output coordinate k
    phase: np.ndarray  # (2,) radians
    norm: float

    def _nonlinear(self, opt: np.ndarray) -> np.ndarray:
        arg = (2 * np.pi / self.norm) * _apply(self.freq, opt) + self.phase
        return np.sin(arg) * self.amp

    def opt_to_sar(self, xy: np.ndarray) -> np.ndarray:
        """(N, 2) optical pixel coordinates -> (N, 2) SAR pixel coordinates.

        Raises:
            ValueError: when ``xy`` is not ``(N, 2)``.
        """
        opt = _as_points(xy)
        return _apply(self.A, opt) + self.t + self._nonlinear(opt)

    def sar_to_opt(self, xy: np.ndarray, iterations: int = 30) -> np.ndarray:
        """(N, 2) SAR pixel coordinates -> (N, 2) optical pixel coordinates (exact inverse)."""
        sar = _as_points(xy)
        a_inv = np.linalg.inv(self.A)
        base = _apply(a_inv, sar - self.t)
        opt = base
        for _ in range(iterations):
            new = base - _apply(a_inv, self._nonlinear(opt))
            if np.max(np.abs(new - opt), initial=0.0) < 1e-10:
                return new
            opt = new
        return opt

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready parameters with the formula (as written to ``truth.json``)."""
        return {"model": "affine+sine",
                "formula": "sar = A @ opt + t + amp * sin(2*pi*(freq @ opt)/norm + phase)",
                "A": self.A.tolist(), "t": self.t.tolist(), "amp": self.amp.tolist(),
                "freq": self.freq.tolist(), "phase": self.phase.tolist(), "norm": self.norm}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> SceneMapping:
        """The mapping of a :meth:`to_dict` dict.

        Raises:
            DataError: when a key is missing or a value has the wrong shape.
        """
        try:
            return cls(A=np.asarray(d["A"], float).reshape(2, 2),
                       t=np.asarray(d["t"], float).reshape(2),
                       amp=np.asarray(d["amp"], float).reshape(2),
                       freq=np.asarray(d["freq"], float).reshape(2, 2),
                       phase=np.asarray(d["phase"], float).reshape(2), norm=float(d["norm"]))
        except (KeyError, ValueError, TypeError) as err:
            raise DataError(f"mapping dict is not a SceneMapping ({err!r})") from None


def _apply(m: np.ndarray, pts: np.ndarray) -> np.ndarray:
    """``pts @ m.T`` for (N, 2) points, written out.

    numpy's matmul is slow on tall 2-column arrays.
    """
    x, y = pts[:, 0], pts[:, 1]
    return np.stack([m[0, 0] * x + m[0, 1] * y, m[1, 0] * x + m[1, 1] * y], 1)


def _as_points(xy: np.ndarray) -> np.ndarray:
    pts = np.asarray(xy, dtype=np.float64)
    if pts.ndim != 2 or pts.shape[1] != 2:
        raise ValueError(f"expected an (N, 2) array of x, y points, got shape {pts.shape}")
    return pts


def random_mapping(rng: np.random.Generator, sar_shape: tuple[int, int], strength: float,
                   rotation_deg: float, scale_jitter: float, shear: float, nonlinear_px: float,
                   margin: int = 8) -> tuple[SceneMapping, tuple[int, int]]:
    """A random mapping and the optical grid shape (H, W) that covers the whole SAR scene.

    ``rotation_deg`` (degrees), ``scale_jitter``, ``shear`` and ``nonlinear_px`` (px) are the
    largest values, all scaled by ``strength``; the sine amplitude is capped so the map stays
    invertible. ``margin`` px of optical border around the SAR footprint.
    """
    h, w = sar_shape
    rot = np.deg2rad(rng.uniform(-1, 1) * rotation_deg * strength)
    sx, sy = 1 + rng.uniform(-1, 1, 2) * scale_jitter * strength
    sh = rng.uniform(-1, 1) * shear * strength
    c, s = np.cos(rot), np.sin(rot)
    opt_from_sar = np.array([[c, -s], [s, c]]) @ np.array([[sx, sh], [0.0, sy]])
    corners = np.array([[0, 0], [w - 1, 0], [0, h - 1], [w - 1, h - 1]], float)
    oc = corners @ opt_from_sar.T
    freq = rng.uniform(0.4, 1.2, (2, 2)) * rng.choice([-1, 1], (2, 2))
    # keep the non-linear term a mild contraction (slope <= 0.2) so the map stays invertible and
    # the fixed-point inverse converges fast, also on small scenes
    max_amp = 0.2 * max(h, w) / (2 * np.pi * float(np.linalg.norm(freq, axis=1).max()))
    amp = np.minimum(rng.uniform(0.5, 1.0, 2) * nonlinear_px * strength, max_amp)
    lo = oc.min(0) - margin - amp.max()
    shape_xy = np.ceil(oc.max(0) - lo + margin + amp.max()).astype(int) + 1
    a = np.linalg.inv(opt_from_sar)
    # sar = A @ (opt_aff) with opt_aff = opt_from_sar @ sar - lo  =>  sar = A @ (opt + lo)
    t = a @ lo
    mapping = SceneMapping(A=a, t=t, amp=amp, freq=freq, phase=rng.uniform(0, 2 * np.pi, 2),
                           norm=float(max(h, w)))
    return mapping, (int(shape_xy[1]), int(shape_xy[0]))


def grid_sar_coords(mapping: SceneMapping, opt_shape: tuple[int, int], row0: int,
                    row1: int) -> tuple[np.ndarray, np.ndarray]:
    """SAR x and y (float32 maps for ``cv2.remap``) of optical rows ``row0:row1``.

    Same formula as ``opt_to_sar``, evaluated separably: the affine part and the sine of a linear
    argument split into products of per-column and per-row terms (fast on big grids).
    """
    x = np.arange(opt_shape[1], dtype=np.float64)
    y = np.arange(row0, row1, dtype=np.float64)
    k = 2 * np.pi / mapping.norm
    maps = []
    for i in range(2):
        ax = k * mapping.freq[i, 0] * x
        by = k * mapping.freq[i, 1] * y + mapping.phase[i]
        a = mapping.amp[i]
        col = (mapping.A[i, 0] * x)[None, :].astype(np.float32)
        row = (mapping.A[i, 1] * y + mapping.t[i])[:, None].astype(np.float32)
        m = col + row
        m += (a * np.cos(by))[:, None].astype(np.float32) * np.sin(ax)[None, :].astype(np.float32)
        m += (a * np.sin(by))[:, None].astype(np.float32) * np.cos(ax)[None, :].astype(np.float32)
        maps.append(m)
    return maps[0], maps[1]


def grid_opt_coords(mapping: SceneMapping, sar_shape: tuple[int, int], row0: int,
                    row1: int) -> tuple[np.ndarray, np.ndarray]:
    """Optical x and y (float32 maps for ``cv2.remap``) of SAR rows ``row0:row1``."""
    w = sar_shape[1]
    xs, ys = np.meshgrid(np.arange(w, dtype=np.float64), np.arange(row0, row1, dtype=np.float64))
    opt = mapping.sar_to_opt(np.stack([xs.ravel(), ys.ravel()], 1))
    return (opt[:, 0].reshape(xs.shape).astype(np.float32),
            opt[:, 1].reshape(xs.shape).astype(np.float32))


def warp_opt_to_sar(image: np.ndarray, mapping: SceneMapping, sar_shape: tuple[int, int],
                    nearest: bool = False, block_rows: int = 512) -> np.ndarray:
    """Resample an optical-grid image onto the SAR grid through the exact mapping.

    ``image``: ``(H', W')`` or ``(H', W', C)`` on the optical grid; returns ``sar_shape`` plus
    its channels, same dtype, 0 outside the optical image. OpenCV ``cv2.remap``, bilinear (or
    nearest, e.g. for class maps), ``block_rows`` SAR rows at a time.
    """
    import cv2

    out = np.zeros(tuple(sar_shape) + image.shape[2:], image.dtype)
    interp = cv2.INTER_NEAREST if nearest else cv2.INTER_LINEAR
    for r0 in range(0, sar_shape[0], block_rows):
        r1 = min(sar_shape[0], r0 + block_rows)
        mx, my = grid_opt_coords(mapping, sar_shape, r0, r1)
        out[r0:r1] = cv2.remap(image, mx, my, interp, borderMode=cv2.BORDER_CONSTANT)
    return out
