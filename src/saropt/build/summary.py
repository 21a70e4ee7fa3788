"""``summary.md`` and its figures (matplotlib), written by ``saropt data build``.

Registration per sub-region (tie points and residual vectors), patch decisions over the scene,
and a sample of kept and rejected patch pairs with reasons.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

from saropt.utils.io import save_figure_atomic, write_text_atomic
from saropt.utils.table import format_table


def _thumb(sar, x0: int, y0: int, w: int, h: int, side: int = 512) -> tuple[np.ndarray, float]:
    """8-bit SAR window decimated to at most ``side`` px, and its scale (thumb px per SAR px)."""
    from rasterio.windows import Window

    f = max(1.0, max(w, h) / side)
    shape = (max(1, int(h / f)), max(1, int(w / f)))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        raw = sar.ds.read(1, window=Window(x0, y0, w, h), out_shape=shape)
    return sar.scaler(raw), shape[1] / w


def registration_figure(result, sar, path: Path, max_panels: int = 9) -> Path:
    """Per sub-region (first ``max_panels``): SAR thumbnail, tie points, residual vectors.

    Inliers green with residuals magnified (the gain is in the x label), outliers red at
    scale 1; axes in SAR px. ``result`` is a :class:`~saropt.build.pipeline.BuildResult`,
    ``sar`` its :class:`~saropt.build.rasters.SarSource`. Returns ``path`` (PNG, atomic).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    items = list(zip(result.plan.subregions, result.plan.fits))[:max_panels]
    n = len(items)
    cols = min(3, n)
    rows = (n + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(3.3 * cols, 3.5 * rows), squeeze=False,
                             layout="constrained")
    for ax in axes.ravel()[n:]:
        ax.axis("off")
    for ax, (sr, fit) in zip(axes.ravel(), items):
        x0, y0, x1, y1 = sr.bbox
        img, _ = _thumb(sar, x0, y0, x1 - x0, y1 - y0, 320)
        ax.imshow(img, cmap="gray", extent=(x0 - 0.5, x1 - 0.5, y1 - 0.5, y0 - 0.5))
        if sr.polygon is not None:
            ax.plot(*np.vstack([sr.polygon, sr.polygon[:1]]).T, "c-", lw=1)
        _residual_arrows(ax, fit, max(x1 - x0, y1 - y0))
        status = (f"RMSE {fit.rmse:.2f} px, {int(fit.inliers.sum())}/{fit.n_points} inliers"
                  if fit.ok else f"REFUSED: {fit.reason}")
        ax.set_title(f"{sr.name} ({fit.model})\n{status}", fontsize=8)
        ax.set_xlim(x0 - 0.5, x1 - 0.5)
        ax.set_ylim(y1 - 0.5, y0 - 0.5)
        ax.tick_params(labelsize=6)
    fig.suptitle("Tie points (green inlier, red outlier) and residual vectors (magnified)",
                 fontsize=9)
    return save_figure_atomic(fig, path, dpi=90)


def _residual_arrows(ax, fit, extent: float) -> None:
    if not len(fit.points):
        return
    p = fit.points
    inl = fit.inliers if len(fit.inliers) == len(p) else np.ones(len(p), bool)
    ax.plot(p[inl, 0], p[inl, 1], "g+", ms=6)
    ax.plot(p[~inl, 0], p[~inl, 1], "rx", ms=6)
    if len(fit.residuals) == len(p):
        mag = np.linalg.norm(fit.residuals[inl], axis=1)
        typical = float(np.median(mag)) if mag.size and np.median(mag) > 0 else 1.0
        gain = 0.05 * extent / typical
        r = fit.residuals
        ax.quiver(p[inl, 0], p[inl, 1], r[inl, 0] * gain, r[inl, 1] * gain, angles="xy",
                  scale_units="xy", scale=1, color="yellow", width=0.004)
        ax.quiver(p[~inl, 0], p[~inl, 1], r[~inl, 0], r[~inl, 1], angles="xy",
                  scale_units="xy", scale=1, color="red", width=0.004)
        ax.set_xlabel(f"inlier residuals x{gain:.0f}, outliers x1", fontsize=7)


