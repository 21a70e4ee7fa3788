"""Figures of pair samples: one pair side by side, a batch as optical row above SAR row (Fig. 5)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from matplotlib.figure import Figure


def _to_image(t: torch.Tensor | np.ndarray) -> np.ndarray:
    """CxHxW float in [0, 1] -> HxW or HxWx3 for imshow."""
    a = t.detach().cpu().numpy() if isinstance(t, torch.Tensor) else np.asarray(t)
    a = np.clip(a.astype(np.float32), 0.0, 1.0)
    return a[0] if a.shape[0] == 1 else np.moveaxis(a, 0, -1)


def _show(ax: Any, img: torch.Tensor, title: str | None) -> None:
    a = _to_image(img)
    ax.imshow(a, cmap="gray" if a.ndim == 2 else None, vmin=0.0, vmax=1.0,
              interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])
    if title:
        ax.set_title(title, fontsize=9)


def plot_pair(sample: dict[str, Any], show_titles: bool = True,
              suptitle: str | None = None) -> Figure:
    """A matplotlib Figure of one sample: optical left, SAR right.

    ``sample["opt"]`` is ``(3, H, W)`` and ``sample["sar"]`` ``(1, H, W)``, float in [0, 1]
    (uint8 samples: convert with :func:`saropt.data.qxs.to_float` first, values are clipped
    to [0, 1]).
    """
    fig = Figure(figsize=(6, 3.2))
    axes = fig.subplots(1, 2)
    name = sample.get("id", sample.get("sar_id", ""))
    label = sample.get("label")
    extra = "" if label is None else f" (label {float(label):g})"
    _show(axes[0], sample["opt"], f"optical {sample.get('opt_id', name)}" if show_titles else None)
    _show(axes[1], sample["sar"], f"SAR {name}{extra}" if show_titles else None)
    if suptitle:
        fig.suptitle(suptitle)
    fig.tight_layout()
    return fig


def _unbatch(samples: Sequence[dict[str, Any]] | dict[str, Any]) -> list[dict[str, Any]]:
    if isinstance(samples, dict):  # a collated batch
        n = len(samples["sar"])
        return [{k: v[i] for k, v in samples.items() if hasattr(v, "__getitem__")}
                for i in range(n)]
    return list(samples)


def plot_batch(samples: Sequence[dict[str, Any]] | dict[str, Any], show_titles: bool = True,
               suptitle: str | None = None, max_items: int = 16) -> Figure:
    """Pairs in columns: optical images in the top row, their SAR images below (paper Fig. 5).

    ``samples``: sample dicts (as :func:`plot_pair`) or one collated batch; at most
    ``max_items`` columns are drawn.

    Raises:
        ValueError: when there is no sample.
    """
    items = _unbatch(samples)[:max_items]
    if not items:
        raise ValueError("plot_batch needs at least one sample")
    n = len(items)
    fig = Figure(figsize=(1.8 * n + 0.4, 4.0))
    axes = np.asarray(fig.subplots(2, n, squeeze=False))
    for j, s in enumerate(items):
        name = str(s.get("id", s.get("sar_id", j)))
        _show(axes[0, j], s["opt"], f"{s.get('opt_id', name)}" if show_titles else None)
        _show(axes[1, j], s["sar"], None)
    axes[0, 0].set_ylabel("optical")
    axes[1, 0].set_ylabel("SAR")
    if suptitle:
        fig.suptitle(suptitle)
    fig.tight_layout()
    return fig
