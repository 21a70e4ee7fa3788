"""``saropt demo`` stage: SAR ship detection on the synthetic ship chips, random vs OSM init.

Trains the same small Faster R-CNN (ResNet18-FPN, CPU-sized) twice at the same budget on the
HRSID-style synthetic set (``ctx.artifacts["ships_root"]``): from random weights and from the BNN
SAR encoder (``ctx.artifacts["bnn_sar_encoder"]``, OSM) when that stage ran. Both predict the test
split, scored three ways and per inshore / offshore. Leaves ``detect_predictions`` (name -> COCO
results), ``detect_gt`` and ``detect_checkpoints`` (name -> checkpoint) for the fusion stage.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

#: Budget shared by every run: 160 px input (chips are 256 px), 11 epochs of batch 4, SGD 0.02
#: decayed x0.1 for the last epoch. Measured on the demo's 60 / 20 chips (random init, COCO AP50,
#: one seed each): 128 px x 5 epochs 0.10, x 10 epochs 0.22, x 20 epochs 0.29; 144 px x 10 epochs
#: 0.19 (stage 103 s); 160 px x 12 epochs 0.34 (stage 196 s on a loaded 2-core CPU); 256 px x 10
#: epochs 0.30. The ships are found (AP at IoU 0.3 ~0.64 after 20 epochs at 128 px): what the
#: budget limits is box localisation, which input resolution and epochs both improve
#: (docs/detect_models.md, "Demo budget").
DEMO = {"input_size": 160, "epochs": 11, "batch_size": 4, "lr": 0.02}
FIG_SCORE_THR = 0.3
#: How much one run varies, measured by benchmarks/bench_transfer.py (docs/detect_models.md,
#: "Does pretraining help?"); quoted in the report.
RUN_TO_RUN = ("How much one run varies: over 3 seeds (benchmarks/bench_transfer.py, a smaller "
              "budget, docs/detect_models.md) AP@0.5 had a standard deviation of 0.02-0.04 "
              "from random weights and 0.01-0.03 from the OSD, as large as some gaps between "
              "the rows here: compare means over seeds, not single runs.")
CPU_OPTIONS = {"fpn_channels": 64, "representation_size": 256, "rpn_pre_nms_top_n_train": 300,
               "rpn_post_nms_top_n_train": 100, "box_batch_size_per_image": 32,
               "rpn_pre_nms_top_n_test": 300, "rpn_post_nms_top_n_test": 100,
               "anchor_sizes": [8, 16, 32, 64, 128], "aspect_ratios": [0.25, 0.5, 1.0, 2.0, 4.0],
               "frozen_bn": False,
               "trainable_layers": 5}


def demo_config(hrsid_root: Path, out_dir: Path, init: str, seed: int) -> Any:
    """The demo's training config for one init (identical budget and settings otherwise)."""
    from saropt.detect.module import DetectConfig
    from saropt.detect.scene.radiometry import synth_radiometry

    size = DEMO["input_size"]
    return DetectConfig.model_validate({
        "description": f"saropt demo: Faster R-CNN R18 on synthetic SAR ships, init {init}",
        "model": {"name": "faster_rcnn_r18_fpn", "in_chans": 1, "init": init,
                  "options": {"min_size": size, "max_size": size, **CPU_OPTIONS}},
        "data": {"dataset": "hrsid", "root": str(hrsid_root), "batch_size": DEMO["batch_size"],
                 "num_workers": 0, "hflip": 0.5,
                 "radiometry": synth_radiometry().model_dump(mode="json")},
        "optim": {"lr": DEMO["lr"], "milestones": [DEMO["epochs"] - 1], "warmup_iters": 10},
        "trainer": {"max_epochs": DEMO["epochs"], "precision": "32-true", "accelerator": "cpu",
                    "devices": 1, "progress_bar": False, "seed": seed, "resume": False,
                    "check_val_every_n_epoch": DEMO["epochs"], "gradient_clip_val": 5.0,
                    "checkpoint_every_n_epochs": DEMO["epochs"], "log_every_n_steps": 5},
        "out_dir": str(out_dir)})


@contextmanager
def cpu_threads() -> Iterator[None]:
    """Use one torch thread inside the block while the CPU is oversubscribed (no CUDA).

    Oversubscribed means a 1-minute load above the core count: two OpenMP threads then wait on
    each other and run several times slower than one. The thread count is restored after.
    """
    import torch

    old = torch.get_num_threads()
    busy = hasattr(os, "getloadavg") and os.getloadavg()[0] > (os.cpu_count() or 1)
    if busy and not torch.cuda.is_available():
        torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(old)


def train_and_score(name: str, init: str, ships: Path, out: Path, seed: int) -> dict[str, Any]:
    """Train one init, predict the test split, evaluate; timings and paths included."""
    from saropt.detect.ap import evaluate_coco_results
    from saropt.detect.predict import run_predict
    from saropt.detect.train import train

    t0 = time.perf_counter()
    res = train(demo_config(ships / "hrsid", out / "runs" / name, init, seed))
    t_train = time.perf_counter() - t0
    preds, gt = out / "predictions" / f"{name}.json", out / "predictions" / "gt.json"
    t1 = time.perf_counter()
    info = run_predict(res["last_checkpoint"], preds, gt_out=gt, progress=False, device="cpu")
    t_pred = time.perf_counter() - t1
    metrics = evaluate_coco_results(gt, preds, subsets="scene")
    import torch

    return {"name": name, "init": init, "train": res, "predictions": preds, "gt": gt,
            "metrics": metrics, "train_s": t_train, "predict_s": t_pred,
            "n_test": info["n_images"], "steps": res["steps"],
            "threads": torch.get_num_threads()}


