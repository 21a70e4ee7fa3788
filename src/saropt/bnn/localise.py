"""Localisation evaluation (``saropt bnn eval --localise R``): templates cut at known offsets.

Pairs cut with a known offset from co-registered QXS-layout pairs are located by the BNN and the
library baselines (:mod:`saropt.bnn.matchers`) on the same pairs and windows. Not in the papers
(which evaluate matching only); see docs/bnn.md.

Protocol: for a co-registered P x P pair, the optical patch is the search window and the SAR
template is the (P - 2R) px crop whose top-left corner is ``(R + tx, R + ty)``, with the true
offset ``(tx, ty)`` drawn uniformly from the integers in [-R, R]^2 (seeded). The error of a
method is the Euclidean distance (px) between its best integer offset and the truth; "within k
px" counts errors <= k (OSMNet's protocol scores within 1 px; later work reports CMR@k).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from saropt.bnn.locate import Location, locate
from saropt.errors import SaroptError

WITHIN = (1, 2, 3, 5)


def cut_offset_pair(sar: np.ndarray, opt: np.ndarray, radius: int,
                    rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, tuple[int, int]]:
    """``(template, search, (tx, ty))`` from a co-registered pair (see the module docstring).

    ``sar`` ``(P, P)`` and ``opt`` ``(P, P[, 3])``; the template is ``(P - 2R, P - 2R)``, the
    search window is ``opt`` itself, ``(tx, ty)`` the true offset (px) drawn from ``rng``.
    Raises :class:`SaroptError` for pairs not square or of unequal size, or a radius leaving a
    template under 8 px.
    """
    p = sar.shape[0]
    if sar.shape[:2] != opt.shape[:2] or sar.shape[0] != sar.shape[1]:
        raise SaroptError(f"pairs must be square and of equal size, got {sar.shape[:2]} and "
                          f"{opt.shape[:2]}")
    t = p - 2 * radius
    if t < 8:
        raise SaroptError(f"--localise {radius}: the template would be {t} px from {p} px "
                          f"pairs; use a radius below {(p - 8) // 2 + 1}")
    tx, ty = (int(v) for v in rng.integers(-radius, radius + 1, 2))
    template = sar[radius + ty:radius + ty + t, radius + tx:radius + tx + t]
    return np.ascontiguousarray(template), opt, (tx, ty)


def errors_summary(errors: np.ndarray) -> dict[str, float]:
    """``n``, ``mean_px``, ``median_px`` and ``within_<k>px`` (share of errors <= k px).

    ``errors``: ``(N,)`` localisation errors in px; k runs over :data:`WITHIN`. Raises
    :class:`SaroptError` when there are none.
    """
    e = np.asarray(errors, dtype=np.float64)
    if e.size == 0:
        raise SaroptError("no localisation errors to summarise")
    out = {"n": int(e.size), "mean_px": float(e.mean()), "median_px": float(np.median(e))}
    out.update({f"within_{k}px": float((e <= k + 1e-9).mean()) for k in WITHIN})
    return out


def run_localisation(matchers: dict[str, Any], pairs: Sequence[tuple[np.ndarray, np.ndarray]],
                     radius: int, seed: int = 0, stride: int = 4, progress: bool = True,
                     keep_maps: int = 0) -> dict[str, Any]:
    """Cut every pair at a random offset (:func:`cut_offset_pair`) and locate it with every matcher.

    ``pairs``: co-registered ``(sar (P, P), opt (P, P[, 3]))`` uint8 arrays; ``radius`` R and
    ``stride`` in px (see :func:`saropt.bnn.locate.locate`). Returns ``{"radius",
    "template_px", "stride", "seed", "methods": {name: :func:`errors_summary` + seconds,
    positions_evaluated, positions_per_s}, "records": per-pair truth and answers, "maps": {name:
    [(2R + 1, 2R + 1) cost maps of the first keep_maps pairs]}, "cuts": the first keep_maps
    (template, search, truth)}``.
    """
    from tqdm import tqdm

    rng = np.random.default_rng(seed)
    cuts = [cut_offset_pair(s, o, radius, rng) for s, o in pairs]
    methods, maps = {}, {}
    records: list[dict[str, Any]] = [{"tx": c[2][0], "ty": c[2][1]} for c in cuts]
    for name, matcher in matchers.items():
        t0, n_eval, errs, kept = time.perf_counter(), 0, [], []
        for k, (tmpl, search, (tx, ty)) in enumerate(tqdm(cuts, desc=f"localise {name}",
                                                          disable=not progress, leave=False)):
            loc: Location = locate(matcher, tmpl, search, stride=stride, keep_map=k < keep_maps)
            n_eval += loc.n_evaluated
            err = float(np.hypot(loc.dx - tx, loc.dy - ty))
            errs.append(err)
            records[k][name] = {"dx": loc.dx, "dy": loc.dy, "error_px": err,
                                "confidence": loc.confidence}
            if loc.cost_map is not None:
                kept.append(loc.cost_map)
        secs = time.perf_counter() - t0
        methods[name] = {**errors_summary(np.array(errs)), "seconds": secs,
                         "positions_evaluated": n_eval,
                         "positions_per_s": n_eval / max(secs, 1e-9)}
        maps[name] = kept
    return {"radius": radius, "template_px": int(cuts[0][0].shape[0]) if cuts else None,
            "stride": stride, "seed": seed, "methods": methods, "records": records,
            "maps": maps, "cuts": cuts[:keep_maps]}


def localisation_rows(loc: dict[str, Any]) -> list[tuple]:
    """Table rows (method, mean px, median px, within 1/2/3/5 px, positions/s).

    Columns as :data:`LOCALISATION_HEADERS`; ``loc``: a :func:`run_localisation` result.
    """
    return [(name, m["mean_px"], m["median_px"], *(m[f"within_{k}px"] for k in WITHIN),
             m["positions_per_s"]) for name, m in loc["methods"].items()]


LOCALISATION_HEADERS = ["method", "mean px", "median px", *(f"<= {k} px" for k in WITHIN),
                        "positions/s"]


def plot_error_distribution(loc: dict[str, Any]) -> Any:
    """Cumulative share of pairs within e px, per method (CMR@e curve)."""
    from saropt.bnn.plots import _plt

    plt = _plt()
    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    r = loc["radius"]
    xs = np.linspace(0, 2 * r * np.sqrt(2), 200)
    for name in loc["methods"]:
        e = np.sort([rec[name]["error_px"] for rec in loc["records"]])
        ax.plot(xs, np.searchsorted(e, xs, side="right") / len(e), label=name)
    for k in WITHIN:
        ax.axvline(k, color="0.85", lw=0.8, zorder=0)
    ax.set_xscale("symlog", linthresh=1, linscale=0.6)
    ticks = [t for t in (0, 1, 2, 3, 5, 10, 20, 50, 100) if t <= xs[-1]]
    ax.set_xticks(ticks, [str(t) for t in ticks])
    ax.set_xlim(0, xs[-1])
    ax.set_xlabel("localisation error (px)")
    ax.set_ylabel("share of pairs within")
    ax.set_ylim(0, 1.01)
    ax.set_title(f"{len(loc['records'])} pairs, search radius {r} px, template "
                 f"{loc['template_px']} px")
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    return fig


def fill_nearest(cost_map: np.ndarray) -> np.ndarray:
    """A coarse-to-fine cost map filled for display (same shape; NaN = not evaluated).

    Each offset not evaluated takes the value of the nearest evaluated one (blocks = coarse
    samples, fine detail where refined); a map with no or only NaNs is returned as is.
    """
    from scipy.ndimage import distance_transform_edt

    missing = ~np.isfinite(cost_map)
    if not missing.any() or missing.all():
        return cost_map
    idx = distance_transform_edt(missing, return_distances=False, return_indices=True)
    return cost_map[tuple(idx)]


def plot_dmap_gallery(loc: dict[str, Any], n: int = 4) -> Any:
    """A figure of the first ``n`` kept pairs: template, search window and each cost map.

    Per pair: SAR template, optical search window (true box green), and each method's cost map
    over the offsets (truth green +, answer red x; offsets a coarse-to-fine search did not
    evaluate show their nearest evaluated neighbour's cost). Raises :class:`SaroptError` when
    ``loc`` kept no cost maps.
    """
    from saropt.bnn.plots import _plt

    plt = _plt()
    cuts = loc["cuts"][:n]
    names = [m for m in loc["methods"] if loc["maps"].get(m)]
    if not cuts or not names:
        raise SaroptError("no cost maps kept for the gallery (keep_maps=0)")
    cols = 2 + len(names)
    fig, axes = plt.subplots(len(cuts), cols, figsize=(2.1 * cols, 2.2 * len(cuts)),
                             squeeze=False)
    r = loc["radius"]
    for i, (tmpl, search, (tx, ty)) in enumerate(cuts):
        t = tmpl.shape[0]
        axes[i, 0].imshow(tmpl, cmap="gray")
        axes[i, 1].imshow(search, cmap=None if search.ndim == 3 else "gray")
        axes[i, 1].add_patch(plt.Rectangle((r + tx - 0.5, r + ty - 0.5), t, t, fill=False,
                                           ec="lime", lw=1))
        for j, name in enumerate(names):
            m = fill_nearest(loc["maps"][name][i])
            rec = loc["records"][i][name]
            ax = axes[i, 2 + j]
            ax.imshow(m, cmap="viridis", extent=(-r - 0.5, r + 0.5, r + 0.5, -r - 0.5))
            ax.plot(tx, ty, "+", color="lime", ms=9, mew=1.5)
            ax.plot(rec["dx"], rec["dy"], "x", color="red", ms=7, mew=1.5)
            if i == 0:
                ax.set_title(f"{name} cost", fontsize=8)
            ax.set_xlabel(f"err {rec['error_px']:.1f} px", fontsize=7)
        if i == 0:
            axes[i, 0].set_title("SAR template", fontsize=8)
            axes[i, 1].set_title("optical window", fontsize=8)
    for ax in axes.ravel():
        ax.set_xticks([])
        ax.set_yticks([])
    fig.tight_layout()
    return fig


def localise_split(module: Any, ids: list[str], radius: int, n: int, seed: int,
                   stride: int, methods: Sequence[str], device: str,
                   load: Callable[[str], tuple[np.ndarray, np.ndarray]]) -> dict[str, Any]:
    """:func:`run_localisation` on ``n`` of ``ids`` (shuffled with ``seed``), BNN and baselines.

    ``module``: a ``BNNModule`` (its two encoders form the ``bnn`` matcher on ``device``);
    ``methods``: ``bnn`` and baseline names; ``load(id)`` gives the uint8 ``(sar, opt)`` pair.
    Keeps the cost maps of 4 pairs for :func:`plot_dmap_gallery`; adds ``ids`` to the result.
    """
    from saropt.bnn.locate import BNNMatcher
    from saropt.bnn.matchers import make_baseline

    order = np.random.default_rng(seed).permutation(len(ids))[:n]
    pairs = [load(ids[k]) for k in order]
    matchers: dict[str, Any] = {}
    for m in methods:
        matchers[m] = (BNNMatcher(module.model.sar, module.model.opt, device=device)
                       if m == "bnn" else make_baseline(m))
    res = run_localisation(matchers, pairs, radius, seed=seed, stride=stride, keep_maps=4)
    res["ids"] = [ids[k] for k in order]
    return res
