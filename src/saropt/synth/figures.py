"""Figures of a scene pair (matplotlib), used by the demo and for docs/images.

SAR, optical on its grid, optical warped onto the SAR grid with the true mapping, a checkerboard
of the two, tie points.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from saropt.synth.geometry import warp_opt_to_sar
from saropt.synth.world import ScenePair


def checkerboard(a: np.ndarray, b: np.ndarray, tile: int = 128) -> np.ndarray:
    """Alternate ``tile`` px square tiles of two same-shape images (``a`` at the top-left)."""
    h, w = a.shape[:2]
    yy, xx = np.mgrid[0:h, 0:w]
    mask = ((yy // tile + xx // tile) % 2).astype(bool)
    out = a.copy()
    out[mask] = b[mask]
    return out


def gray3(img: np.ndarray) -> np.ndarray:
    """``(H, W)`` grey -> ``(H, W, 3)`` with the channel repeated."""
    return np.repeat(img[..., None], 3, axis=2)


def figure_panels(pair: ScenePair):
    """Matplotlib figure with the five panels; returns the figure."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    warped = warp_opt_to_sar(pair.optical, pair.mapping, pair.shape)
    fig, axes = plt.subplots(2, 3, figsize=(15, 10))
    panels = [(pair.sar8, "SAR (8-bit, dB scaled)"),
              (pair.optical, "optical on its own grid"),
              (warped, "optical warped onto the SAR grid (true mapping)"),
              (checkerboard(gray3(pair.sar8), warped), "checkerboard SAR / warped optical"),
              (pair.classes, "class map (SAR grid)")]
    for ax, (img, title) in zip(axes.ravel(), panels):
        ax.imshow(img, cmap="gray" if img.ndim == 2 and img is pair.sar8 else "tab10",
                  interpolation="nearest", vmin=0, vmax=255 if img is pair.sar8 else 9)
        ax.set_title(title, fontsize=10)
        ax.axis("off")
    _tie_points(axes.ravel()[5], pair)
    fig.tight_layout()
    return fig


def _tie_points(ax, pair: ScenePair) -> None:
    t = pair.tie_points
    ax.imshow(pair.sar8, cmap="gray", vmin=0, vmax=255)
    inl = ~t["is_outlier"]
    ax.scatter(t["sar_x"][inl], t["sar_y"][inl], s=8, c="lime", label="tie point")
    ax.scatter(t["sar_x"][~inl], t["sar_y"][~inl], s=30, c="red", marker="x",
               label="gross outlier")
    for name, sub in pair.subregions.items():
        x0, y0, x1, y1 = sub["rect"]
        ax.add_patch(_rect(x0, y0, x1, y1))
        ax.text(x0 + 5, y0 + 20, name, color="yellow", fontsize=7)
    ax.set_title(f"{len(t)} tie points in {len(pair.subregions)} sub-regions", fontsize=10)
    ax.legend(loc="lower right", fontsize=7)
    ax.axis("off")


def _rect(x0: float, y0: float, x1: float, y1: float):
    from matplotlib.patches import Rectangle

    return Rectangle((x0, y0), x1 - x0, y1 - y0, fill=False, ec="yellow", lw=0.8)


def save_example_images(pair: ScenePair, out_dir: str | Path, crop: int = 512) -> list[Path]:
    """PNG crops for the docs: SAR, optical on the SAR grid, checkerboard (same place)."""
    from saropt.utils.io import save_image_atomic

    out = Path(out_dir)
    h, w = pair.shape
    ys, xs = np.nonzero(pair.classes == 5)  # centre on the harbour when there is one
    cy, cx = (int(ys.mean()), int(xs.mean())) if len(ys) else (h // 2, w // 2)
    y0 = int(np.clip(cy - crop // 2, 0, h - crop))
    x0 = int(np.clip(cx - crop // 2, 0, w - crop))
    sl = (slice(y0, y0 + crop), slice(x0, x0 + crop))
    warped = warp_opt_to_sar(pair.optical, pair.mapping, pair.shape)
    paths = [save_image_atomic(out / "synth_sar.png", pair.sar8[sl]),
             save_image_atomic(out / "synth_optical.png", pair.optical_on_sar[sl]),
             save_image_atomic(out / "synth_checkerboard.png",
                               checkerboard(gray3(pair.sar8), warped, 64)[sl])]
    return paths