def overview_figure(result, sar, cfg, path: Path) -> Path:
    """The SAR scene with sub-regions (cyan, refused magenta) and kept/rejected patch outlines.

    Returns ``path`` (PNG, atomic).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle

    h, w = sar.shape
    img, _ = _thumb(sar, 0, 0, w, h, 700)
    fig, ax = plt.subplots(figsize=(7, 7 * h / w + 0.5))
    ax.imshow(img, cmap="gray", extent=(-0.5, w - 0.5, h - 0.5, -0.5))
    size = cfg.patches.size
    for sr, fit in zip(result.plan.subregions, result.plan.fits):
        x0, y0, x1, y1 = sr.bbox
        ax.add_patch(Rectangle((x0, y0), x1 - x0, y1 - y0, fill=False,
                               ec="cyan" if fit.ok else "magenta", lw=1.5))
        ax.text(x0, y0, sr.name, color="cyan" if fit.ok else "magenta", fontsize=7, va="bottom")
    for r in result.rows:
        color = "lime" if r["decision"] == "keep" else "red"
        ax.add_patch(Rectangle((r["x"] + 4, r["y"] + 4), size - 8, size - 8, fill=False,
                               ec=color, lw=0.6))
    ax.set_title(f"{cfg.scene_name()}: kept (green) and rejected (red) patches; "
                 "sub-regions cyan, refused magenta", fontsize=9)
    return save_figure_atomic(fig, path, dpi=90)


def samples_figure(result, cfg, path: Path, n: int = 6, seed: int = 0) -> Path | None:
    """Up to ``n`` kept and ``n`` rejected pairs (SAR top, warped optical bottom) with reasons.

    Rejected pairs are spread over the reasons; pairs without staged PNGs (nodata, outside the
    optical) are left out. Returns ``path``, or None when there is no pair to show.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from PIL import Image

    rng = np.random.default_rng(seed)
    kept = [r for r in result.rows if r["decision"] == "keep"]
    rejected = [r for r in result.rows if r["decision"] == "reject" and r.get("tex_sar") != ""]
    pick = _sample(kept, n, rng) + _sample_by_reason(rejected, n, rng)
    if not pick:
        return None
    fig, axes = plt.subplots(2, len(pick), figsize=(1.9 * len(pick), 4.4), squeeze=False)
    for j, r in enumerate(pick):
        for i, kind in enumerate(("sar", "opt")):
            img = np.asarray(Image.open(r["_stage"] / f"{r['x']}_{r['y']}_{kind}.png"))
            axes[i, j].imshow(img, cmap="gray" if img.ndim == 2 else None, vmin=0, vmax=255)
            axes[i, j].axis("off")
        label = f"keep #{r['id']}" if r["decision"] == "keep" else r["reason"].split(" (")[0]
        axes[0, j].set_title(label, fontsize=7, color="green" if r["id"] != "" else "red")
    fig.suptitle("Sample patch pairs (top SAR, bottom warped optical): kept, then rejected",
                 fontsize=9)
    return save_figure_atomic(fig, path, dpi=90)


def _sample(rows: list, n: int, rng) -> list:
    if len(rows) <= n:
        return list(rows)
    return [rows[i] for i in sorted(rng.choice(len(rows), n, replace=False))]


def _sample_by_reason(rows: list, n: int, rng) -> list:
    """Up to ``n`` rejected rows, spread over the different reasons."""
    by: dict[str, list] = {}
    for r in rows:
        by.setdefault(r["reason"].split(" (")[0], []).append(r)
    out: list = []
    while len(out) < n and any(by.values()):
        for k in list(by):
            if by[k] and len(out) < n:
                out.append(by[k].pop(int(rng.integers(len(by[k])))))
    return out


def write_summary(result, cfg, sar, optical) -> Path:
    """Write ``summary.md`` and ``figures/*.png`` in the output folder; returns the summary path.

    The summary gives the inputs, the per-sub-region registration table (RMSE and leave-one-out
    RMSE in optical px) and the patch decisions by reason.
    """
    out = result.out
    figs = out / "figures"
    registration_figure(result, sar, figs / "registration.png")
    overview_figure(result, sar, cfg, figs / "patches_overview.png")
    has_samples = samples_figure(result, cfg, figs / "samples.png") is not None
    info = result.to_json()
    lines = [f"# saropt data build: {cfg.scene_name()}", "",
             f"SAR `{cfg.sar}` ({sar.shape[1]} x {sar.shape[0]}, {sar.dtype}, scaling "
             f"{sar.scaler.to_json()}), optical `{cfg.optical}` ({optical.shape[1]} x "
             f"{optical.shape[0]}). Patches {cfg.patches.size} px, overlap "
             f"{cfg.patches.overlap:g} (stride {cfg.patches.stride} px); optical warped onto "
             "the SAR grid with bilinear interpolation.", "",
             f"**{info['patches_kept']} patch pairs kept**, {info['patches_rejected']} "
             f"rejected; {info['seconds']:.1f} s, {info['mp_per_s']:.2f} MP/s of SAR grid.", "",
             "## Registration per sub-region", ""]
    reg_rows = [(f["name"], cfg.registration.model, f"{f['inliers']}/{f['points']}",
                 _fmt(f["rmse"]), _fmt(f["rmse_loo"]), "built" if f["ok"] else f["reason"])
                for f in info["subregions"]]
    lines += [format_table(reg_rows, ["sub-region", "model", "inliers", "RMSE px",
                                      "LOO RMSE px", "status"], markdown=True), "",
              "![registration](figures/registration.png)", "", "## Patch decisions", ""]
    why = sorted(info["rejected_by"].items(), key=lambda kv: -kv[1])
    lines += [format_table([("kept", info["patches_kept"])] + why, ["decision", "patches"],
                           markdown=True), "", "![patches](figures/patches_overview.png)", ""]
    if has_samples:
        lines += ["![samples](figures/samples.png)", ""]
    lines += ["Every patch's scores, decision and reason are in `manifest.csv`; per-point "
              "residuals in `registration.json`.", ""]
    return write_text_atomic(out / "summary.md", "\n".join(lines))


def _fmt(v: float | None) -> str:
    return "-" if v is None or not np.isfinite(v) else f"{v:.3f}"
