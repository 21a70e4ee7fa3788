"""Per-sub-region registration: fit SAR pixel -> optical pixel (what ``cv2.remap`` needs).

Models are scikit-image transforms: ``affine`` (>= 3 points), ``projective`` (>= 4),
``polynomial2`` (second-order polynomial, >= 6) and ``tps`` (thin-plate spline, >= 3). With
``ransac`` on, outliers are found by ``skimage.measure.ransac`` with the model itself (for
``tps``, which interpolates every point exactly, with an affine model) and the final model is fit
on the inliers. Residuals (prediction - optical point, optical pixels) are reported for every
point; RMSE is over the inliers, and ``rmse_loo`` is the leave-one-out RMSE (each inlier
predicted by a model fit without it). The ``max_rmse`` check uses ``rmse`` for the parametric
models and ``rmse_loo`` for ``tps`` (whose fit residuals are always zero).

The paper registers each sub-region with "existing automatic image registration software" from
its manual matching points (paper 002 section II.E, paper 003 Algorithm 1 step 5); which model
it used is not said.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from skimage import transform as sktf
from skimage.measure import ransac

MIN_POINTS = {"affine": 3, "projective": 4, "polynomial2": 6, "tps": 3}


class NormalizedPolynomial2:
    """``PolynomialTransform`` of order 2 fit on centred, scaled source coordinates.

    skimage's polynomial estimate is badly conditioned on raw pixel coordinates (x^2 ~ 1e8 for
    a large scene: a 0.6 px fit becomes 2 px); normalising first fixes it.
    """

    def __init__(self, tf: sktf.PolynomialTransform, center: np.ndarray, scale: float) -> None:
        self.tf, self.center, self.scale = tf, center, scale

    @classmethod
    def from_estimate(cls, src: np.ndarray, dst: np.ndarray):
        """Fit ``src`` ``(N, 2)`` onto ``dst`` ``(N, 2)``; a falsy skimage failure if degenerate."""
        center = src.mean(axis=0)
        scale = float(np.sqrt(((src - center) ** 2).sum(axis=1).mean())) or 1.0
        tf = sktf.PolynomialTransform.from_estimate((src - center) / scale, dst, order=2)
        return cls(tf, center, scale) if tf else tf

    def __call__(self, xy: np.ndarray) -> np.ndarray:
        """Map ``(N, 2)`` x, y source pixels to ``(N, 2)`` destination pixels."""
        return self.tf((np.asarray(xy, dtype=np.float64) - self.center) / self.scale)

    def residuals(self, src: np.ndarray, dst: np.ndarray) -> np.ndarray:
        """Euclidean distance ``(N,)`` between the mapped ``src`` and ``dst`` (px)."""
        return np.linalg.norm(self(src) - dst, axis=1)

    @property
    def params(self) -> dict:
        """JSON-ready ``center`` (2,), ``scale`` and the polynomial ``coeffs`` (2, 6)."""
        return {"center": self.center.tolist(), "scale": self.scale,
                "coeffs": np.asarray(self.tf.params).tolist()}


def _model_class(model: str):
    return {"affine": sktf.AffineTransform, "projective": sktf.ProjectiveTransform,
            "polynomial2": NormalizedPolynomial2, "tps": sktf.ThinPlateSplineTransform}[model]


def estimate(model: str, src: np.ndarray, dst: np.ndarray):
    """A fitted transform mapping ``src`` (N, 2) onto ``dst`` (N, 2), or None when degenerate.

    ``model``: ``affine``, ``projective``, ``polynomial2`` or ``tps`` (scikit-image's
    ``AffineTransform``, ``ProjectiveTransform``, :class:`NormalizedPolynomial2`,
    ``ThinPlateSplineTransform``); non-finite affine/projective parameters count as degenerate.
    """
    tf = _model_class(model).from_estimate(src, dst)
    if not tf:
        return None
    if model in ("affine", "projective") and not np.all(np.isfinite(tf.params)):
        return None
    return tf


@dataclass
class Fit:
    """The registration of one sub-region.

    ``transform`` maps SAR px to optical px (None when the fit failed); ``points``: ``(N, 4)``
    sar_x, sar_y, opt_x, opt_y; ``inliers``: bool ``(N,)``; ``residuals``: ``(N, 2)``
    prediction - optical point, optical px; ``rmse`` / ``rmse_loo`` in optical px (NaN when not
    computed); ``ok`` false with ``reason`` saying why when the sub-region cannot be used.
    """

    subregion: str
    model: str
    n_points: int
    transform: object | None = None
    inliers: np.ndarray = field(default_factory=lambda: np.zeros(0, bool))
    residuals: np.ndarray = field(default_factory=lambda: np.zeros((0, 2)))
    rmse: float = float("nan")
    rmse_loo: float = float("nan")
    ok: bool = False
    reason: str = ""
    points: np.ndarray = field(default_factory=lambda: np.zeros((0, 4)))

    def __call__(self, xy: np.ndarray) -> np.ndarray:
        """Optical pixel coordinates of SAR pixel coordinates (N, 2)."""
        return self.transform(np.asarray(xy, dtype=np.float64))

    def params_json(self) -> object:
        """The model's parameters as JSON (3x3 matrix, polynomial dict, or TPS control points)."""
        tf = self.transform
        if tf is None:
            return None
        if self.model == "tps":
            inl = self.points[self.inliers]
            return {"src": inl[:, :2].tolist(), "dst": inl[:, 2:4].tolist()}
        if self.model == "polynomial2":
            return tf.params
        return np.asarray(tf.params).tolist()

    def to_json(self) -> dict:
        """The fit as written to ``registration.json``: status, RMSEs, parameters, points."""
        return {"subregion": self.subregion, "model": self.model, "ok": self.ok,
                "reason": self.reason, "n_points": self.n_points,
                "n_inliers": int(self.inliers.sum()), "rmse": _num(self.rmse),
                "rmse_loo": _num(self.rmse_loo), "params": self.params_json(),
                "points": [{"sar_x": p[0], "sar_y": p[1], "opt_x": p[2], "opt_y": p[3],
                            "res_x": r[0], "res_y": r[1], "inlier": bool(i)}
                           for p, r, i in zip(self.points.tolist(), self.residuals.tolist(),
                                              self.inliers)]}


