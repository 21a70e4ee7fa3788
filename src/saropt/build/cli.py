"""``saropt data build CONFIG [key=value ...]``: registered into the ``saropt data`` group."""

from __future__ import annotations

import argparse

from saropt.cli import add_config_args, add_json_flag, emit
from saropt.cli_types import finite_float, nonneg_int, positive_int


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

    p = data_subparsers.add_parser(
        "tiepoints", help="automatic tie points: textured SAR patches located in the optical "
        "scene (BNN or NCC/MI baseline), written as the tie-point CSV of `data build`",
        description="Example: saropt data tiepoints --sar scene/sar.tif --optical "
        "scene/optical.tif --out tp.csv [--subregions scene/subregions.json] "
        "[--model encoders/]; then: saropt data build build/default ... tiepoints=tp.csv")
    p.add_argument("--sar", required=True, help="SAR scene (any GDAL raster)")
    p.add_argument("--optical", required=True, help="optical scene (8-bit, 1/3/4 bands)")
    p.add_argument("--out", required=True, help="tie-point CSV to write")
    p.add_argument("--subregions", default=None, help="sub-regions JSON (default: whole scene)")
    p.add_argument("--model", default=None, help="BNN checkpoint (.ckpt) or folder of exported "
                   "encoders; without it the best library baseline is used")
    p.add_argument("--method", default=None, choices=["bnn", "ncc", "ncc_grad", "mi"],
                   help="matcher (default: bnn with --model, else mi)")
    p.add_argument("--patch", type=positive_int, default=128,
                   help="SAR patch side px (default 128)")
    p.add_argument("--step", type=positive_int, default=None,
                   help="grid step px (default: --patch / 2)")
    p.add_argument("--radius", type=positive_int, default=48,
                   help="pass-1 search radius px around the prior (default 48)")
    p.add_argument("--refine-radius", type=nonneg_int, default=8,
                   help="pass-2 radius px around the pass-1 affine model (default 8)")
    p.add_argument("--min-confidence", type=finite_float, default=None,
                   help="keep answers with at least this margin (default per method)")
    p.add_argument("--texture-min", type=finite_float, default=5.0,
                   help="min SAR texture score of a patch (builder's screening score)")
    p.add_argument("--device", default="cpu", help="torch device for the BNN")
    add_json_flag(p)
    p.set_defaults(func=_cmd_tiepoints)


def _cmd_tiepoints(args: argparse.Namespace) -> int:
    from saropt.build.autotie import auto_tiepoints
    from saropt.utils.table import format_table

    res = auto_tiepoints(args.sar, args.optical, args.out, subregions=args.subregions,
                         model=args.model, method=args.method, patch=args.patch, step=args.step,
                         radius=args.radius, refine_radius=args.refine_radius,
                         min_confidence=args.min_confidence, texture_min=args.texture_min,
                         device=args.device)
    rows = [(r["subregion"], r["grid_patches"], r["textured"], r["located"], r["kept"])
            for r in res["subregions"]]
    text = "\n".join([
        format_table(rows, ["sub-region", "grid patches", "textured", "located", "kept"]), "",
        f"pass 1: {res['pass1']['confident']} of {res['pass1']['located']} confident; "
        f"affine prior for pass 2: {'yes' if res['pass1']['affine_prior'] else 'no'}",
        f"{res['tie_points']} tie points ({res['method']}, prior: {res['prior']['kind']}) "
        f"written to {res['out']} in {res['seconds']} s"])
    emit(res, args.json, text)
    return 0


#: tie-point sources and the value that switches each off
_SOURCES = {"tiepoints": "null", "gcps": "null", "georeference": "false"}


def source_overrides(overrides: list[str]) -> list[str]:
    """``overrides`` with the other tie-point sources off when one is switched on.

    A source switched on on the command line replaces the config file's: ``gcps=sar`` replaces
    ``tiepoints: tiepoints.csv``, as any command-line key replaces the file's. A source the file
    names stays otherwise.
    """
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
