"""``saropt detect train | predict | eval | scene``: the detection command line.

Parsers and handlers only; the work is done by the library (:func:`saropt.detect.train.train`,
:func:`saropt.detect.predict.run_predict`, :func:`saropt.detect.evaluate.run_eval`). ``scene``
registers from :mod:`saropt.detect.scene.cli`.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from saropt.cli import add_config_args, add_json_flag, add_overwrite_flag, emit
from saropt.cli_types import (
    MAX_SIDE,
    int_range,
    iou,
    key_value,
    nonneg_int,
    overlap,
    positive_int,
    probability,
)

DATASETS = ("hrsid", "ssdd", "air-sarship-1.0", "air-sarship-2.0", "dota")

TRAIN_EXAMPLES = """examples:
  saropt detect train detect/synthetic_faster_rcnn_r18 data.root=ships/hrsid
  saropt detect train detect/hrsid_faster_rcnn_osm data.root=/data/HRSID \\
      model.init=bnn:runs/bnn/sar_encoder.safetensors
  saropt detect train detect/ssdd_yolov3_imagenet data.root=/data/SSDD \\
      model.init=imagenet:/weights/darknet53.pth trainer.devices=4 trainer.strategy=ddp
"""

PREDICT_EXAMPLES = """examples:
  saropt detect predict runs/detect/checkpoints/last.ckpt --out preds.json
  saropt detect predict best.ckpt --dataset hrsid --root /data/HRSID --split test \\
      --out preds.json --gt-out gt.json
  saropt detect predict best.ckpt --dataset air-sarship-1.0 --root /data/AIR-SARShip-1.0 \\
      --out preds.json --gt-out scenes_gt.json
  saropt detect predict best.ckpt --dataset coco --root scenes --option ann_file=gt.json \\
      --option image_dir=images --tile 512 --overlap 0.5 --out preds.json
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``detect`` group and its subcommands to the ``saropt`` parser."""
    from saropt.detect.scene import cli as scene_cli

    group = subparsers.add_parser("detect", help="SAR ship detection: train, eval, predict, scene")
    group.set_defaults(_parser=group)
    sub = group.add_subparsers(dest="detect_command", metavar="COMMAND")
    _register_eval(sub)
    _register_train(sub)
    _register_predict(sub)
    scene_cli.register(sub)


# ------------------------------------------------------------------ eval


def _register_eval(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "eval", help="score COCO-results predictions: AP@0.5 three ways, PR curves, gallery",
        description="Score a COCO results JSON against COCO ground truth (--gt) or a dataset "
        "reader's ground truth (--dataset/--root/--split). Writes metrics.json, pr_curves.json, "
        "pr_curves.png and gallery.png (ground truth green, correct detections blue, false "
        "alarms red, missed ships yellow) to --out.",
        epilog="examples:\n  saropt detect eval --gt hrsid/annotations/test2017.json "
        "--pred preds.json --out runs/eval\n  saropt detect eval --dataset hrsid --root hrsid "
        "--split test --pred preds.json --subset-key scene --json",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--gt", type=Path, help="COCO ground-truth JSON")
    src.add_argument("--dataset", choices=DATASETS, help="a dataset reader's ground truth")
    p.add_argument("--root", type=Path, help="dataset root (with --dataset)")
    p.add_argument("--split", default="test", help="dataset split (with --dataset)")
    p.add_argument("--option", action="append", type=key_value, default=[], metavar="KEY=VALUE",
                   help="reader option with --dataset, e.g. tile=512 or include_difficult=true "
                   "(use the same as for `detect predict`)")
    p.add_argument("--pred", type=Path, required=True, help="COCO results JSON")
    p.add_argument("--images", type=Path,
                   help="image folder for the gallery with --gt (default: JPEGImages/ or "
                   "images/ beside the annotations folder)")
    p.add_argument("--subset-key", action="append", default=[],
                   help="also score per value of this image key, e.g. scene (repeatable)")
    p.add_argument("--out", type=Path, default=Path("runs/detect/eval"), help="output folder")
    add_overwrite_flag(p)
    p.add_argument("--iou", type=iou, default=0.5, help="IoU threshold in (0, 1] (default 0.5)")
    p.add_argument("--max-dets", type=positive_int, default=100, help="COCO detections per image")
    p.add_argument("--score-thr", type=probability, default=0.5,
                   help="score threshold of predictions drawn in the gallery")
    p.add_argument("--gallery", type=nonneg_int, default=6, help="images in the gallery (0: none)")
    p.add_argument("--merge-tiles", action="store_true",
                   help="tiled readers (AIR-SARShip): merge tile predictions into scenes "
                   "(offset + class-wise NMS) and score whole scenes")
    add_json_flag(p)
    p.set_defaults(func=_cmd_eval)


def _cmd_eval(args: argparse.Namespace) -> int:
    from saropt.detect.evaluate import run_eval

    result = run_eval(gt=args.gt, dataset=args.dataset, root=args.root, split=args.split,
                      pred=args.pred, images=args.images, subset_keys=args.subset_key,
                      out=args.out, iou=args.iou, max_dets=args.max_dets,
                      score_thr=args.score_thr, n_gallery=args.gallery,
                      merge_tiles=args.merge_tiles, options=dict(args.option),
                      overwrite=args.overwrite)
    emit(result, args.json, _eval_text(result))
    return 0


def _eval_text(result: dict[str, Any]) -> str:
    from saropt.detect.evaluate import metrics_table

    files = "\n".join(f"  {k}: {v}" for k, v in result["files"].items())
    return f"{metrics_table(result)}\n\nwritten:\n{files}"


# ------------------------------------------------------------------ train


def _register_train(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "train", help="train a Faster R-CNN or YOLOv3 ship detector from a config",
        description="Train a ship detector (config keys: model, data, optim, trainer, out_dir; "
        "see `saropt configs` for the built-in recipes). Checkpoints, logs and AP@0.5 per epoch "
        "go to out_dir; an interrupted run resumes from out_dir/checkpoints/last.ckpt.",
        epilog=TRAIN_EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_config_args(p, required=True)
    add_overwrite_flag(p, "run folder (out_dir)")
    add_json_flag(p)
    p.set_defaults(func=_cmd_train)


def _cmd_train(args: argparse.Namespace) -> int:
    from saropt.config import load_config
    from saropt.detect.module import DetectConfig
    from saropt.detect.train import train

    cfg = load_config(DetectConfig, args.config, args.overrides)
    result = train(cfg, overwrite=args.overwrite)
    ap = result["val_ap50"]
    text = (f"trained {cfg.model.name} (init {cfg.model.init}) -> {result['out_dir']}\n"
            f"best checkpoint: {result['best_checkpoint']}\n"
            + "val AP@0.5: " + (", ".join(f"{k} {v:.4f}" for k, v in ap.items() if v is not None)
                                or "not measured (no validation epoch ran)"))
    emit(result, args.json, text)
    return 0


# ------------------------------------------------------------------ predict


def _register_predict(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "predict", help="run a trained detector on a dataset and write COCO results JSON",
        description="Run a `saropt detect train` checkpoint on a dataset split (default: the "
        "dataset and validation split it was trained with) and write COCO results JSON "
        "(score with `saropt detect eval`).",
        epilog=PREDICT_EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("checkpoint", help="a .ckpt written by `saropt detect train`")
    p.add_argument("--out", required=True, help="COCO results JSON to write")
    p.add_argument("--dataset", help="reader name (hrsid, ssdd, air-sarship-1.0, "
                   "air-sarship-2.0, dota, coco); default: the training config's. Another "
                   "dataset or root is read in its own layout: the training run's folder "
                   "options (ann_file, image_dir, ...) do not carry over")
    p.add_argument("--root", help="dataset root (default: the training config's)")
    p.add_argument("--split", help="split (default: the training config's val_split)")
    p.add_argument("--option", action="append", type=key_value, default=[],
                   metavar="KEY=VALUE", help="reader option, e.g. ann_file=test.json")
    p.add_argument("--tile", type=int_range(32, MAX_SIDE),
                   help="tile images larger than this (pixels)")
    p.add_argument("--overlap", type=overlap, default=0.5, help="tile overlap (default 0.5)")
    p.add_argument("--batch-size", type=positive_int, default=4)
    p.add_argument("--device", default="auto", help="cpu, cuda, cuda:1, ... (default: auto)")
    p.add_argument("--score-thresh", type=probability, help="keep detections above this score")
    p.add_argument("--gt-out", help="also write the matching COCO ground truth here")
    add_json_flag(p)
    p.set_defaults(func=_cmd_predict)


def _cmd_predict(args: argparse.Namespace) -> int:
    from saropt.detect.predict import run_predict

    summary = run_predict(args.checkpoint, args.out, args.dataset, args.root, args.split,
                          dict(args.option), args.tile, args.overlap,
                          args.batch_size, args.device, args.score_thresh, args.gt_out)
    emit(summary, args.json, "\n".join(f"{k}: {v}" for k, v in summary.items()))
    return 0