def _num(v: float) -> float | None:
    return None if not np.isfinite(v) else round(float(v), 4)


def _rmse(res: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.sum(res ** 2, axis=1)))) if len(res) else float("nan")


def find_inliers(model: str, src: np.ndarray, dst: np.ndarray, threshold: float, trials: int,
                 seed: int) -> np.ndarray:
    """RANSAC inlier mask ``(N,)`` (all True when there are too few points to vote).

    ``skimage.measure.ransac`` with the model itself (affine for ``tps``), ``threshold`` in
    optical px, at most ``trials`` draws, seeded by ``seed``. Too few: at most one more point
    than the model's minimum.
    """
    robust = "affine" if model == "tps" else model
    k = MIN_POINTS[robust]
    if len(src) <= k + 1:
        return np.ones(len(src), bool)
    cls = _model_class(robust)
    _, inliers = ransac((src, dst), cls, min_samples=k, residual_threshold=threshold,
                        max_trials=trials, rng=seed)
    return np.ones(len(src), bool) if inliers is None else np.asarray(inliers, bool)


def _collinear(src: np.ndarray) -> bool:
    """True when the points span (almost) no area: smallest/largest singular value < 1e-3."""
    sv = np.linalg.svd(src - src.mean(axis=0), compute_uv=False)
    return sv[0] == 0 or sv[-1] / sv[0] < 1e-3


def leave_one_out_rmse(model: str, src: np.ndarray, dst: np.ndarray) -> float:
    """RMSE (px) of each point predicted by the model fit on the other points.

    NaN when there are no more points than the model's minimum or a fit is degenerate.
    """
    if len(src) <= MIN_POINTS[model]:
        return float("nan")
    errs = []
    for i in range(len(src)):
        keep = np.arange(len(src)) != i
        tf = estimate(model, src[keep], dst[keep])
        if tf is None:
            return float("nan")
        errs.append(tf(src[i:i + 1])[0] - dst[i])
    return _rmse(np.asarray(errs))


