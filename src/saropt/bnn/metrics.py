"""BNN matching metrics on pair distances d and retrieval metrics among N co-registered pairs.

A pair is predicted true when d < threshold. Paper 003 (Tables 1-2) and paper 002 (Table II)
report accuracy, precision and recall of this binary decision; ROC-AUC, FPR at 95% TPR, a
validation-chosen threshold and top-k retrieval are additions (docs/bnn.md). Plain numpy/torch
with the textbook definitions (scikit-learn's for the ROC), checkable by hand.

Inputs: distances ``d`` ``(N,)`` (any shape, flattened; BNN d in [0, 1]) and ``labels`` of the
same size, 1 for a true pair and 0 for a false one (> 0.5 counts as true). Rates are NaN where
their denominator is 0.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch


def _as_arrays(d: Any, labels: Any) -> tuple[np.ndarray, np.ndarray]:
    d = np.asarray(d, dtype=np.float64).ravel()
    y = np.asarray(labels, dtype=np.float64).ravel() > 0.5
    if d.shape != y.shape:
        raise ValueError(f"{d.size} distances but {y.size} labels")
    return d, y


def _ratio(num: float, den: float) -> float:
    return float(num / den) if den else float("nan")


def binary_metrics(d: Any, labels: Any, threshold: float = 0.5) -> dict[str, float]:
    """Counts and rates of the rule "true pair iff d < threshold".

    The default 0.5 is the midpoint of the loss targets 0 (true) and 1 (false); the papers
    report accuracy, precision and recall without naming a threshold. Returns ``accuracy``,
    ``precision``, ``recall``, ``f1``, ``fpr`` (floats, NaN when undefined), the counts ``tp``,
    ``fp``, ``tn``, ``fn`` and ``threshold``. Raises ``ValueError`` when ``d`` and ``labels``
    differ in size.
    """
    d, y = _as_arrays(d, labels)
    pred = d < threshold
    tp, fp = int(np.sum(pred & y)), int(np.sum(pred & ~y))
    fn, tn = int(np.sum(~pred & y)), int(np.sum(~pred & ~y))
    precision, recall = _ratio(tp, tp + fp), _ratio(tp, tp + fn)
    return {"accuracy": _ratio(tp + tn, d.size), "precision": precision, "recall": recall,
            "f1": _ratio(2 * tp, 2 * tp + fp + fn), "fpr": _ratio(fp, fp + tn),
            "tp": tp, "fp": fp, "tn": tn, "fn": fn, "threshold": float(threshold)}


def roc_auc(d: Any, labels: Any) -> float:
    """ROC-AUC of the score -d: P(d of a random true pair < d of a random false pair).

    Ties count 1/2 (the Mann-Whitney U statistic / (n_pos * n_neg), equal to
    ``sklearn.metrics.roc_auc_score(labels, -d)``); NaN without true or without false pairs.
    """
    d, y = _as_arrays(d, labels)
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    order = np.argsort(-d, kind="mergesort")  # ranks of the score -d, ascending
    ranks = np.empty(d.size, dtype=np.float64)
    sorted_d = -d[order]
    ranks[order] = np.arange(1, d.size + 1)
    # average ranks over ties
    _, first, counts = np.unique(sorted_d, return_index=True, return_counts=True)
    for start, count in zip(first[counts > 1], counts[counts > 1]):
        ranks[order[start:start + count]] = start + (count + 1) / 2
    u = ranks[y].sum() - n_pos * (n_pos + 1) / 2
    return float(u / (n_pos * n_neg))


def roc_curve(d: Any, labels: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """ROC of the rule d <= t: ``(fpr, tpr, thresholds)``, each ``(K + 1,)``.

    One point per distinct distance t (K of them, ascending), plus the origin first (threshold
    -inf); the (fpr, tpr) points of ``sklearn.metrics.roc_curve(labels, -d,
    drop_intermediate=False)``. With no true (false) pairs, tpr (fpr) stays 0.
    """
    d, y = _as_arrays(d, labels)
    order = np.argsort(d, kind="mergesort")
    d_sorted, y_sorted = d[order], y[order]
    last = np.r_[np.nonzero(np.diff(d_sorted))[0], d.size - 1]  # last index of each distinct d
    tps = np.cumsum(y_sorted)[last]
    fps = np.cumsum(~y_sorted)[last]
    n_pos, n_neg = max(int(y.sum()), 1), max(int((~y).sum()), 1)
    fpr = np.r_[0.0, fps / n_neg]
    tpr = np.r_[0.0, tps / n_pos]
    return fpr, tpr, np.r_[-np.inf, d_sorted[last]]


def fpr_at_tpr(d: Any, labels: Any, tpr_target: float = 0.95) -> float:
    """False positive rate of the strictest rule d <= t whose true positive rate >= target.

    ``tpr_target`` in [0, 1] (0.95: the usual FPR95 of patch matching); NaN if none reaches it.
    """
    fpr, tpr, _ = roc_curve(d, labels)
    ok = np.nonzero(tpr >= tpr_target - 1e-12)[0]
    return float(fpr[ok[0]]) if ok.size else float("nan")


def best_threshold(d: Any, labels: Any) -> tuple[float, float]:
    """``(threshold, accuracy)`` maximising the accuracy of the rule d < threshold.

    Candidates are the midpoints between consecutive distinct distances plus one below the
    smallest and one above the largest (1e-6 away); the first best is taken. Choose it on
    validation pairs, never on test pairs.
    """
    d, y = _as_arrays(d, labels)
    u = np.unique(d)
    cands = np.r_[u[0] - 1e-6, (u[:-1] + u[1:]) / 2, u[-1] + 1e-6]
    order = np.argsort(d, kind="mergesort")
    d_sorted, y_sorted = d[order], y[order]
    n_below = np.searchsorted(d_sorted, cands, side="left")  # pairs with d < t
    tp = np.r_[0, np.cumsum(y_sorted)][n_below]
    fp = n_below - tp
    tn = int((~y).sum()) - fp
    acc = (tp + tn) / d.size
    i = int(np.argmax(acc))
    return float(cands[i]), float(acc[i])


def matching_metrics(d: Any, labels: Any, threshold: float = 0.5) -> dict[str, float]:
    """:func:`binary_metrics` at ``threshold`` plus ``roc_auc`` and ``fpr_at_95tpr``."""
    out = binary_metrics(d, labels, threshold)
    out["roc_auc"] = roc_auc(d, labels)
    out["fpr_at_95tpr"] = fpr_at_tpr(d, labels, 0.95)
    return out


def _ranks_one_way(queries: torch.Tensor, gallery: torch.Tensor, chunk_elems: int) -> torch.Tensor:
    """1-based rank of gallery[i] among all gallery items for query i (ties count against)."""
    n = queries.shape[0]
    rows = max(1, chunk_elems // max(n, 1))
    ranks = torch.empty(n, dtype=torch.long)
    for start in range(0, n, rows):
        q = queries[start:start + rows]
        dist = torch.cdist(q, gallery)  # rows x n
        idx = torch.arange(start, start + q.shape[0])
        own = dist[torch.arange(q.shape[0]), idx].unsqueeze(1)
        closer = (dist < own).sum(1)
        ties = (dist == own).sum(1) - 1
        ranks[start:start + q.shape[0]] = 1 + closer + ties
    return ranks


def retrieval_metrics(z_s: Any, z_o: Any, ks: tuple[int, ...] = (1, 5, 10),
                      chunk_elems: int = 1 << 24) -> dict[str, float]:
    """Top-k and mean reciprocal rank of the true partner, SAR->optical and optical->SAR.

    ``z_s``, ``z_o``: codes ``(N, n)``, row i of both from the same place. Each query is ranked
    against all N codes of the other modality by Euclidean distance (the ranking of d, eq. 1);
    ties count against the true partner. Distances are computed in chunks of about
    ``chunk_elems`` entries (default 2**24: 64 MiB in float32), so N = 100,000 fits in memory.
    Returns ``n`` and, for ``sar2opt`` and ``opt2sar``, ``<dir>_top<k>`` (share of queries whose
    partner ranks <= k) and ``<dir>_mrr``. Raises ``ValueError`` unless both are ``(N, n)``.
    """
    zs = torch.as_tensor(np.asarray(z_s), dtype=torch.float32)
    zo = torch.as_tensor(np.asarray(z_o), dtype=torch.float32)
    if zs.shape != zo.shape or zs.ndim != 2:
        raise ValueError(f"codes must be two N x n arrays, got {tuple(zs.shape)} and "
                         f"{tuple(zo.shape)}")
    out: dict[str, float] = {"n": float(zs.shape[0])}
    for name, q, g in (("sar2opt", zs, zo), ("opt2sar", zo, zs)):
        ranks = _ranks_one_way(q, g, chunk_elems).double()
        for k in ks:
            out[f"{name}_top{k}"] = float((ranks <= k).double().mean())
        out[f"{name}_mrr"] = float((1.0 / ranks).mean())
    return out


def nan_to_none(metrics: dict[str, Any]) -> dict[str, Any]:
    """JSON-friendly copy: NaN -> None."""
    return {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in metrics.items()}
