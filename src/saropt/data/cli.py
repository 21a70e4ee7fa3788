"""``saropt data check | split | cache`` (and ``build``, from :mod:`saropt.build`, when present)."""

from __future__ import annotations

import argparse
import importlib

from saropt.cli import add_json_flag, add_overwrite_flag, emit
from saropt.cli_types import (
    MAX_SIDE,
    fraction,
    int_range,
    nonneg_int,
    positive_float,
    positive_int,
    probability,
    seed_int,
)


def add_layout_flags(p: argparse.ArgumentParser) -> None:
    """``--layout``, ``--sar-dir`` and ``--opt-dir``: how the pairs of a root are found."""
    from saropt.data.layout import LAYOUTS

    p.add_argument("--layout", default="auto", choices=["auto", *LAYOUTS],
                   help="pair layout of the root (default: detected; "
                   + "; ".join(f"{k}: {v}" for k, v in LAYOUTS.items()) + ")")
    p.add_argument("--sar-dir", default=None, help="SAR folder name inside ROOT (with --opt-dir: "
                   "pair files by name in these two folders, whatever the layout)")
    p.add_argument("--opt-dir", default=None, help="optical folder name inside ROOT")


def _add_layout_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("root", help="dataset folder (QXS-SAROPT, sar/ + opt/, SEN1-2, OSdataset)")
    add_layout_flags(p)


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``saropt data`` with its ``check``, ``split``, ``cache`` and ``build`` subcommands."""
    group = subparsers.add_parser("data", help="SAR-optical pairs (QXS-SAROPT, SEN1-2, "
                                  "OSdataset, sar/ + opt/): check, split, cache")
    group.set_defaults(_parser=group)
    sub = group.add_subparsers(dest="data_command", metavar="SUBCOMMAND")

    p = sub.add_parser("check", help="read every pair; report counts, sizes, modes, pixel "
                       "statistics and every problem (exit 1 on problems)")
    _add_layout_args(p)
    p.add_argument("--patch-size", default="auto",
                   help="expected side length; 'auto' reads it from the folder name "
                   "(sar_256_oc_0.2 -> 256), 'any' accepts the most common size")
    p.add_argument("--any-names", action="store_true",
                   help="accept file names other than 1.png .. N.png")
    p.add_argument("--workers", type=int_range(0, 256), default=0, help="decode with N processes")
    add_json_flag(p)
    p.set_defaults(func=_cmd_check)

    p = sub.add_parser("split", help="deterministic train/val/test split with fixed evaluation "
                       "pairs (default: the paper's 70/30)")
    _add_layout_args(p)
    p.add_argument("--out", required=True, help="split folder to write")
    p.add_argument("--train", type=positive_int, help="training pairs (count)")
    p.add_argument("--test", type=positive_int, help="test pairs (count)")
    p.add_argument("--val", type=nonneg_int, default=None,
                   help="validation pairs (count, default 0)")
    p.add_argument("--train-frac", type=fraction(low_open=True),
                   help="training pairs (fraction of all)")
    p.add_argument("--test-frac", type=fraction(low_open=True), help="test pairs (fraction of all)")
    p.add_argument("--val-frac", type=probability, help="validation pairs (fraction of all)")
    p.add_argument("--seed", type=seed_int, default=0)
    p.add_argument("--mode", choices=["random", "spatial", "release"], default=None,
                   help="default random (release with --lists); spatial: keep overlapping "
                   "neighbours on one side (needs manifest.csv); release: the release's own "
                   "train/val/test (OSdataset folders, or --lists)")
    p.add_argument("--lists", help="with --mode release: folder of published split lists "
                   "(train.txt, val.txt, test.txt; ids or paths such as opt_256_oc_0.2/1.png)")
    p.add_argument("--manifest", help="manifest CSV (default ROOT/manifest.csv)")
    p.add_argument("--block", type=positive_float, help="spatial block side in SAR pixels "
                   "(default 4 patch sizes)")
    add_overwrite_flag(p, "split folder")
    add_json_flag(p)
    p.set_defaults(func=_cmd_split)

    p = sub.add_parser("cache", help="decode every pair once into uint8 memory-mapped arrays")
    _add_layout_args(p)
    p.add_argument("--out", required=True, help="cache folder to write")
    p.add_argument("--patch-size", type=int_range(8, MAX_SIDE // 4), default=None,
                   help="side length of the cached pairs (default: the first pair's)")
    p.add_argument("--resize", default=None,
                   choices=["bilinear", "area", "bicubic", "nearest", "lanczos"],
                   help="resize policy for other sizes")
    add_overwrite_flag(p, "cache folder")
    add_json_flag(p)
    p.set_defaults(func=_cmd_cache)

    # `saropt data build` lives with the dataset-construction code
    importlib.import_module("saropt.build.cli").register(sub)


def _cmd_check(args: argparse.Namespace) -> int:
    from saropt.data.checks import check_dataset

    size = {"auto": "auto", "any": None}.get(args.patch_size, None)
    if args.patch_size not in ("auto", "any"):
        try:
            size = int(args.patch_size)
        except ValueError:
            from saropt.errors import SaroptError

            raise SaroptError(f"--patch-size must be an integer, 'auto' or 'any', got "
                              f"{args.patch_size!r}") from None
    res = check_dataset(args.root, args.sar_dir, args.opt_dir, patch_size=size,
                        qxs_names=not args.any_names, workers=args.workers,
                        progress=not args.json, layout=args.layout)
    emit(res.to_dict(), args.json, res.text())
    return 0 if res.ok else 1


def _cmd_split(args: argparse.Namespace) -> int:
    from saropt.data.splits import make_split, split_mode

    args.mode = split_mode(args.mode, args.lists)

    info = make_split(args.root, args.out, train=args.train, test=args.test, val=args.val,
                      train_frac=args.train_frac, test_frac=args.test_frac,
                      val_frac=args.val_frac, seed=args.seed, mode=args.mode,
                      sar_dir=args.sar_dir, opt_dir=args.opt_dir, manifest=args.manifest,
                      block=args.block, layout=args.layout, lists=args.lists,
                      overwrite=args.overwrite)
    s = info["sizes"]
    text = (f"split {args.mode} (seed {args.seed}) of {info['n_pairs']} pairs -> {args.out}: "
            f"train {s['train']}, val {s['val']}, test {s['test']}")
    if info.get("unassigned"):
        text += f"; {info['unassigned']} pairs in no list"
    if info["purged_overlapping"]:
        text += f"; {info['purged_overlapping']} patches dropped for overlapping the other side"
    if info["train_test_overlaps"]:
        text += (f"\nwarning: {info['train_test_overlaps']} training patches overlap a test "
                 "patch (random split of overlapping patches; consider --mode spatial)")
    emit(info, args.json, text)
    return 0


def _cmd_cache(args: argparse.Namespace) -> int:
    from saropt.data.cache import PairCache, build_cache

    out = build_cache(args.root, args.out, args.sar_dir, args.opt_dir, args.patch_size,
                      args.resize, progress=not args.json, layout=args.layout,
                      overwrite=args.overwrite)
    cache = PairCache(out)
    shape = cache.index["sar_shape"]
    size_mb = sum((out / f).stat().st_size for f in ("sar.u8", "opt.u8")) / 2**20
    emit({"cache": str(out), "pairs": shape[0], "height": shape[1], "width": shape[2],
          "megabytes": round(size_mb, 1)}, args.json,
         f"cached {shape[0]} pairs of {shape[2]}x{shape[1]} in {out} ({size_mb:.1f} MB)")
    return 0
