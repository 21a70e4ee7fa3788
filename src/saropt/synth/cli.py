"""``saropt synth scene|pairs|ships``: render the synthetic world, write it in dataset layouts."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from saropt.cli import add_config_args, add_json_flag, add_overwrite_flag, emit
from saropt.cli_types import MAX_SIDE, int_range, overlap, seed_int

#: the largest synthetic scene side (pixels): a 16384 px scene pair needs ~10 GB of memory
MAX_SCENE = MAX_SIDE


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``saropt synth`` with its ``scene``, ``pairs`` and ``ships`` subcommands."""
    p = subparsers.add_parser("synth", help="synthetic SAR-optical world: scenes, QXS pairs, "
                              "ship detection sets")
    sub = p.add_subparsers(dest="synth_command", metavar="SUBCOMMAND")
    p.set_defaults(_parser=p)

    s = sub.add_parser("scene", help="render one scene pair: sar.tif, optical.tif, tie points, "
                       "truth.json")
    s.add_argument("--out", required=True, help="output folder")
    s.add_argument("--size", type=scene_dims, default=4096,
                   help=f"SAR grid size in pixels (1 m): SIDE or HEIGHTxWIDTH, each 64 .. "
                   f"{MAX_SCENE} (default 4096)")
    s.add_argument("--seed", type=seed_int, default=0)
    _world_args(s)
    s.set_defaults(func=_cmd_scene)

    q = sub.add_parser("pairs", help="co-registered SAR/optical patches in the QXS-SAROPT layout")
    q.add_argument("--out", required=True, help="dataset root folder")
    q.add_argument("--n", type=int_range(1, 10_000_000), default=200,
                   help="number of pairs (default 200)")
    q.add_argument("--seed", type=seed_int, default=0)
    q.add_argument("--patch-size", type=int_range(8, 4096), default=256)
    q.add_argument("--overlap", type=overlap, default=0.2, help="patch overlap in [0, 1)")
    q.add_argument("--scene-size", type=int_range(64, MAX_SCENE), default=2048,
                   help="side of the scenes the patches are cut from (default 2048)")
    _world_args(q)
    q.set_defaults(func=_cmd_pairs)

    d = sub.add_parser("ships", help="ship detection sets: HRSID-style COCO, SSDD-style VOC, "
                       "DOTA-style optical")
    d.add_argument("--out", required=True, help="output folder (gets hrsid/, ssdd/, dota/)")
    d.add_argument("--seed", type=seed_int, default=0)
    d.add_argument("--n-train", type=int_range(1, 1_000_000), default=40)
    d.add_argument("--n-test", type=int_range(1, 1_000_000), default=20)
    d.add_argument("--size", type=int_range(64, 4096), default=512,
                   help="chip size in pixels (default 512)")
    d.add_argument("--scene-size", type=int_range(128, MAX_SCENE), default=None,
                   help="side of the scenes chips are cut from (default max(1024, 4 * size))")
    _world_args(d)
    d.set_defaults(func=_cmd_ships)


def scene_dims(text: str) -> int | tuple[int, int]:
    """``--size``: ``SIDE`` or ``HEIGHTxWIDTH``, each in [64, MAX_SCENE] px.

    Raises:
        argparse.ArgumentTypeError: for any other text (argparse reports it as a usage error).
    """
    try:
        dims = [int(v) for v in str(text).lower().split("x")]
    except ValueError:
        dims = []
    if len(dims) not in (1, 2) or min(dims) < 64 or max(dims) > MAX_SCENE:
        raise argparse.ArgumentTypeError(f"takes SIDE or HEIGHTxWIDTH, each 64 .. {MAX_SCENE} "
                                         f"pixels (got {text!r})")
    return dims[0] if len(dims) == 1 else (dims[0], dims[1])


def _world_args(p: argparse.ArgumentParser) -> None:
    add_config_args(p)
    add_overwrite_flag(p)
    add_json_flag(p)
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def _world_config(args: argparse.Namespace):
    from saropt.config import load_config
    from saropt.synth.config import WorldConfig

    config, overrides = args.config, list(args.overrides)
    if config is not None and "=" in config and not Path(config).exists():
        config, overrides = None, [config, *overrides]  # only overrides were given
    return load_config(WorldConfig, config, overrides)


