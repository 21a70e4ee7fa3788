"""``saropt bnn train | eval | embed | export``."""

from __future__ import annotations

import argparse

from saropt.cli import add_config_args, add_json_flag, add_overwrite_flag, emit
from saropt.cli_types import positive_int


def register(subparsers: argparse._SubParsersAction) -> None:
    group = subparsers.add_parser("bnn", help="Bridge Neural Network: SAR-optical matching, "
                                  "encoders for OSM pretraining")
    group.set_defaults(_parser=group)
    sub = group.add_subparsers(dest="bnn_command", metavar="COMMAND")

    p = sub.add_parser("train", help="train (or resume) a BNN from a config",
                       description="Train a BNN. Example: saropt bnn train bnn/qxs_resnet50 "
                       "data.root=/data/QXS-SAROPT data.split=/data/qxs_split "
                       "trainer.devices=4 trainer.strategy=ddp")
    add_config_args(p, required=True)
    add_overwrite_flag(p, "run folder (out_dir)")
    p.set_defaults(func=_cmd_train)

    p = sub.add_parser("eval", help="matching + retrieval metrics and figures for a checkpoint")
    p.add_argument("checkpoint", help="Lightning checkpoint (.ckpt) of a BNN run")
    p.add_argument("--split", required=True, help="split folder (test.txt, test_pairs.csv, ...)")
    p.add_argument("--root", default=None, help="dataset root (default: the one trained on), "
                   "read in its own layout")
    _add_data_flags(p)
    p.add_argument("--out", default=None, help="output folder (default: <run>/eval)")
    p.add_argument("--batch-size", type=positive_int, default=64)
    p.add_argument("--no-figures", action="store_true", help="metrics.json only")
    add_overwrite_flag(p)
    add_json_flag(p)
    p.set_defaults(func=_cmd_eval)

    p = sub.add_parser("embed", help="codes for a folder of patches or a pair dataset's "
                       "SAR or optical patches (N x n .npy)")
    p.add_argument("checkpoint", help="BNN checkpoint (.ckpt) or exported .safetensors")
    p.add_argument("folder", help="folder of image patches, or a pair dataset root (its "
                   "layout detected or given)")
    p.add_argument("--modality", required=True, choices=["sar", "opt"])
    _add_data_flags(p)
    p.add_argument("--out", required=True, help="output .npy (file names go to the .txt beside)")
    p.add_argument("--batch-size", type=positive_int, default=32)
    p.set_defaults(func=_cmd_embed)

    p = sub.add_parser("export", help="write sar_/opt_encoder.safetensors + .json sidecars")
    p.add_argument("checkpoint", help="BNN checkpoint (.ckpt)")
    p.add_argument("--out", required=True, help="output folder")
    add_overwrite_flag(p)
    add_json_flag(p)
    p.set_defaults(func=_cmd_export)


def _add_data_flags(p: argparse.ArgumentParser) -> None:
    from saropt.data.cli import add_layout_flags

    add_layout_flags(p)
    p.add_argument("--cache", default=None, help="read the pairs from this cache (`saropt data "
                   "cache`; default: none, the image files)")
    p.add_argument("--resize", default=None, choices=["nearest", "bilinear", "bicubic", "area",
                                                      "lanczos"],
                   help="resize pairs of another size to the training patch size")


def _cmd_train(args: argparse.Namespace) -> int:
    from saropt.bnn.config import BNNConfig
    from saropt.bnn.train import train
    from saropt.config import load_config

    cfg = load_config(BNNConfig, args.config, args.overrides)
    out = train(cfg, overwrite=args.overwrite)
    print(f"run folder: {out} (checkpoints/last.ckpt, csv/metrics.csv, tb/)")
    return 0


def _cmd_eval(args: argparse.Namespace) -> int:
    from saropt.bnn.evaluate import evaluate, metrics_table

    res = evaluate(args.checkpoint, args.split, args.out, root=args.root,
                   batch_size=args.batch_size, figures=not args.no_figures, layout=args.layout,
                   sar_dir=args.sar_dir, opt_dir=args.opt_dir, cache=args.cache,
                   resize=args.resize, overwrite=args.overwrite)
    emit(res, args.json, metrics_table(res))
    return 0


def _cmd_embed(args: argparse.Namespace) -> int:
    from saropt.bnn.embed import embed_folder

    out, n = embed_folder(args.checkpoint, args.folder, args.modality, args.out,
                          args.batch_size, layout=args.layout, sar_dir=args.sar_dir,
                          opt_dir=args.opt_dir, cache=args.cache, resize=args.resize)
    print(f"wrote {n} codes to {out} (file names in {out.with_suffix('.txt')})")
    return 0


def _cmd_export(args: argparse.Namespace) -> int:
    from saropt.bnn.export import export_encoders

    paths = export_encoders(args.checkpoint, args.out, args.overwrite)
    emit({k: str(v) for k, v in paths.items()}, args.json,
         "\n".join(f"{k}: {v} (+ {v.with_suffix('.json').name})" for k, v in paths.items()))
    return 0
