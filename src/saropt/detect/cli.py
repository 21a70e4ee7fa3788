"""``saropt detect``: ``eval`` here; ``train`` and ``predict`` register from their modules."""

from __future__ import annotations

import argparse
import importlib
from pathlib import Path
from typing import Any

from saropt.cli import add_json_flag, emit

DATASETS = ("hrsid", "ssdd", "air-sarship-1.0", "air-sarship-2.0", "dota")


def register(subparsers: argparse._SubParsersAction) -> None:
    group = subparsers.add_parser("detect", help="SAR ship detection: train, eval, predict")
    group.set_defaults(_parser=group)
    sub = group.add_subparsers(dest="detect_command", metavar="COMMAND")
    _register_eval(sub)
    for module in ("saropt.detect.train", "saropt.detect.predict"):
        try:
            mod = importlib.import_module(module)
        except ModuleNotFoundError as err:
            if err.name != module:
                raise
            continue
        mod.register(sub)


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
    p.add_argument("--option", action="append", type=_option, default=[], metavar="KEY=VALUE",
                   help="reader option with --dataset, e.g. tile=512 or include_difficult=true "
                   "(use the same as for `detect predict`)")
    p.add_argument("--pred", type=Path, required=True, help="COCO results JSON")
    p.add_argument("--images", type=Path,
                   help="image folder for the gallery with --gt (default: JPEGImages/ or "
                   "images/ beside the annotations folder)")
    p.add_argument("--subset-key", action="append", default=[],
                   help="also score per value of this image key, e.g. scene (repeatable)")
    p.add_argument("--out", type=Path, default=Path("runs/detect/eval"), help="output folder")
    p.add_argument("--iou", type=float, default=0.5, help="IoU threshold (default 0.5)")
    p.add_argument("--max-dets", type=int, default=100, help="COCO detections per image")
    p.add_argument("--score-thr", type=float, default=0.5,
                   help="score threshold of predictions drawn in the gallery")
    p.add_argument("--gallery", type=int, default=6, help="images in the gallery (0: none)")
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
                      merge_tiles=args.merge_tiles, options=dict(args.option))
    emit(result, args.json, _text(result))
    return 0


def _option(text: str) -> tuple[str, Any]:
    import yaml

    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"--option {text!r} is not key=value")
    return key, yaml.safe_load(value)


def _text(result: dict[str, Any]) -> str:
    from saropt.detect.evaluate import metrics_table

    files = "\n".join(f"  {k}: {v}" for k, v in result["files"].items())
    return f"{metrics_table(result)}\n\nwritten:\n{files}"
