"""Does pretraining help a SAR ship detector? Random vs OSM vs OSD init, several training-set
sizes and seeds, at the same budget, on synthetic SAR ship chips.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_transfer.py --out bench_out/transfer

1. Data (rendered once): SAR ship chips (``write_ship_datasets``, seed 1: ``--train`` training
   and ``--test`` test chips, HRSID layout with land masks); a separate synthetic world
   (seed 2) whose optical chips train the OSD; ``--pairs`` SAR-optical 64 px pairs (seed 3)
   train the OSM BNN.
2. Pretraining (once): the BNN (ResNet18, ``bnn/synthetic_resnet18`` with the demo's AdamW,
   ``--bnn-epochs`` epochs on ``--pairs`` pairs: more than the demo's 100) and its SAR encoder
   exported (OSM); an optical Faster R-CNN R18 (3 channels) on the other world's optical chips
   (OSD, ``--osd-steps`` steps).
3. For every training-set size in ``--sizes`` (the first N training chips), every seed in
   ``--seeds`` and every init: the demo's CPU-sized Faster R-CNN R18-FPN trained ``--steps``
   SGD steps of batch 4 (same steps, schedule and settings for every init and size; BN
   trainable and all stages trainable for all inits), then AP@0.5 on the test chips three ways
   (VOC07 11-point, VOC all-point, COCO 101-point), land false alarms and recall of ships at sea
   at score >= 0.3.
4. ``results.json`` (every run; a rerun skips runs already there), ``table.md`` (mean and
   standard deviation over seeds), ``transfer.png``. ``--repeat`` retrains the first run to check
   that the same seed on the same thread count gives the same numbers.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from saropt.utils.io import write_json_atomic
from saropt.utils.table import format_table

INITS = ("random", "OSM", "OSD")
SCORE_THR = 0.3
METRICS = (("ap_voc07", "AP50 VOC07"), ("ap_voc", "AP50 VOC all-pt"),
           ("ap_coco", "AP50 COCO"), ("fa_land", "land FA"), ("recall_sea", "sea recall"))


def render(out: Path, a: argparse.Namespace) -> dict[str, Path]:
    from saropt.synth import write_qxs_pairs, write_ship_datasets

    paths = {"ships": out / "data" / "ships", "osd_world": out / "data" / "osd_world",
             "qxs": out / "data" / "qxs"}
    if not (paths["ships"] / "summary.json").is_file():
        write_ship_datasets(paths["ships"], 1, a.train, a.test, image_size=a.chip,
                            progress=False)
    if not (paths["osd_world"] / "summary.json").is_file():
        write_ship_datasets(paths["osd_world"], 2, a.osd_chips, 1, image_size=a.chip,
                            progress=False)
    if not (paths["qxs"] / "manifest.csv").is_file():
        write_qxs_pairs(paths["qxs"], a.pairs, 3, patch_size=64, scene_size=512,
                        progress=False)
    return paths


def pretrain_osm(paths: dict[str, Path], out: Path, epochs: int) -> Path:
    """The BNN on ``paths['qxs']`` (90 % train / 10 % test), its SAR encoder exported."""
    from saropt.bnn.config import BNNConfig
    from saropt.bnn.evaluate import evaluate
    from saropt.bnn.export import export_encoders
    from saropt.bnn.train import train
    from saropt.config import load_config
    from saropt.data import make_split

    enc = out / "osm" / "encoders" / "sar_encoder.safetensors"
    if enc.is_file():
        return enc
    split = out / "osm" / "split"
    make_split(paths["qxs"], split, train_frac=0.9, seed=0, sar_dir="sar_64_oc_0.2",
               opt_dir="opt_64_oc_0.2")
    cfg = load_config(BNNConfig, "bnn/synthetic_resnet18", [
        f"data.root={paths['qxs']}", f"data.split={split}", f"out_dir={out / 'osm' / 'run'}",
        f"trainer.max_epochs={epochs}", "optim.name=adamw", "optim.lr=0.003",
        f"optim.milestones=[{max(1, epochs - 2)}]", "optim.gamma=0.3",
        "trainer.progress_bar=false", "trainer.precision=32-true",
        "trainer.channels_last=false"])
    run = train(cfg)
    ckpt = run / "checkpoints" / "last.ckpt"
    res = evaluate(ckpt, split, run / "eval", figures=False)
    print(f"OSM BNN: test ROC-AUC {res['test']['roc_auc']:.3f}, accuracy "
          f"{res['test']['accuracy']:.3f}", flush=True)
    return export_encoders(ckpt, enc.parent)["sar"]


def detector_config(ships: Path, out_dir: Path, init: str, seed: int, n_train: int,
                    steps: int, size: int, in_chans: int = 1) -> Any:
    """The demo's detector recipe for ``steps`` SGD steps of batch 4 on ``n_train`` chips."""
    from saropt.detect.demo import demo_config
    from saropt.detect.module import DetectConfig

    cfg = demo_config(ships / "hrsid", out_dir, init, seed).model_dump()
    epochs = math.ceil(steps / math.ceil(n_train / cfg["data"]["batch_size"]))
    cfg["model"]["options"].update(min_size=size, max_size=size)
    cfg["model"]["in_chans"] = in_chans
    cfg["data"]["max_train_images"] = n_train
    cfg["data"]["max_val_images"] = 4  # the test chips are scored after training, in full
    cfg["optim"]["milestones"] = [max(1, round(0.8 * epochs))]
    cfg["trainer"].update(max_epochs=epochs, check_val_every_n_epoch=epochs,
                          checkpoint_every_n_epochs=epochs)
    cfg["description"] = f"bench_transfer: init {init}, {n_train} chips, seed {seed}"
    return DetectConfig.model_validate(cfg)


