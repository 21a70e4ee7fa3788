"""BNN figures: training curves, ROC, distance histograms, TP/FP/TN/FN gallery.

The curves follow paper 003 Fig. 7 (accuracy, precision, recall per epoch) and the gallery its
Fig. 6. Each ``plot_*`` function returns a matplotlib Figure (Agg backend) for
:func:`saropt.utils.io.save_figure_atomic`.
"""

from __future__ import annotations

import csv
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

CURVE_KEYS = (("val/accuracy", "Accuracy"), ("val/precision", "Precision"),
              ("val/recall", "Recall"))


def _plt() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def read_epoch_metrics(csv_path: str | Path) -> dict[str, list[tuple[int, float]]]:
    """``{metric: [(epoch, value), ...]}`` from a Lightning CSVLogger ``metrics.csv``."""
    series: dict[str, dict[int, float]] = {}
    with open(csv_path, newline="") as f:
        for row in csv.DictReader(f):
            epoch = row.get("epoch")
            if not epoch:
                continue
            for key, value in row.items():
                if key in ("epoch", "step") or value in ("", None):
                    continue
                series.setdefault(key, {})[int(float(epoch))] = float(value)
    return {k: sorted(v.items()) for k, v in series.items()}


def plot_curves(series: dict[str, list[tuple[int, float]]]) -> Any:
    """Validation accuracy, precision and recall per epoch (one panel each, as in Fig. 7)."""
    plt = _plt()
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.4))
    for ax, (key, title) in zip(axes, CURVE_KEYS):
        pts = series.get(key, [])
        if pts:
            ep, val = zip(*pts)
            ax.plot(np.asarray(ep) + 1, val, marker="o" if len(pts) < 30 else None, ms=3)
        else:
            ax.text(0.5, 0.5, "not logged", ha="center", transform=ax.transAxes)
        ax.set(title=f"({'abc'[CURVE_KEYS.index((key, title))]}) {title}", xlabel="epoch",
               ylim=(0, 1.02))
        ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def plot_roc(fpr: np.ndarray, tpr: np.ndarray, auc: float, point: tuple[float, float],
             threshold: float) -> Any:
    """ROC curve of the test pairs with the operating point ``point`` (fpr, tpr) of d < threshold.

    ``fpr``/``tpr``: ``(K,)`` from :func:`saropt.bnn.metrics.roc_curve`; ``auc`` for the legend.
    """
    plt = _plt()
    fig, ax = plt.subplots(figsize=(4.2, 4.2))
    ax.plot(fpr, tpr, label=f"BNN (AUC {auc:.3f})")
    ax.plot([0, 1], [0, 1], "k--", lw=0.8, label="chance")
    ax.plot(*point, "ro", label=f"d < {threshold:g}")
    ax.set(xlabel="false positive rate", ylabel="true positive rate", title="ROC, test pairs",
           xlim=(0, 1), ylim=(0, 1.01))
    ax.legend(loc="lower right")
    ax.grid(alpha=0.3)
    return fig


def plot_histograms(d: np.ndarray, labels: np.ndarray, threshold: float) -> Any:
    """Histograms of the distances d ``(N,)`` of true and false pairs, with the threshold line.

    ``labels`` ``(N,)``: 1 true, 0 false. The 40 bins span the data and the threshold.
    """
    plt = _plt()
    fig, ax = plt.subplots(figsize=(5.5, 3.4))
    lo = min(float(np.min(d)) if d.size else 0.0, threshold) - 0.02
    hi = max(float(np.max(d)) if d.size else 1.0, threshold) + 0.02
    bins = np.linspace(max(lo, 0.0), hi, 41)  # zoomed on the data; the threshold stays in view
    y = labels > 0.5
    ax.hist(d[y], bins=bins, alpha=0.6, label=f"true pairs ({int(y.sum())})", color="tab:green")
    ax.hist(d[~y], bins=bins, alpha=0.6, label=f"false pairs ({int((~y).sum())})",
            color="tab:red")
    ax.axvline(threshold, color="k", ls="--", label=f"threshold {threshold:g}")
    ax.set(xlabel="distance d", ylabel="pairs", title="Distances of test pairs")
    ax.legend()
    return fig


def plot_gallery(groups: dict[str, Sequence[tuple[str, str, float]]],
                 load: Callable[[str, str], tuple[np.ndarray, np.ndarray]]) -> Any:
    """Rows TP/FP/TN/FN (paper 003 Fig. 6); each pair shown as optical then SAR, titled with d.

    ``groups``: ``{outcome: [(sar_id, opt_id, d), ...]}``
    (:func:`saropt.bnn.evaluate.gallery_groups`); ``load(sar_id, opt_id)`` returns (SAR
    ``(H, W)`` uint8, optical ``(H, W, 3)`` uint8).
    """
    plt = _plt()
    per_row = max([len(v) for v in groups.values()] + [1])
    fig, axes = plt.subplots(len(groups), 2 * per_row, figsize=(2 * per_row * 1.3,
                                                                len(groups) * 1.55),
                             squeeze=False)
    for r, (name, items) in enumerate(groups.items()):
        for c in range(per_row):
            ax_o, ax_s = axes[r, 2 * c], axes[r, 2 * c + 1]
            for ax in (ax_o, ax_s):
                ax.set_xticks([])
                ax.set_yticks([])
            if c >= len(items):
                for ax in (ax_o, ax_s):
                    ax.set_frame_on(False)
                if c == 0:
                    ax_o.text(0.5, 0.5, "none", ha="center", va="center",
                              transform=ax_o.transAxes)
                continue
            sar_id, opt_id, dist = items[c]
            sar, opt = load(sar_id, opt_id)
            ax_o.imshow(opt)
            ax_s.imshow(sar, cmap="gray", vmin=0, vmax=255)
            ax_o.set_title(f"opt {opt_id}", fontsize=7)
            ax_s.set_title(f"sar {sar_id} d={dist:.2f}", fontsize=7)
        axes[r, 0].set_ylabel(name, fontsize=10)
    fig.suptitle("Test pairs by outcome (optical | SAR): TP, FP, TN, FN", fontsize=10)
    fig.tight_layout()
    return fig
