"""Localisation: where a SAR template lies inside a larger optical search window.

For every offset ``(dx, dy)`` with ``|dx|, |dy| <= R`` a matcher gives a cost (BNN: the distance
d of the template's SAR code and the optical window's code; baselines in
:mod:`saropt.bnn.matchers`: 1 - NCC, -NMI). :func:`search_window` returns the offset of the
lowest cost and a **confidence**: the margin between the best basin and the second-best (the
lowest cost farther than ``suppress`` px, Chebyshev distance, from the best).

Coarse-to-fine (``stride > 1``): the costs on a ``stride`` grid (edges included), then up to
``top_k`` seeds (the best coarse points, each farther than ``suppress`` from the ones before) are
refined exhaustively within +-``stride`` px; a refinement whose best lies on its border moves
there and repeats (descent until the best is interior). The result equals the exhaustive argmin
whenever the global minimum's basin (the set that descends to it) contains a coarse point among
the ``top_k`` seeds; tests check this on real cost maps. The second-best basin is the best
*evaluated* cost outside the suppression radius, so the confidence can be larger than the
exhaustive one when the runner-up basin was not refined (``exhaustive=True`` is exact).

Offsets follow :mod:`saropt.bnn.matchers`: the template's top-left corner at ``(R + dx, R + dy)``
of the search window; cost maps are indexed ``[dy + R, dx + R]``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from saropt.bnn.matchers import CostFn, window_radius
from saropt.errors import SaroptError


@dataclass
class Location:
    """The answer for one template: best offset (px), its sub-pixel refinement, costs and map."""

    dx: int
    dy: int
    cost: float
    second: float  # best cost outside the suppression radius (inf if none was evaluated)
    confidence: float  # second - cost (>= 0)
    n_evaluated: int
    sub_dx: float = 0.0  # parabolic sub-pixel refinement of dx, dy
    sub_dy: float = 0.0
    cost_map: np.ndarray | None = None  # (2R+1, 2R+1), NaN where not evaluated

    def to_json(self) -> dict[str, Any]:
        """The answer as a JSON-ready dict (without the cost map; sub-pixel offsets to 0.001)."""
        return {"dx": self.dx, "dy": self.dy, "sub_dx": round(self.sub_dx, 3),
                "sub_dy": round(self.sub_dy, 3), "cost": self.cost, "second": self.second,
                "confidence": self.confidence, "n_evaluated": self.n_evaluated}


def offset_grid(radius: int, stride: int) -> np.ndarray:
    """``(K, 2)`` int64 offsets (dx, dy), px, on a ``stride`` grid over [-R, R]^2, ends included."""
    axis = np.unique(np.concatenate([np.arange(-radius, radius + 1, stride), [radius]]))
    dx, dy = np.meshgrid(axis, axis)
    return np.column_stack([dx.ravel(), dy.ravel()]).astype(np.int64)


class _Evaluated:
    """Costs evaluated so far on the (2R+1)^2 map; each offset is computed once."""

    def __init__(self, cost: CostFn, radius: int) -> None:
        self.cost, self.r = cost, radius
        self.map = np.full((2 * radius + 1, 2 * radius + 1), np.nan)

    def eval(self, off: np.ndarray) -> None:
        off = off[np.isnan(self.map[off[:, 1] + self.r, off[:, 0] + self.r])]
        if len(off):
            self.map[off[:, 1] + self.r, off[:, 0] + self.r] = self.cost(off)

    def best_in(self, cx: int, cy: int, half: int) -> tuple[int, int]:
        r = self.r
        y0, y1 = max(-r, cy - half), min(r, cy + half)
        x0, x1 = max(-r, cx - half), min(r, cx + half)
        dx, dy = np.meshgrid(np.arange(x0, x1 + 1), np.arange(y0, y1 + 1))
        off = np.column_stack([dx.ravel(), dy.ravel()])
        self.eval(off)
        sub = self.map[y0 + r:y1 + r + 1, x0 + r:x1 + r + 1]
        iy, ix = np.unravel_index(int(np.nanargmin(sub)), sub.shape)
        return int(x0 + ix), int(y0 + iy)


def _seeds(evald: _Evaluated, grid: np.ndarray, top_k: int, suppress: int) -> list[tuple]:
    costs = evald.map[grid[:, 1] + evald.r, grid[:, 0] + evald.r]
    seeds: list[tuple[int, int]] = []
    for k in np.argsort(costs, kind="stable"):
        x, y = int(grid[k, 0]), int(grid[k, 1])
        if all(max(abs(x - sx), abs(y - sy)) > suppress for sx, sy in seeds):
            seeds.append((x, y))
        if len(seeds) == top_k:
            break
    return seeds


def _descend(evald: _Evaluated, x: int, y: int, half: int, max_steps: int = 16) -> None:
    """Refine around (x, y) within +-half until the best is interior (or at the window edge)."""
    r = evald.r
    for _ in range(max_steps):
        bx, by = evald.best_in(x, y, half)
        on_border = ((abs(bx - x) == half and abs(bx) < r) or (abs(by - y) == half
                                                               and abs(by) < r))
        if not on_border or (bx, by) == (x, y):
            return
        x, y = bx, by


def _subpixel(m: np.ndarray, iy: int, ix: int) -> tuple[float, float]:
    """Parabola vertex through the best cost and its evaluated 4-neighbours (x, y shifts)."""
    def vertex(a: float, b: float, c: float) -> float:
        den = a - 2 * b + c
        if not np.isfinite(den) or den <= 0:
            return 0.0
        return float(np.clip(0.5 * (a - c) / den, -0.5, 0.5))

    h, w = m.shape
    sx = vertex(m[iy, ix - 1], m[iy, ix], m[iy, ix + 1]) if 0 < ix < w - 1 else 0.0
    sy = vertex(m[iy - 1, ix], m[iy, ix], m[iy + 1, ix]) if 0 < iy < h - 1 else 0.0
    return sx, sy


def search_window(cost: CostFn, radius: int, stride: int = 4, top_k: int = 3,
                  suppress: int | None = None, exhaustive: bool = False,
                  keep_map: bool = False) -> Location:
    """Best offset of a cost function over [-R, R]^2 (see the module docstring).

    ``cost`` maps (K, 2) int offsets (dx, dy) to K costs. ``suppress`` (px, Chebyshev) defaults
    to ``max(2, stride)``: the second basin lies farther than that from the best. Raises
    :class:`SaroptError` for a radius, stride or ``top_k`` below 1.
    """
    if radius < 1:
        raise SaroptError(f"search radius must be >= 1 px, got {radius}")
    if stride < 1 or top_k < 1:
        raise SaroptError(f"stride and top_k must be >= 1 (got {stride}, {top_k})")
    suppress = max(2, stride) if suppress is None else suppress
    evald = _Evaluated(cost, radius)
    if exhaustive or stride == 1:
        evald.eval(offset_grid(radius, 1))
    else:
        grid = offset_grid(radius, stride)
        evald.eval(grid)
        for x, y in _seeds(evald, grid, top_k, suppress):
            _descend(evald, x, y, stride)
    return _location(evald.map, radius, suppress, keep_map)


def _location(m: np.ndarray, radius: int, suppress: int, keep_map: bool) -> Location:
    iy, ix = np.unravel_index(int(np.nanargmin(m)), m.shape)
    best = float(m[iy, ix])
    yy, xx = np.mgrid[:m.shape[0], :m.shape[1]]
    far = np.maximum(np.abs(yy - iy), np.abs(xx - ix)) > suppress
    outside = m[far & np.isfinite(m)]
    second = float(outside.min()) if outside.size else float("inf")
    sx, sy = _subpixel(m, iy, ix)
    return Location(dx=int(ix) - radius, dy=int(iy) - radius, cost=best, second=second,
                    confidence=second - best, n_evaluated=int(np.isfinite(m).sum()),
                    sub_dx=int(ix) - radius + sx, sub_dy=int(iy) - radius + sy,
                    cost_map=m if keep_map else None)


def locate(matcher: Any, template: np.ndarray, search: np.ndarray, stride: int = 4,
           top_k: int = 3, suppress: int | None = None, exhaustive: bool = False,
           keep_map: bool = False) -> Location:
    """Locate one SAR ``template`` (T, T) in an optical ``search`` window (T + 2R, T + 2R[, 3]).

    ``matcher``: :class:`BNNMatcher` or a baseline of :mod:`saropt.bnn.matchers`. Matchers whose
    whole map is cheap (NCC) are always searched exhaustively. Offsets (px) put the template's
    top-left corner at ``(R + dx, R + dy)`` of the window, so (0, 0) is the centred position.
    Raises :class:`SaroptError` when the images are not square or the window is not the
    template plus R on every side.
    """
    radius = window_radius(template, search)
    if getattr(matcher, "exhaustive", False):
        full = matcher.cost_map(template, search)
        return _location(full, radius, max(2, stride) if suppress is None else suppress,
                         keep_map)
    return search_window(matcher.cost_fn(template, search), radius, stride, top_k, suppress,
                         exhaustive, keep_map)


def locate_many(matcher: Any, templates: Sequence[np.ndarray], searches: Sequence[np.ndarray],
                progress: bool = False, desc: str = "locate", **kwargs: Any) -> list[Location]:
    """:func:`locate` for each (template, search) pair; ``kwargs`` go to :func:`locate`.

    Raises :class:`SaroptError` when the two lists differ in length.
    """
    from tqdm import tqdm

    if len(templates) != len(searches):
        raise SaroptError(f"{len(templates)} templates but {len(searches)} search windows")
    return [locate(matcher, t, s, **kwargs)
            for t, s in tqdm(list(zip(templates, searches)), desc=desc, disable=not progress,
                             leave=False)]


# ---------------------------------------------------------------- the BNN as a matcher

class BNNMatcher:
    """Cost = BNN distance d in [0, 1] (paper 003, eq. 1) of the template's and each window's code.

    ``sar``/``opt``: encoders mapping ``(B, C, S, S)`` images in [0, 1] to ``(B, n)`` codes
    (:class:`saropt.bnn.model.Encoder` or any module with ``image_size`` and ``in_chans``). The
    template and every window are resized (antialiased bilinear) to the encoder's ``image_size``;
    windows are cut on ``device`` from the search window and encoded ``batch_size`` at a time.
    Images may be uint8 (scaled by 1/255) or float in [0, 1]; a channel count other than the
    encoder's is averaged to grey and repeated. Raises :class:`SaroptError` for a ``device``
    this machine lacks.
    """

    exhaustive = False
    name = "bnn"

    def __init__(self, sar: Any, opt: Any, device: str = "cpu", batch_size: int = 256) -> None:
        import torch

        from saropt.engine import check_device

        self.device = torch.device(check_device(device))
        self.sar, self.opt = sar.to(self.device).eval(), opt.to(self.device).eval()
        self.batch_size = batch_size

    def _tensor(self, img: np.ndarray, chans: int) -> Any:
        import torch

        a = np.asarray(img, dtype=np.float32)
        if a.ndim == 2:
            a = a[:, :, None]
        if a.shape[2] != chans:
            a = np.repeat(a.mean(axis=2, keepdims=True), chans, axis=2)
        scale = 255.0 if np.asarray(img).dtype == np.uint8 or a.max() > 1.0 else 1.0
        return torch.from_numpy(np.ascontiguousarray(a.transpose(2, 0, 1)) / scale).to(
            self.device)

    def _resize(self, x: Any, size: int) -> Any:
        import torch.nn.functional as F

        if x.shape[-1] == size and x.shape[-2] == size:
            return x
        return F.interpolate(x, size=(size, size), mode="bilinear", antialias=True,
                             align_corners=False).clamp_(0, 1)

    def code(self, template: np.ndarray) -> Any:
        """The ``(1, n)`` float32 SAR code of a template ``(T, T)`` (uint8, or float in [0, 1])."""
        import torch

        with torch.no_grad():
            x = self._tensor(template, self.sar.in_chans)[None]
            return self.sar(self._resize(x, self.sar.image_size)).float()

    def cost_fn(self, template: np.ndarray, search: np.ndarray) -> CostFn:
        """A cost function: ``(K, 2)`` offsets (dx, dy) -> ``(K,)`` distances d (float64).

        ``template`` ``(T, T)`` SAR, ``search`` ``(T + 2R, T + 2R[, 3])`` optical; each call
        encodes only the windows of the offsets asked for.
        """
        import torch

        from saropt.bnn.model import distance

        r = window_radius(template, search)
        t = template.shape[0]
        z_s = self.code(template)
        s = self._tensor(search, self.opt.in_chans)
        # every window at once as a strided view: (C, 2R+1, 2R+1, T, T), no copy
        views = s.unfold(1, t, 1).unfold(2, t, 1)

        def costs(off: np.ndarray) -> np.ndarray:
            out = []
            with torch.no_grad():
                for k in range(0, len(off), self.batch_size):
                    o = torch.as_tensor(off[k:k + self.batch_size], device=self.device) + r
                    x = views[:, o[:, 1], o[:, 0]].permute(1, 0, 2, 3)
                    z_o = self.opt(self._resize(x.contiguous(), self.opt.image_size)).float()
                    out.append(distance(z_s.expand_as(z_o), z_o).cpu())
            return torch.cat(out).double().numpy()

        return costs


def load_bnn_matcher(source: str, device: str = "cpu", batch_size: int = 256) -> BNNMatcher:
    """A :class:`BNNMatcher` from a BNN checkpoint (.ckpt) or a folder of exported encoders.

    The folder holds ``sar_encoder.safetensors`` + ``opt_encoder.safetensors`` (from ``saropt
    bnn export``). Raises :class:`SaroptError` when ``source`` is neither, an encoder file is
    missing, or a file is unusable.
    """
    from pathlib import Path

    from saropt.bnn.embed import load_any_encoder
    from saropt.bnn.export import ENCODER_NAMES

    p = Path(source)
    if p.is_dir():
        files = {k: p / f"{v}.safetensors" for k, v in ENCODER_NAMES.items()}
        missing = [str(f) for f in files.values() if not f.is_file()]
        if missing:
            raise SaroptError(f"--model {p}: missing {', '.join(missing)} (export a BNN with "
                              "`saropt bnn export CKPT --out DIR`)")
        sar, opt = load_any_encoder(files["sar"], "sar"), load_any_encoder(files["opt"], "opt")
    elif p.is_file():
        sar, opt = load_any_encoder(p, "sar"), load_any_encoder(p, "opt")
    else:
        raise SaroptError(f"--model {p} is neither a BNN checkpoint nor a folder of exported "
                          "encoders")
    return BNNMatcher(sar, opt, device=device, batch_size=batch_size)


def make_matcher(method: str, model: str | None = None, device: str = "cpu",
                 batch_size: int = 256) -> Any:
    """The matcher ``bnn`` (needs ``model``) or a baseline (``ncc``, ``ncc_grad``, ``mi``).

    Raises :class:`SaroptError` for ``bnn`` without ``model`` or an unknown name.
    """
    from saropt.bnn.matchers import make_baseline

    if method == "bnn":
        if model is None:
            raise SaroptError("method bnn needs --model (a .ckpt or a folder of exported "
                              "encoders)")
        return load_bnn_matcher(model, device, batch_size)
    return make_baseline(method)


# ---------------------------------------------------------------- scene mode

@dataclass
class ScenePoint:
    """A SAR grid patch located in the optical scene (pixel centres, x = column)."""

    sar_x: float
    sar_y: float
    opt_x: float  # prior + sub-pixel offset
    opt_y: float
    prior_x: float
    prior_y: float
    location: Location


def patch_windows(sar: np.ndarray, opt: np.ndarray, centres: np.ndarray, prior: Callable,
                  patch: int, radius: int) -> tuple[list, list, list]:
    """Templates, search windows and positions of the centres whose patch and window fit.

    Kept are the centres whose SAR patch and optical window both lie inside their images; each
    kept one gives a template ``(patch, patch)``, a window ``(patch + 2R, patch + 2R[, 3])`` and
    ``(index, sar x0, sar y0, predicted optical x0, y0)`` (top-left corners, px). ``prior`` maps
    ``(N, 2)`` SAR xy to optical xy. Pixel centres: a patch with top-left x0 has centre
    x0 + (patch - 1) / 2.
    """
    half = (patch - 1) / 2.0
    pred = np.asarray(prior(np.asarray(centres, float)))
    temps, wins, keep = [], [], []
    for i, ((cx, cy), (px, py)) in enumerate(zip(centres, pred)):
        sx0, sy0 = int(round(cx - half)), int(round(cy - half))
        ox0, oy0 = int(round(px - half)) - radius, int(round(py - half)) - radius
        side = patch + 2 * radius
        if (sx0 < 0 or sy0 < 0 or sx0 + patch > sar.shape[1] or sy0 + patch > sar.shape[0]
                or ox0 < 0 or oy0 < 0 or ox0 + side > opt.shape[1] or oy0 + side > opt.shape[0]):
            continue
        temps.append(sar[sy0:sy0 + patch, sx0:sx0 + patch])
        wins.append(opt[oy0:oy0 + side, ox0:ox0 + side])
        keep.append((i, sx0, sy0, ox0 + radius, oy0 + radius))
    return temps, wins, keep


def locate_scene(matcher: Any, sar: np.ndarray, opt: np.ndarray, centres: np.ndarray,
                 prior: Callable, patch: int, radius: int, progress: bool = False,
                 **kwargs: Any) -> list[ScenePoint]:
    """Locate ``patch`` px SAR patches of a scene in the optical scene near a prior position.

    The patches are centred at ``centres`` ``(N, 2)`` xy (px) of the SAR scene ``(H, W)``; each
    is searched in the optical scene ``(H', W'[, 3])`` within ``radius`` px of
    ``prior(centre)``. Patches whose SAR patch or optical window leaves its image are skipped
    (the result is shorter than N); ``kwargs`` go to :func:`locate`.
    """
    temps, wins, keep = patch_windows(sar, opt, centres, prior, patch, radius)
    locs = locate_many(matcher, temps, wins, progress=progress, **kwargs)
    half = (patch - 1) / 2.0
    out = []
    for (_, sx0, sy0, ox0, oy0), loc in zip(keep, locs):
        out.append(ScenePoint(sar_x=sx0 + half, sar_y=sy0 + half,
                              opt_x=ox0 + half + loc.sub_dx, opt_y=oy0 + half + loc.sub_dy,
                              prior_x=ox0 + half, prior_y=oy0 + half, location=loc))
    return out


def grid_centres(shape: tuple[int, int], patch: int, step: int,
                 bbox: tuple[int, int, int, int] | None = None) -> np.ndarray:
    """``(N, 2)`` xy centres (px) of ``patch`` px patches every ``step`` px inside ``bbox``.

    ``shape``: the image's (H, W); ``bbox``: (x0, y0, x1, y1), x1 and y1 exclusive, default the
    whole image. Centres are pixel centres, x0 + (patch - 1) / 2.
    """
    h, w = shape
    x0, y0, x1, y1 = bbox or (0, 0, w, h)
    half = (patch - 1) / 2.0
    xs = np.arange(x0, x1 - patch + 1, step) + half
    ys = np.arange(y0, y1 - patch + 1, step) + half
    gx, gy = np.meshgrid(xs, ys)
    return np.column_stack([gx.ravel(), gy.ravel()])
