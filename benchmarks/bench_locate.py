"""Localisation benchmark: BNN vs NCC (intensity, gradient magnitude) vs mutual information.

1. **Synthetic pairs** (``saropt synth pairs``, 256 px): two small BNNs trained here (resnet18,
   64 px; the paper's random false pairs, and the same with half the false pairs drawn as
   shifted crops, ``data.shift_neg_frac=0.5``), then every method on the same held-out pairs
   cut with a known random offset (``saropt.bnn.localise``): mean error, share within 1/3/5 px,
   positions per second.
2. **Real pairs**: ``../shared/data/srif-optical-sar/coreg180`` (200 co-registered 180 px
   SAR/optical pairs): offsets cut the same way; a BNN trained here on 140 of them (shifted
   false pairs), the baselines on the 60 others. Skipped when the folder is absent.
3. **Tie points on the synthetic world** (``saropt synth scene``, exact truth): ``saropt data
   tiepoints`` per method -> tie-point error against the truth, share kept, and the
   registration error of ``saropt data build`` (affine per sub-region, RANSAC) against the
   truth with the automatic vs the scene's given noisy tie points.

    MALLOC_MMAP_MAX_=0 MALLOC_TRIM_THRESHOLD_=200000000000 OMP_NUM_THREADS=1 \\
        .venv/bin/python benchmarks/bench_locate.py --out /tmp/bench_locate

Small budgets (CPU): the BNNs are toy-sized, so their numbers show the method working, not
its ceiling. Prints markdown tables and writes ``results.json`` and figures to ``--out``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

REAL = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "srif-optical-sar" / \
    "coreg180"
BASELINES = ("ncc", "ncc_grad", "mi")
#: BNN variants trained on the synthetic pairs: name -> (epochs, config overrides)
VARIANTS = {
    "bnn_paper": lambda a: (a.epochs, []),
    "bnn_shift": lambda a: (a.epochs, ["data.shift_neg_frac=0.5", "data.shift_min=2",
                                       f"data.shift_max={a.radius}"]),
    "bnn_shift_all": lambda a: (2 * a.epochs, ["data.shift_neg_frac=1.0", "data.shift_min=6",
                                               f"data.shift_max={a.radius}"]),
    "bnn_shift8": lambda a: (2 * a.epochs, ["data.shift_neg_frac=0.5", "data.shift_min=8",
                                            f"data.shift_max={a.radius}"]),
}


def train_bnn(root: Path, split: Path, out: Path, patch: int, sar_dir: str, opt_dir: str,
              epochs: int, extra: list[str]) -> Path:
    from saropt.bnn.config import BNNConfig
    from saropt.bnn.train import train
    from saropt.config import load_config

    over = [f"data.root={root}", f"data.split={split}", f"data.sar_dir={sar_dir}",
            f"data.opt_dir={opt_dir}", f"data.patch_size={patch}", "data.image_size=64",
            f"out_dir={out}", f"trainer.max_epochs={epochs}", "optim.name=adamw",
            "optim.lr=0.003", f"optim.milestones=[{max(1, epochs - 2)}]", "optim.gamma=0.3",
            "trainer.precision=32-true", "trainer.channels_last=false",
            "trainer.progress_bar=false", "trainer.log_every_n_steps=10"] + extra
    cfg = load_config(BNNConfig, "bnn/synthetic_resnet18", over)
    run = train(cfg)
    return run / "checkpoints" / "last.ckpt"


def localise(ckpts: dict[str, Path], root: Path, ids: list[str], sar_dir: str, opt_dir: str,
             patch: int, radius: int, out: Path, tag: str) -> dict:
    from saropt.bnn.export import load_module
    from saropt.bnn.localise import (
        LOCALISATION_HEADERS,
        localisation_rows,
        plot_dmap_gallery,
        plot_error_distribution,
        run_localisation,
    )
    from saropt.bnn.locate import BNNMatcher
    from saropt.bnn.matchers import make_baseline
    from saropt.data import QXSSAROPT
    from saropt.utils.io import save_figure_atomic
    from saropt.utils.table import format_table

    ds = QXSSAROPT(root, ids=ids, sar_dir=sar_dir, opt_dir=opt_dir, patch_size=patch)
    pairs = [ds.pair_u8(i) for i in ids]
    matchers = {}
    for name, ckpt in ckpts.items():
        m = load_module(ckpt).model
        matchers[name] = BNNMatcher(m.sar, m.opt)
    matchers.update({b: make_baseline(b) for b in BASELINES})
    res = run_localisation(matchers, pairs, radius, seed=0, stride=4, keep_maps=3)
    save_figure_atomic(plot_error_distribution(res), out / f"{tag}_errors.png")
    save_figure_atomic(plot_dmap_gallery(res, 3), out / f"{tag}_dmaps.png")
    print(f"\n### {tag}: {len(pairs)} pairs, radius {radius} px, template "
          f"{res['template_px']} px\n")
    print(format_table(localisation_rows(res), LOCALISATION_HEADERS, floatfmt=".3g",
                       markdown=True))
    return {k: res[k] for k in ("radius", "template_px", "methods")}


def synthetic_pairs(args: argparse.Namespace, out: Path) -> tuple[dict, dict[str, Path]]:
    from saropt.data import make_split, read_split
    from saropt.synth.writers import write_qxs_pairs

    root = out / "qxs"
    if not (args.reuse and (root / "manifest.csv").is_file()):
        write_qxs_pairs(root, args.n_train + args.n_test, seed=0, patch_size=256,
                        scene_size=1024, max_calm_fraction=0.2, progress=False)
        make_split(root, out / "split", train=args.n_train, val=0, test=args.n_test, seed=0,
                   mode="random")
    split = read_split(out / "split")
    dirs = ("sar_256_oc_0.2", "opt_256_oc_0.2")
    ckpts = {}
    for name in args.variants.split(","):
        epochs, extra = VARIANTS[name](args)
        last = out / name / "checkpoints" / "last.ckpt"
        if args.reuse and last.is_file():
            ckpts[name] = last
            continue
        t = time.perf_counter()
        ckpts[name] = train_bnn(root, out / "split", out / name, 256, *dirs, epochs, extra)
        print(f"trained {name} in {time.perf_counter() - t:.0f} s", file=sys.stderr)
    res = localise(ckpts, root, split["test"], *dirs, 256, args.radius, out, "synthetic")
    return res, ckpts


def real_pairs(args: argparse.Namespace, out: Path) -> dict | None:
    from saropt.data import make_split, read_split

    if not REAL.is_dir():
        print(f"real pairs skipped: {REAL} is absent", file=sys.stderr)
        return None
    make_split(REAL, out / "real_split", train=140, val=0, test=60, seed=0, sar_dir="sar",
               opt_dir="opt")
    split = read_split(out / "real_split")
    r = args.real_radius
    ckpt = train_bnn(REAL, out / "real_split", out / "real_bnn_shift", 180, "sar", "opt",
                     args.epochs, ["data.shift_neg_frac=0.5", "data.shift_min=2",
                                   f"data.shift_max={r}"])
    return localise({"bnn_shift": ckpt}, REAL, split["test"], "sar", "opt", 180, r, out,
                    "real_coreg180")


def registration_rmse(result, mapping, size: int) -> float:
    """RMSE (px) of the built fits against the true mapping over every kept patch."""
    errs = []
    for sr, fit in zip(result.plan.subregions, result.plan.fits):
        for r in (r for r in result.rows if r["subregion"] == sr.name):
            ys, xs = np.mgrid[r["y"]:r["y"] + size:16, r["x"]:r["x"] + size:16]
            xy = np.column_stack([xs.ravel(), ys.ravel()]).astype(float)
            errs.append(fit(xy) - mapping.sar_to_opt(xy))
    e = np.concatenate(errs) if errs else np.zeros((0, 2))
    return float(np.sqrt(np.mean(np.sum(e ** 2, 1)))) if len(e) else float("nan")


def tiepoints(args: argparse.Namespace, out: Path, bnn: Path | None) -> dict:
    from saropt.build import BuildConfig, build_dataset
    from saropt.build.autotie import auto_tiepoints
    from saropt.build.tiepoints import read_tiepoints
    from saropt.synth import make_scene_pair, write_scene
    from saropt.utils.table import format_table

    pair = make_scene_pair(args.scene, 0)
    scene = write_scene(pair, out / "scene")
    sources = {"given (noisy, hand-picked stand-in)": scene / "tiepoints.csv"}
    info = {}
    methods = [(m, None, 128) for m in BASELINES if m in args.tie_methods.split(",")]
    if bnn is not None and "bnn" in args.tie_methods.split(","):
        methods.append(("bnn", str(bnn), 256 - 2 * args.radius))
    for method, model, patch in methods:
        t = time.perf_counter()
        path = out / f"tp_{method}.csv"
        try:
            res = auto_tiepoints(scene / "sar.tif", scene / "optical.tif", path,
                                 subregions=scene / "subregions.json", model=model,
                                 method=method, patch=patch, progress=False)
        except Exception as err:  # noqa: BLE001 - report a method that finds nothing
            info[method] = {"error": str(err)}
            continue
        info[method] = {"seconds": time.perf_counter() - t, "patch": patch,
                        "located": sum(r["located"] for r in res["subregions"]),
                        "kept": res["tie_points"]}
        sources[f"auto {method}"] = path
    rows = []
    for name, path in sources.items():
        pts = np.concatenate(list(read_tiepoints(path).values()))
        err = np.hypot(*(pts[:, 2:4] - pair.mapping.sar_to_opt(pts[:, :2])).T)
        cfg = BuildConfig(sar=scene / "sar.tif", optical=scene / "optical.tif", tiepoints=path,
                          subregions=scene / "subregions.json", out=out / f"build_{len(rows)}",
                          patches={"size": 128}, progress=False, summary=False)
        result = build_dataset(cfg, fresh=True)
        ok = sum(f.ok for f in result.plan.fits)
        rmse = registration_rmse(result, pair.mapping, 128)
        key = name.split()[-1] if name.startswith("auto") else "given"
        m = info.get(key, {})
        rows.append((name, len(pts), m.get("located", "-"), float(np.median(err)),
                     float((err <= 1).mean()), float((err <= 3).mean()),
                     f"{ok}/{len(result.plan.fits)}", rmse, m.get("seconds", float("nan"))))
        info.setdefault(key, {}).update(tie_points=len(pts), median_err=float(np.median(err)),
                                        within_1=float((err <= 1).mean()),
                                        within_3=float((err <= 3).mean()),
                                        subregions_built=ok, registration_rmse=rmse)
    print(f"\n### tie points: synthetic scene {args.scene} px (seed 0), 9 sub-regions\n")
    print(format_table(rows, ["tie points", "kept", "located", "median err px", "<= 1 px",
                              "<= 3 px", "sub-regions built", "build RMSE vs truth px",
                              "seconds"], floatfmt=".3g", markdown=True))
    return info


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", default="/tmp/bench_locate")
    p.add_argument("--radius", type=int, default=32, help="synthetic search radius px")
    p.add_argument("--real-radius", type=int, default=24, help="coreg180 search radius px")
    p.add_argument("--n-train", type=int, default=300)
    p.add_argument("--n-test", type=int, default=40)
    p.add_argument("--epochs", type=int, default=6)
    p.add_argument("--scene", type=int, default=1024, help="tie-point scene side px")
    p.add_argument("--parts", default="synthetic,real,tiepoints")
    p.add_argument("--variants", default="bnn_paper,bnn_shift,bnn_shift_all",
                   help=f"BNN variants to train: {', '.join(VARIANTS)}")
    p.add_argument("--reuse", action="store_true",
                   help="reuse pairs and finished BNN runs found in --out")
    p.add_argument("--tie-methods", default="mi,ncc_grad,ncc,bnn",
                   help="tiepoints part: matchers (bnn needs a checkpoint)")
    p.add_argument("--bnn", default=None, help="tiepoints part: a BNN checkpoint to use "
                   "(default: the --tie-bnn variant trained in the synthetic part, if run)")
    p.add_argument("--tie-bnn", default="bnn_paper", help="variant used for tie points")
    args = p.parse_args()
    import torch

    torch.set_num_threads(1)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    parts = args.parts.split(",")
    results: dict = {"args": vars(args)}
    ckpts: dict[str, Path] = {}
    save = lambda: (out / "results.json").write_text(  # noqa: E731 - after every part
        json.dumps(results, indent=2, default=str))
    if "synthetic" in parts:
        results["synthetic"], ckpts = synthetic_pairs(args, out)
        save()
    if "real" in parts:
        results["real"] = real_pairs(args, out)
        save()
    if "tiepoints" in parts:
        bnn = Path(args.bnn) if args.bnn else ckpts.get(args.tie_bnn)
        results["tiepoints"] = tiepoints(args, out, bnn)
        save()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