def pretrain_osd(paths: dict[str, Path], out: Path, a: argparse.Namespace) -> str:
    from saropt.detect.train import train

    ckpt = out / "osd" / "checkpoints" / "last.ckpt"
    if ckpt.is_file():
        return str(ckpt)
    cfg = detector_config(paths["ships"], out / "osd", "random", 0, a.osd_chips, a.osd_steps,
                          a.input, in_chans=3).model_dump()
    cfg["data"].update(dataset="dota", root=str(paths["osd_world"] / "dota"),
                       train_split="train", val_split="train", options={"classes": ["ship"]},
                       max_val_images=8, max_train_images=None)
    from saropt.detect.module import DetectConfig

    res = train(DetectConfig.model_validate(cfg))
    print(f"OSD: optical AP50 on 8 of its training chips {res['val_ap50']}", flush=True)
    return res["last_checkpoint"]


def train_and_score(ships: Path, out_dir: Path, init: str, seed: int, n_train: int,
                    a: argparse.Namespace) -> dict[str, Any]:
    from saropt.detect.ap import evaluate_coco_results
    from saropt.detect.predict import run_predict
    from saropt.detect.train import train
    from saropt.fuse.compare import land_sea_counts, load_land_masks

    t0 = time.perf_counter()
    res = train(detector_config(ships, out_dir, init, seed, n_train, a.steps, a.input))
    preds, gt_path = out_dir / "preds.json", out_dir / "gt.json"
    run_predict(res["last_checkpoint"], preds, gt_out=gt_path, progress=False, device="cpu")
    ap = evaluate_coco_results(gt_path, preds)["all"]["ap50"]
    gt, results = json.loads(gt_path.read_text()), json.loads(preds.read_text())
    ls = land_sea_counts(gt, results, load_land_masks(gt, ships / "hrsid" / "land_masks"),
                         SCORE_THR)
    for p in Path(out_dir / "checkpoints").glob("*.ckpt"):  # keep the disk small
        p.unlink()
    return {"ap_voc07": ap["voc07_11pt"], "ap_voc": ap["voc_all_point"],
            "ap_coco": ap["coco_101pt"], "fa_land": ls["fa_land"],
            "recall_sea": ls["recall_sea"], "steps": res["steps"],
            "seconds": time.perf_counter() - t0}


def summarise(runs: dict[str, dict[str, Any]], sizes: list[int]) -> tuple[list[list], str]:
    rows = []
    for n in sizes:
        for init in INITS:
            got = [r for k, r in runs.items() if k.startswith(f"{init}/n{n}/")]
            if not got:
                continue
            row: list[Any] = [n, init, len(got)]
            for key, _ in METRICS:
                v = np.array([r[key] for r in got], dtype=float)
                row.append(f"{np.nanmean(v):.3f} ± {np.nanstd(v, ddof=1) if len(v) > 1 else 0:.3f}"
                           if key != "fa_land" else
                           f"{np.nanmean(v):.1f} ± {np.nanstd(v, ddof=1) if len(v) > 1 else 0:.1f}")
            rows.append(row)
    header = ["train chips", "init", "seeds"] + [h for _, h in METRICS]
    return rows, format_table(rows, header)


