"""Detections drawn on images, like paper 003 Fig. 9, and precision-recall curves.

Colours: ground truth green; a prediction (score >= ``score_thr``) that matches a ship (IoU >= 0.5,
greedy in score order) blue; a false alarm red with a red circle; a missed ship (no matching
prediction) gets a yellow circle. Predictions on ignored (difficult/crowd) boxes are grey.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch

from saropt.detect.ap import box_iou_xyxy

GT_COLOR, TP_COLOR, FP_COLOR, MISS_COLOR, IGN_COLOR = "lime", "deepskyblue", "red", "yellow", "0.6"


def _np(x: Any, shape: tuple[int, ...] = (-1, 4)) -> np.ndarray:
    if x is None:
        return np.zeros((0, 4) if shape == (-1, 4) else (0,), np.float32)
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().numpy()
    return np.asarray(x, np.float32).reshape(shape)


def match_detections(gt: np.ndarray, pred: np.ndarray, scores: np.ndarray,
                     iou_thr: float = 0.5, ignore: np.ndarray | None = None
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Greedy matching in descending score: ``(pred correct, pred on an ignored box, gt missed)``.

    ``gt`` ``(G, 4)``, ``pred`` ``(P, 4)``, ``ignore`` ``(I, 4)`` xyxy px, ``scores`` ``(P,)``;
    returns boolean ``(P,)``, ``(P,)``, ``(G,)``. Each prediction takes the highest-IoU ship
    not yet taken when that IoU >= ``iou_thr`` (unlike the VOC matcher of
    :func:`saropt.detect.ap.voc_match`, which counts a prediction on a taken ship as false),
    else it is on an ignored box at IoU >= ``iou_thr``, else a false alarm. For drawing only.
    """
    gt, pred, scores = _np(gt), _np(pred), _np(scores, (-1,))
    ignore = _np(ignore)
    tp, ign = np.zeros(len(pred), bool), np.zeros(len(pred), bool)
    used = np.zeros(len(gt), bool)
    ious = box_iou_xyxy(pred, gt)
    ious_ign = box_iou_xyxy(pred, ignore)
    for k in np.argsort(-scores, kind="mergesort"):
        row = np.where(used, -1.0, ious[k]) if len(gt) else ious[k]
        if row.size and row.max() >= iou_thr:
            j = int(row.argmax())
            tp[k], used[j] = True, True
        elif ious_ign.shape[1] and ious_ign[k].max() >= iou_thr:
            ign[k] = True
    return tp, ign, ~used


def draw_detections(ax: Any, image: np.ndarray | torch.Tensor, gt: Any = None,
                    pred: Any = None, scores: Any = None, ignore: Any = None,
                    score_thr: float = 0.5, title: str | None = None) -> dict[str, int]:
    """Draw one image with its boxes on ``ax``; returns counts ``{"tp", "fp", "missed"}``.

    ``image`` is ``(C, H, W)`` / ``(H, W, C)`` / ``(H, W)``, float in [0, 1] or uint8; boxes
    xyxy in the image's pixels; predictions below ``score_thr`` are not drawn or counted.
    Colours in the module docstring.
    """
    from matplotlib.patches import Circle, Rectangle

    img = image.detach().cpu().numpy() if isinstance(image, torch.Tensor) else np.asarray(image)
    if img.ndim == 3 and img.shape[0] in (1, 3):
        img = np.moveaxis(img, 0, -1)
    img = img[..., 0] if img.ndim == 3 and img.shape[-1] == 1 else img
    ax.imshow(img, cmap="gray" if img.ndim == 2 else None, vmin=0,
              vmax=1 if img.dtype.kind == "f" else 255)
    gt, ignore = _np(gt), _np(ignore)
    pred, scores = _np(pred), _np(scores, (-1,))
    sel = scores >= score_thr
    pred, scores = pred[sel], scores[sel]
    tp, ign, missed = match_detections(gt, pred, scores, 0.5, ignore)

    def rect(b: np.ndarray, color: str, lw: float = 1.2, ls: str = "-") -> None:
        ax.add_patch(Rectangle((b[0], b[1]), b[2] - b[0], b[3] - b[1], fill=False,
                               edgecolor=color, linewidth=lw, linestyle=ls))

    def ring(b: np.ndarray, color: str) -> None:
        r = 0.75 * max(b[2] - b[0], b[3] - b[1]) + 6
        ax.add_patch(Circle(((b[0] + b[2]) / 2, (b[1] + b[3]) / 2), r, fill=False,
                            edgecolor=color, linewidth=1.5))

    for b in ignore:
        rect(b, IGN_COLOR, ls=":")
    for b, miss in zip(gt, missed):
        rect(b, GT_COLOR)
        if miss:
            ring(b, MISS_COLOR)
    for b, ok, ig in zip(pred, tp, ign):
        rect(b, TP_COLOR if ok else IGN_COLOR if ig else FP_COLOR, ls="--")
        if not ok and not ig:
            ring(b, FP_COLOR)
    ax.set_xticks([])
    ax.set_yticks([])
    counts = {"tp": int(tp.sum()), "fp": int((~tp & ~ign).sum()), "missed": int(missed.sum())}
    summary = (f"correct {counts['tp']}  false alarms {counts['fp']}  "
               f"missed {counts['missed']}")
    ax.set_title(f"{title}\n{summary}" if title else summary, fontsize=7)
    return counts


