"""``saropt data build CONFIG [key=value ...]``: registered into the ``saropt data`` group."""

from __future__ import annotations

import argparse

from saropt.cli import add_config_args, add_json_flag, emit


def register(data_subparsers: argparse._SubParsersAction) -> None:
    """Add ``build`` to the ``saropt data`` subcommands."""
    p = data_subparsers.add_parser(
        "build", help="SAR scene + optical scene + tie points -> screened QXS-style patch pairs "
        "(registration per sub-region, bilinear warping, patches, screening, manifest)")
    add_config_args(p, required=True)
    p.add_argument("--fresh", "--overwrite", dest="fresh", action="store_true",
                   help="discard a previous (partial) build, or another command's output, in "
                   "the out folder and start over")
    add_json_flag(p)
    p.set_defaults(func=_cmd_build)


#: tie-point sources and the value that switches each off
_SOURCES = {"tiepoints": "null", "gcps": "null", "georeference": "false"}


def source_overrides(overrides: list[str]) -> list[str]:
    """``overrides`` with the other tie-point sources switched off when one is switched on
    on the command line (``gcps=sar`` replaces the config file's ``tiepoints: tiepoints.csv``,
    as any command-line key replaces the file's); a source the file names stays otherwise."""
    given = dict(o.split("=", 1) for o in overrides if "=" in o)
    on = [k for k in _SOURCES if k in given and given[k].strip().lower() not in
          ("null", "none", "~", "", "false", "no", "off", "0")]
    if not on:
        return list(overrides)
    return [f"{k}={v}" for k, v in _SOURCES.items() if k not in given] + list(overrides)


def _cmd_build(args: argparse.Namespace) -> int:
    from saropt.build.config import BuildConfig
    from saropt.build.pipeline import build_dataset
    from saropt.config import load_config
    from saropt.utils.table import format_table

    cfg = load_config(BuildConfig, args.config, source_overrides(args.overrides))
    result = build_dataset(cfg, fresh=args.fresh)
    info = result.to_json()
    rows = [(s["name"], s["inliers"], s["points"], s["rmse"], s["rmse_loo"],
             "built" if s["ok"] else s["reason"]) for s in info["subregions"]]
    text = "\n".join([
        format_table(rows, ["sub-region", "inliers", "points", "RMSE px", "LOO RMSE px",
                            "status"], floatfmt=".3f"), "",
        f"{info['patches_kept']} patch pairs kept, {info['patches_rejected']} rejected "
        f"({', '.join(f'{k}: {v}' for k, v in info['rejected_by'].items()) or 'none'})",
        f"{info['seconds']:.1f} s, {info['mp_per_s']:.2f} MP/s; "
        f"summary: {result.out / 'summary.md'}"])
    emit(info, args.json, text)
    return 0
