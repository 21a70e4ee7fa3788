"""Demo stage of ``saropt demo``: a small BNN trained, evaluated and exported on synthetic pairs.

A resnet18 BNN at 64 px for a few epochs on the synthetic QXS-layout pairs: train, evaluate
(metrics table, curves, ROC, histograms, gallery, localisation), export the SAR encoder for the
detection stage (``ctx.artifacts["bnn_sar_encoder"]``).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

#: CPU-scale settings (the paper trains ResNet50 at 256 px for 200 epochs; see docs/bnn.md)
DEMO_OVERRIDES = ["data.image_size=64", "data.train_size=100", "trainer.max_epochs=3",
                  "optim.name=adamw", "optim.lr=0.003", "optim.milestones=[2]",
                  "optim.gamma=0.3", "trainer.progress_bar=false", "trainer.log_every_n_steps=4"]
#: localisation in the demo: a few test pairs, a small window (seconds, not minutes, on a CPU)
LOCALISE_RADIUS, LOCALISE_PAIRS = 16, 16


def _dataset(ctx: Any) -> tuple[Path, Path, str, str, int] | None:
    """Root, split, folder names and patch size from the earlier stages (a split if missing)."""
    from saropt.data.demo import find_pair_dirs
    from saropt.data.splits import make_split

    root = ctx.artifacts.get("qxs_root")
    if not root or not Path(root).is_dir():
        return None
    root = Path(root)
    sar_dir = ctx.artifacts.get("qxs_sar_dir") or find_pair_dirs(root)[0]
    opt_dir = ctx.artifacts.get("qxs_opt_dir") or find_pair_dirs(root)[1]
    size = ctx.artifacts.get("qxs_patch_size") or int(sar_dir.split("_")[1])
    split = ctx.artifacts.get("qxs_split")
    if not split:
        split = ctx.path("bnn", "split", "split.json").parent
        make_split(root, split, train_frac=0.7, seed=ctx.seed, sar_dir=sar_dir, opt_dir=opt_dir)
    return root, Path(split), sar_dir, opt_dir, size


def run(ctx: Any) -> None:
    """Train, evaluate and export the demo BNN; write its report section (skipped without data).

    Reads ``ctx.artifacts["qxs_root"]`` (and the folder names, patch size, split and cache of the
    data stage); sets ``bnn_sar_encoder``, ``bnn_opt_encoder`` (.safetensors paths) and
    ``bnn_metrics``.
    """
    from saropt.bnn.config import BNNConfig
    from saropt.bnn.evaluate import evaluate
    from saropt.bnn.export import export_encoders
    from saropt.bnn.train import train
    from saropt.config import load_config

    rep = ctx.report
    rep.section("Bridge Neural Network")
    found = _dataset(ctx)
    if found is None:
        rep.text("*Skipped: no QXS-layout dataset (`ctx.artifacts['qxs_root']`).*")
        return
    root, split, sar_dir, opt_dir, size = found
    cache = ctx.artifacts.get("qxs_cache")
    overrides = [f"data.root={root}", f"data.split={split}", f"data.sar_dir={sar_dir}",
                 f"data.opt_dir={opt_dir}", f"data.patch_size={size}",
                 f"out_dir={ctx.path('bnn', 'run', 'x').parent}",
                 f"trainer.seed={ctx.seed}"] + DEMO_OVERRIDES
    if cache:
        overrides.append(f"data.cache={cache}")
    cfg = load_config(BNNConfig, "bnn/synthetic_resnet18", overrides)
    t0 = time.perf_counter()
    out = train(cfg)
    t_train = time.perf_counter() - t0
    ckpt = out / "checkpoints" / "last.ckpt"
    res = evaluate(ckpt, split, out / "eval", localise=LOCALISE_RADIUS,
                   localise_opts={"n": LOCALISE_PAIRS})
    files = export_encoders(ckpt, ctx.path("bnn", "encoders", "x").parent)
    ctx.artifacts.update(bnn_sar_encoder=str(files["sar"]), bnn_opt_encoder=str(files["opt"]),
                         bnn_metrics=res)
    _report(rep, cfg, res, files, t_train, out)


def _report(rep: Any, cfg: Any, res: dict[str, Any], files: dict[str, Path], t_train: float,
            out: Path) -> None:
    rep.text(f"`saropt bnn train bnn/synthetic_resnet18 ...`: {cfg.model.arch} encoders (two, "
             f"unshared), {cfg.input_size} px, {cfg.data.train_size} training pairs (+ as many "
             f"false pairs), {cfg.trainer.max_epochs} epochs, {cfg.optim.name} "
             f"(demo scale, not the paper's 200 epochs of SGD on ResNet50) in {t_train:.0f} s. "
             f"Test: {res['test']['n_pairs']} fixed 1:1 pairs; a pair matches when d < "
             f"{cfg.threshold}.")
    from saropt.bnn.evaluate import metrics_rows

    rep.table(metrics_rows(res), ["metric", "value"])
    loc = res.get("localise")
    if loc:
        from saropt.bnn.localise import LOCALISATION_HEADERS, localisation_rows

        n = next(iter(loc["methods"].values()))["n"]
        rep.text(f"Localisation (`saropt bnn eval --localise {loc['radius']}`): {n} test pairs, "
                 f"a {loc['template_px']} px SAR template cut at a known random offset of up to "
                 f"{loc['radius']} px, searched in the optical patch by the BNN (d over every "
                 "offset, coarse-to-fine) and by the library baselines (NCC of intensities and "
                 "of gradient magnitudes, mutual information). This BNN was trained with the "
                 "paper's random false pairs only, so nothing taught it position.")
        rep.table(localisation_rows(loc), LOCALISATION_HEADERS, floatfmt=".3g")
    captions = {"curves.png": "Validation accuracy, precision and recall per epoch (Fig. 7).",
                "roc.png": "ROC of the test pairs; the dot is d < 0.5 (not stated by the papers).",
                "histograms.png": "Distances d of true and false test pairs.",
                "gallery.png": "True/false positives/negatives (Fig. 6).",
                "localise_errors.png": "Share of pairs located within e px, per method.",
                "localise_dmaps.png": "SAR template, optical window (true box green) and each "
                                      "method's cost over the offsets (BNN: d; truth +, answer "
                                      "x)."}
    for path in res.get("figures", []):
        rep.image(path, captions.get(Path(path).name, ""))
    rep.text(f"Exported encoders: `{files['sar']}` and `{files['opt']}` (timm key names, JSON "
             "sidecars); the SAR encoder is the OSM backbone of the detection stage.")