def legend_handles() -> list:
    """Matplotlib legend entries for the module's colours (ground truth, correct, false, missed)."""
    from matplotlib.lines import Line2D

    return [Line2D([], [], color=GT_COLOR, label="ground truth"),
            Line2D([], [], color=TP_COLOR, ls="--", label="correct detection"),
            Line2D([], [], color=FP_COLOR, marker="o", mfc="none", ls="--",
                   label="false alarm"),
            Line2D([], [], color=MISS_COLOR, marker="o", mfc="none", ls="", label="missed ship")]


def plot_sample(sample: Mapping[str, Any], predictions: Mapping[str, Any] | None = None,
                score_thr: float = 0.5) -> Any:
    """One detection sample (and optional ``{"boxes", "scores"}`` predictions) as a figure.

    The sample as a dataset returns it (``image`` ``(C, H, W)`` in [0, 1], ``boxes`` ``(N, 4)``
    xyxy px, ``meta["ignore_boxes"]``); see :func:`draw_detections`.
    """
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 6))
    predictions = predictions or {}
    draw_detections(ax, sample["image"], sample["boxes"], predictions.get("boxes"),
                    predictions.get("scores"), sample.get("meta", {}).get("ignore_boxes"),
                    score_thr, str(sample.get("meta", {}).get("file_name", "")))
    ax.legend(handles=legend_handles(), loc="lower right", fontsize=7, framealpha=0.7)
    return fig


def gallery(items: Sequence[Mapping[str, Any]], ncols: int = 3, score_thr: float = 0.5,
            title: str | None = None) -> Any:
    """A grid of images drawn by :func:`draw_detections`, ``ncols`` wide, one shared legend.

    Each item has ``image``, ``gt``, ``pred``, ``scores``, optional ``ignore`` and ``title``.
    """
    import matplotlib.pyplot as plt

    n = max(1, len(items))
    ncols = min(ncols, n)
    nrows = (n + ncols - 1) // ncols
    fig, axes = plt.subplots(nrows, ncols, figsize=(3.6 * ncols, 4.0 * nrows + 0.6),
                             squeeze=False, layout="constrained")
    for ax in axes.flat[len(items):]:
        ax.axis("off")
    for ax, it in zip(axes.flat, items):
        draw_detections(ax, it["image"], it.get("gt"), it.get("pred"), it.get("scores"),
                        it.get("ignore"), score_thr, it.get("title"))
    fig.legend(handles=legend_handles(), loc="outside lower center", ncol=4, fontsize=8)
    if title:
        fig.suptitle(title, fontsize=10)
    return fig


def plot_pr_curves(curves: Mapping[str, Mapping[str, Sequence[float]]],
                   aps: Mapping[str, Mapping[str, float | None]] | None = None,
                   title: str = "Precision-recall at IoU 0.5") -> Any:
    """A precision-recall figure: one step line per name (``{"recall", "precision"}``).

    ``aps`` gives each name's APs (``{definition: value}``) for its legend entry.
    """
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 4.5))
    for name, c in curves.items():
        label = name
        if aps and name in aps:
            label += "  " + "  ".join(f"{k} {v:.3f}" for k, v in aps[name].items()
                                      if v is not None)
        rec, prec = list(c["recall"]), list(c["precision"])
        ax.plot([0.0] + rec, [prec[0] if prec else 0.0] + prec, lw=1.5, label=label,
                drawstyle="steps-post")
    ax.set_xlim(0, 1.01)
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("recall")
    ax.set_ylabel("precision")
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="lower left")
    return fig