def _cmd_scene(args: argparse.Namespace) -> int:
    from saropt.synth import make_scene_pair, write_scene
    from saropt.synth.writers import SCENE_FILES
    from saropt.utils.outdir import check_out_dir

    size = args.size
    cfg = _world_config(args)
    config = {"size": size, "seed": args.seed, "world": cfg.model_dump(mode="json")}
    check_out_dir(args.out, "synth scene", config, SCENE_FILES, args.overwrite)
    t0 = time.perf_counter()
    pair = make_scene_pair(size, args.seed, cfg, progress=not args.quiet)
    out = write_scene(pair, args.out, config, args.overwrite)
    ties = pair.tie_points
    result = {"out": str(out), "sar_shape": list(pair.shape),
              "optical_shape": list(pair.optical.shape[:2]), "ships": len(pair.ships),
              "tie_points": int(len(ties)), "tie_outliers": int(ties["is_outlier"].sum()),
              "subregions": len(pair.subregions), "calm_sea_areas": len(pair.calm_sea),
              "seconds": round(time.perf_counter() - t0, 2)}
    emit(result, args.json, f"wrote scene pair to {out}: SAR {pair.shape}, optical "
         f"{pair.optical.shape[:2]}, {len(pair.ships)} ships, {len(ties)} tie points "
         f"({result['tie_outliers']} outliers) in {result['seconds']} s")
    return 0


def _cmd_pairs(args: argparse.Namespace) -> int:
    from saropt.errors import SaroptError
    from saropt.synth import write_qxs_pairs
    from saropt.synth.writers import qxs_dir_names

    if args.scene_size < args.patch_size:
        raise SaroptError(f"--scene-size {args.scene_size} is smaller than --patch-size "
                          f"{args.patch_size}")
    cfg = _world_config(args)
    t0 = time.perf_counter()
    root = write_qxs_pairs(args.out, args.n, args.seed, patch_size=args.patch_size,
                           overlap=args.overlap, scene_size=args.scene_size, cfg=cfg,
                           progress=not args.quiet, overwrite=args.overwrite)
    opt_dir, sar_dir = qxs_dir_names(args.patch_size, args.overlap)
    result = {"root": str(root), "pairs": args.n, "opt_dir": opt_dir, "sar_dir": sar_dir,
              "manifest": str(Path(root) / "manifest.csv"),
              "seconds": round(time.perf_counter() - t0, 2)}
    emit(result, args.json, f"wrote {args.n} pairs to {root}/{{{opt_dir},{sar_dir}}} "
         f"in {result['seconds']} s")
    return 0


def _cmd_ships(args: argparse.Namespace) -> int:
    from saropt.errors import SaroptError
    from saropt.synth.ships import read_summary, ship_world_config, write_ship_datasets

    if args.scene_size is not None and args.scene_size < 2 * args.size:
        raise SaroptError(f"--scene-size {args.scene_size} must be at least twice --size "
                          f"{args.size}")
    cfg = _world_config(args) if args.config or args.overrides else ship_world_config()
    if args.config is None and args.overrides:  # overrides apply on top of the ship-rich world
        from saropt.config import build_config
        from saropt.synth.config import WorldConfig

        cfg = build_config(WorldConfig, ship_world_config().model_dump(), args.overrides)
    t0 = time.perf_counter()
    root = write_ship_datasets(args.out, args.seed, args.n_train, args.n_test,
                               image_size=args.size, scene_size=args.scene_size, cfg=cfg,
                               progress=not args.quiet, overwrite=args.overwrite)
    summary = read_summary(root)
    summary["seconds"] = round(time.perf_counter() - t0, 2)
    emit(summary, args.json, f"wrote ship datasets to {args.out}: "
         f"{summary['train_images']} train / {summary['test_images']} test chips, "
         f"{summary['ships']} ships in {summary['seconds']} s")
    return 0
