"""``saropt bnn train | eval | embed | export``."""

from __future__ import annotations

import argparse

from saropt.cli import add_config_args, add_json_flag, add_overwrite_flag, emit
from saropt.cli_types import finite_float, positive_int


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``saropt bnn`` with its train, eval, embed, export and locate subcommands."""
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
    p.add_argument("--localise", type=positive_int, default=None, metavar="RADIUS",
                   help="also localisation: SAR templates cut with a known random offset of up "
                   "to RADIUS px, searched in the optical patch by the BNN and the baselines")
    p.add_argument("--localise-n", type=positive_int, default=200, metavar="N",
                   help="test pairs for --localise (default 200)")
    p.add_argument("--localise-methods", default="bnn,ncc,ncc_grad,mi",
                   help="comma-separated: bnn, ncc, ncc_grad, mi (default all)")
    p.add_argument("--stride", type=positive_int, default=4,
                   help="coarse grid step (px) of the coarse-to-fine search (1: exhaustive)")
    add_overwrite_flag(p)
    add_json_flag(p)
    p.set_defaults(func=_cmd_eval)

    p = sub.add_parser("locate", help="find a SAR patch (or a grid of SAR patches of a scene) "
                       "in an optical search window: best offset, confidence, cost map",
                       description="Patch mode: --sar is a T x T template, --optical a "
                       "(T + 2R) px search window. Scene mode (--grid STEP): --sar and --optical "
                       "are scenes; SAR patches every STEP px are each searched within --radius "
                       "px of the same pixel position in the optical (or of --prior-shift).")
    p.add_argument("--sar", required=True, help="SAR template (patch mode) or scene image")
    p.add_argument("--optical", required=True, help="optical search window or scene image")
    p.add_argument("--method", default=None, choices=["bnn", "ncc", "ncc_grad", "mi"],
                   help="matcher (default: bnn with --model, else mi)")
    p.add_argument("--model", default=None,
                   help="BNN checkpoint (.ckpt) or folder of exported encoders (method bnn)")
    p.add_argument("--stride", type=positive_int, default=4,
                   help="coarse grid step px (1: exhaustive)")
    p.add_argument("--top-k", type=positive_int, default=3, help="coarse basins refined")
    p.add_argument("--device", default="cpu", help="torch device for the BNN (cpu, cuda)")
    p.add_argument("--grid", type=positive_int, default=None, metavar="STEP",
                   help="scene mode: SAR patches every STEP px")
    p.add_argument("--patch", type=positive_int, default=128, help="scene mode: patch side px")
    p.add_argument("--radius", type=positive_int, default=32, help="scene mode: search radius px")
    p.add_argument("--prior-shift", type=finite_float, nargs=2, default=(0.0, 0.0),
                   metavar=("DX", "DY"), help="scene mode: optical = SAR position + shift")
    p.add_argument("--out", default=None, help="patch mode: cost-map PNG; scene mode: CSV")
    add_json_flag(p)
    p.set_defaults(func=_cmd_locate)

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

    opts = {"n": args.localise_n, "stride": args.stride,
            "methods": [m.strip() for m in args.localise_methods.split(",") if m.strip()]}
    res = evaluate(args.checkpoint, args.split, args.out, root=args.root,
                   batch_size=args.batch_size, figures=not args.no_figures, layout=args.layout,
                   sar_dir=args.sar_dir, opt_dir=args.opt_dir, cache=args.cache,
                   resize=args.resize, overwrite=args.overwrite, localise=args.localise,
                   localise_opts=opts)
    emit(res, args.json, metrics_table(res))
    return 0


def _cmd_locate(args: argparse.Namespace) -> int:
    from saropt.bnn.locate_files import locate_patch_files, locate_scene_files

    method = args.method or ("bnn" if args.model else "mi")
    common = dict(method=method, model=args.model, stride=args.stride, top_k=args.top_k,
                  device=args.device, out=args.out)
    if args.grid is None:
        result, text = locate_patch_files(args.sar, args.optical, **common)
    else:
        result, text = locate_scene_files(args.sar, args.optical, grid=args.grid,
                                          patch=args.patch, radius=args.radius,
                                          shift=tuple(args.prior_shift), **common)
    emit(result, args.json, text)
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