def fit_subregion(name: str, points: np.ndarray, cfg) -> Fit:
    """Fit ``cfg.model`` (a ``Registration`` config) to ``points`` (N, 4: sar_xy, opt_xy).

    Failures (too few points or inliers, collinear points, a degenerate fit, an RMSE above
    ``cfg.max_rmse``) are not raised: the returned :class:`Fit` has ``ok=False`` and a
    ``reason``.
    """
    model = cfg.model
    fit = Fit(name, model, len(points), points=np.asarray(points, float).reshape(-1, 4))
    need = max(MIN_POINTS[model], cfg.min_points)
    if len(points) < need:
        fit.reason = f"{len(points)} tie points, {model} needs at least {need}"
        return fit
    src, dst = fit.points[:, :2], fit.points[:, 2:4]
    fit.inliers = (find_inliers(model, src, dst, cfg.ransac_threshold, cfg.ransac_trials,
                                cfg.seed) if cfg.ransac else np.ones(len(src), bool))
    if fit.inliers.sum() < need:
        fit.reason = f"only {int(fit.inliers.sum())} RANSAC inliers, {model} needs {need}"
        return fit
    if _collinear(src[fit.inliers]):
        fit.reason = "tie points are (nearly) collinear: the fit would be undetermined"
        return fit
    fit.transform = estimate(model, src[fit.inliers], dst[fit.inliers])
    if fit.transform is None:
        fit.reason = f"{model} fit failed (degenerate tie points, e.g. collinear)"
        return fit
    fit.residuals = fit.transform(src) - dst
    fit.rmse = _rmse(fit.residuals[fit.inliers])
    fit.rmse_loo = leave_one_out_rmse(model, src[fit.inliers], dst[fit.inliers])
    checked = fit.rmse_loo if model == "tps" else fit.rmse
    label = "leave-one-out RMSE" if model == "tps" else "RMSE"
    if not np.isfinite(checked) or checked > cfg.max_rmse:
        fit.reason = f"{label} {checked:.2f} px > registration.max_rmse {cfg.max_rmse}"
        return fit
    fit.ok = True
    return fit


def map_coords(fit: Fit, x0: int, y0: int, w: int, h: int, step: int
               ) -> tuple[np.ndarray, np.ndarray]:
    """float32 (h, w) maps of optical x and y for the SAR window's pixel centres.

    The window is ``(x0, y0, w, h)`` in SAR px; the maps are what ``cv2.remap`` takes.

    Affine and projective are evaluated exactly; other models exactly every ``step`` pixels and
    bilinearly in between (as GDAL's approximate transformer does).
    """
    if fit.model in ("affine", "projective"):
        m = np.asarray(fit.transform.params, dtype=np.float64)
        xs = np.arange(x0, x0 + w, dtype=np.float64)[None, :]
        ys = np.arange(y0, y0 + h, dtype=np.float64)[:, None]
        den = m[2, 0] * xs + m[2, 1] * ys + m[2, 2]
        mx = (m[0, 0] * xs + m[0, 1] * ys + m[0, 2]) / den
        my = (m[1, 0] * xs + m[1, 1] * ys + m[1, 2]) / den
        return mx.astype(np.float32), my.astype(np.float32)
    nx, ny = (w - 1) // step + 2, (h - 1) // step + 2
    gx, gy = np.meshgrid(x0 + step * np.arange(nx), y0 + step * np.arange(ny))
    pts = fit(np.column_stack([gx.ravel(), gy.ravel()]).astype(np.float64))
    return (_upsample(pts[:, 0].reshape(ny, nx), w, h, step),
            _upsample(pts[:, 1].reshape(ny, nx), w, h, step))


def _upsample(grid: np.ndarray, w: int, h: int, step: int) -> np.ndarray:
    """Bilinear interpolation of a node grid (nodes every ``step`` px) to every pixel."""
    fx, fy = np.arange(w) / step, np.arange(h) / step
    ix = np.minimum(fx.astype(int), grid.shape[1] - 2)
    iy = np.minimum(fy.astype(int), grid.shape[0] - 2)
    tx, ty = fx - ix, fy - iy
    rows = grid[:, ix] * (1 - tx) + grid[:, ix + 1] * tx
    out = rows[iy, :] * (1 - ty)[:, None] + rows[iy + 1, :] * ty[:, None]
    return out.astype(np.float32)