def plot(runs: dict[str, dict[str, Any]], sizes: list[int], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(14, 4))
    labels = ("AP@0.5 (VOC all-point)", f"false alarms on land (score >= {SCORE_THR})",
              f"recall of ships at sea (score >= {SCORE_THR})")
    for ax, (key, _), label in zip(axes, (METRICS[1], METRICS[3], METRICS[4]), labels):
        for j, init in enumerate(INITS):
            xs, means, stds = [], [], []
            for n in sizes:
                v = [r[key] for k, r in runs.items() if k.startswith(f"{init}/n{n}/")]
                if v:
                    xs.append(n * (1 + 0.04 * (j - 1)))
                    means.append(np.nanmean(v))
                    stds.append(np.nanstd(v, ddof=1) if len(v) > 1 else 0.0)
                    ax.scatter([xs[-1]] * len(v), v, s=10, alpha=0.4, color=f"C{j}")
            if xs:
                ax.errorbar(xs, means, yerr=stds, marker="o", capsize=3, label=init,
                            color=f"C{j}")
        ax.set_xscale("log")
        ax.set_xticks(sizes, [str(s) for s in sizes])
        ax.set_xlabel("SAR training chips")
        ax.set_title(label, fontsize=10)
    axes[0].legend()
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default="bench_out/transfer")
    p.add_argument("--sizes", type=int, nargs="+", default=[10, 30, 100])
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--steps", type=int, default=60, help="SGD steps of batch 4 per run")
    p.add_argument("--input", type=int, default=128, help="detector input size (px)")
    p.add_argument("--chip", type=int, default=256)
    p.add_argument("--train", type=int, default=100)
    p.add_argument("--test", type=int, default=30)
    p.add_argument("--pairs", type=int, default=400, help="SAR-optical pairs for the OSM BNN")
    p.add_argument("--bnn-epochs", type=int, default=5)
    p.add_argument("--osd-chips", type=int, default=100)
    p.add_argument("--osd-steps", type=int, default=150)
    p.add_argument("--repeat", action="store_true", help="rerun the first run: determinism")
    p.add_argument("--report-only", action="store_true")
    a = p.parse_args(argv)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(1)
    results_path = out / "results.json"
    runs: dict[str, Any] = json.loads(results_path.read_text()) if results_path.is_file() \
        else {}
    if not a.report_only:
        paths = render(out, a)
        inits = {"random": "random", "OSM": f"bnn:{pretrain_osm(paths, out, a.bnn_epochs)}",
                 "OSD": f"detector:{pretrain_osd(paths, out, a)}"}
        for seed in a.seeds:
            for n in a.sizes:
                for name, init in inits.items():
                    key = f"{name}/n{n}/s{seed}"
                    if key in runs:
                        continue
                    runs[key] = train_and_score(paths["ships"], out / "runs" / key, init, seed,
                                                n, a)
                    print(key, {k: round(v, 3) for k, v in runs[key].items()}, flush=True)
                    write_json_atomic(results_path, runs)
        if a.repeat:
            key = f"random/n{a.sizes[0]}/s{a.seeds[0]}"
            again = train_and_score(paths["ships"], out / "runs" / "repeat", "random",
                                    a.seeds[0], a.sizes[0], a)
            same = all(again[k] == runs[key][k] for k, _ in METRICS)
            print(f"repeat of {key}: {'identical' if same else 'DIFFERENT'} "
                  f"{ {k: again[k] for k, _ in METRICS} }", flush=True)
            write_json_atomic(out / "repeat.json", {"key": key, "first": runs[key],
                                                    "again": again, "identical": same})
    rows, table = summarise(runs, a.sizes)
    (out / "table.md").write_text(table + "\n")
    print(table)
    plot(runs, a.sizes, out / "transfer.png",
         f"Faster R-CNN R18-FPN, {a.steps}+ steps (whole epochs) of batch 4 at {a.input} px per "
         "run, "
         f"{a.test} test chips; mean ± std over seeds (dots: single runs)")


if __name__ == "__main__":
    main()