def run(ctx: Any) -> None:
    """Run the demo's detection stage: train and score each init, write the report section.

    Skips (with a line in the report) when the synthetic ships stage did not run; trains only
    the random init when there is no BNN SAR encoder. Sets ``ctx.artifacts`` for fusion.
    """
    r = ctx.report
    r.section("SAR ship detection",
              "Paper 003 section 4 / Table 3: a SAR ship detector whose backbone starts from "
              "random weights or from the BNN SAR encoder (OSM). Here a CPU-sized Faster R-CNN "
              f"(ResNet18-FPN, 64-channel FPN) trains {DEMO['epochs']} epochs (batch "
              f"{DEMO['batch_size']}, {DEMO['input_size']} px input) per init on the synthetic "
              "HRSID-style training chips, with identical settings; AP@0.5 on the test chips.")
    ships = ctx.artifacts.get("ships_root")
    if not ships or not (Path(ships) / "hrsid" / "annotations").is_dir():
        r.text("*Skipped: no synthetic ship datasets (`ctx.artifacts['ships_root']`).*")
        return
    ships, out = Path(ships), ctx.out_dir / "detect"
    inits = {"random": "random"}
    enc = ctx.artifacts.get("bnn_sar_encoder")
    if enc and Path(enc).is_file():
        inits["OSM"] = f"bnn:{enc}"
    else:
        r.text("*No BNN SAR encoder from the BNN stage: only the random-init run.*")
    with cpu_threads():
        runs = [train_and_score(n, i, ships, out, ctx.seed) for n, i in inits.items()]
    _report(ctx, runs, ships, out)
    ctx.artifacts["detect_predictions"] = {x["name"]: str(x["predictions"]) for x in runs}
    ctx.artifacts["detect_gt"] = str(runs[0]["gt"])
    ctx.artifacts["detect_checkpoints"] = {x["name"]: x["train"]["last_checkpoint"]
                                           for x in runs}


def _fmt(v: float | None) -> str:
    return "n/a" if v is None else f"{v:.3f}"


def _report(ctx: Any, runs: list[dict[str, Any]], ships: Path, out: Path) -> None:
    r = ctx.report
    rows = []
    for x in runs:
        m = x["metrics"]
        ap, sub = m["all"]["ap50"], m["subsets"]
        n_train = DEMO["batch_size"] * x["steps"]
        rows.append((x["name"], x["train"]["init_report"] or "-", _fmt(ap["voc07_11pt"]),
                     _fmt(ap["voc_all_point"]), _fmt(ap["coco_101pt"]),
                     _fmt(sub.get("scene=inshore", {}).get("ap50", {}).get("coco_101pt")),
                     _fmt(sub.get("scene=offshore", {}).get("ap50", {}).get("coco_101pt")),
                     f"{n_train / x['train_s']:.1f}", f"{x['n_test'] / x['predict_s']:.1f}"))
    r.table(rows, ["init", "weights loaded", "AP50 VOC07 11pt", "AP50 VOC all-pt",
                   "AP50 COCO 101pt", "inshore (COCO)", "offshore (COCO)", "train img/s",
                   "predict img/s"])
    r.text("AP@0.5 three ways (labelled); inshore / offshore from the chips' `scene` key. "
           "Train img/s includes validation and checkpointing. "
           f"Seed {ctx.seed}, {runs[0]['threads']} torch thread(s) (one when the CPU is busy): "
           "a detector trained twice with the same seed on the same thread count gives the same "
           "numbers; another seed or thread count gives another run. " + RUN_TO_RUN)
    r.figure(_figure(runs, ships), "detect_random_vs_osm.png",
             "Left: precision-recall at IoU 0.5 per init. Right: test chips, ground truth green, "
             f"detections with score >= {FIG_SCORE_THR} of the best init: correct blue, false "
             "alarms red, missed ships yellow.")


def _figure(runs: list[dict[str, Any]], ships: Path) -> Any:
    import json

    import matplotlib.pyplot as plt

    from saropt.detect.datasets import HRSID
    from saropt.detect.viz import draw_detections

    ds = HRSID(ships / "hrsid", "test")
    best = max(runs, key=lambda x: x["metrics"]["all"]["ap50"]["coco_101pt"] or 0.0)
    preds = json.loads(Path(best["predictions"]).read_text())
    fig, axes = plt.subplots(1, 4, figsize=(17, 4.4), gridspec_kw={"width_ratios": [1.3, 1, 1,
                                                                                    1]})
    for x in runs:
        c = x["metrics"]["curves"]["all"]["ship"]
        ap = x["metrics"]["all"]["ap50"]["coco_101pt"]
        axes[0].plot(c["recall"], c["precision"], drawstyle="steps-post",
                     label=f"{x['name']} (COCO AP50 {_fmt(ap)})")
    axes[0].set(xlabel="recall", ylabel="precision", xlim=(0, 1.01), ylim=(0, 1.02),
                title="test chips, IoU 0.5")
    axes[0].legend(loc="lower left", fontsize=8)
    axes[0].grid(alpha=0.3)
    for ax, i in zip(axes[1:], range(3)):
        s = ds[i]
        mine = [p for p in preds if p["image_id"] == s["image_id"]]
        boxes = [[p["bbox"][0], p["bbox"][1], p["bbox"][0] + p["bbox"][2],
                  p["bbox"][1] + p["bbox"][3]] for p in mine]
        draw_detections(ax, s["image"], s["boxes"], boxes, [p["score"] for p in mine],
                        score_thr=FIG_SCORE_THR,
                        title=f"{best['name']}: {s['meta']['file_name'][:18]} "
                              f"({s['meta'].get('scene')})")
    fig.tight_layout()
    return fig
