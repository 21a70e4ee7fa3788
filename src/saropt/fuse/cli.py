"""``saropt fuse run | compare | osd-train | osd-transfer``: the fusion command line.

Parsers and handlers only; the work is done by :mod:`saropt.fuse.fusion`,
:mod:`saropt.fuse.compare` and :mod:`saropt.fuse.osd`. ``saropt fuse PRED1.json PRED2.json
--gt GT.json`` is short for ``saropt fuse run ...``: argparse has no default subcommand, so
:func:`with_default_run` inserts ``run`` before parsing (``saropt.cli.main`` applies it).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from saropt.cli import add_json_flag, add_overwrite_flag, emit
from saropt.cli_types import in_chans, iou, positive_float, probability

if TYPE_CHECKING:
    from saropt.fuse.fusion import FuseConfig

#: the subcommands of ``saropt fuse``; any other first word starts the arguments of ``run``
SUBCOMMANDS = ("run", "compare", "osd-train", "osd-transfer")


def with_default_run(argv: list[str]) -> list[str]:
    """``fuse PRED.json ...`` spelled out as ``fuse run PRED.json ...``; other words unchanged.

    ``argv`` starts at the command word. When it is ``fuse`` and the next word is neither a
    subcommand (:data:`SUBCOMMANDS`) nor ``-h``/``--help``, ``run`` is inserted after it, so
    prediction files, a config name, ``key=value`` overrides and ``run``'s flags may follow
    ``saropt fuse`` directly.
    """
    if len(argv) > 1 and argv[0] == "fuse" and argv[1] not in (*SUBCOMMANDS, "-h", "--help"):
        return [argv[0], "run", *argv[1:]]
    return list(argv)


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``fuse`` group and its subcommands to the ``saropt`` parser."""
    p = subparsers.add_parser(
        "fuse", help="fuse detectors' COCO results (WBF / NMS / soft-NMS), complementarity "
        "evaluation, OSD pretraining",
        description="saropt fuse PRED.json ... --gt GT.json [--method wbf] is short for "
        "saropt fuse run ...")
    p.set_defaults(_parser=p)
    sub = p.add_subparsers(dest="fuse_command", metavar="SUBCOMMAND")
    _add_run(sub)
    _add_compare(sub)
    _add_osd_train(sub)
    _add_osd_transfer(sub)


def _add_fusion_options(p: argparse.ArgumentParser, defaults: bool) -> None:
    """The fusion flags; without ``defaults`` (``run``) a flag not given leaves the config's."""

    def d(value: object) -> object:
        return value if defaults else None

    p.add_argument("--method", choices=["wbf", "nms", "soft_nms"], default=d("wbf"))
    p.add_argument("--weights", type=positive_float, nargs="+", default=None,
                   help="one weight per prediction file (default: all 1)")
    p.add_argument("--iou-thr", type=iou, default=d(0.55), help="IoU in (0, 1]")
    p.add_argument("--skip-box-thr", type=probability, default=d(0.0))
    p.add_argument("--conf-type", default=d("box_and_model_avg"),
                   choices=["avg", "max", "box_and_model_avg", "absent_model_aware_avg"],
                   help="WBF score mode (default box_and_model_avg: stays in [0, 1])")
    p.add_argument("--sigma", type=positive_float, default=d(0.5), help="soft-NMS Gaussian sigma")


def _add_run(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("run", help="fuse COCO results files (default sub-command)",
                       description="Fuse two or more COCO results files. Inputs: *.json "
                       "prediction files, optionally one config (fuse/wbf) and key=value "
                       "overrides; flags override the config.")
    p.add_argument("inputs", nargs="*", metavar="PRED.json|CONFIG|key=value")
    p.add_argument("--gt", help="COCO ground truth (for image sizes)")
    p.add_argument("--out", help="fused COCO results file (default fused.json)")
    _add_fusion_options(p, defaults=False)
    add_json_flag(p)
    p.set_defaults(func=_cmd_run, _parser=p)


def _split_inputs(inputs: list[str]) -> tuple[str | None, list[str], list[str]]:
    """(config, prediction files, overrides) from the positional words."""
    config, preds, overrides = None, [], []
    for item in inputs:
        if "=" in item:
            overrides.append(item)
        elif item.endswith(".json"):
            preds.append(item)
        elif config is None:
            config = item
        else:
            from saropt.errors import SaroptError

            raise SaroptError(f"two configs given ({config!r}, {item!r}); prediction files "
                              "must end in .json")
    return config, preds, overrides


def fuse_config_from_args(args: argparse.Namespace) -> FuseConfig:
    """The ``fuse run`` settings: the config named among the words, overrides, then flags.

    The positional words are split by :func:`_split_inputs`; ``*.json`` words become
    ``predictions``. The result is not validated again (``model_copy``): callers validate.

    Raises:
        SaroptError: two config names among the words.
        ConfigError: a config or override that does not fit :class:`FuseConfig`.
    """
    from saropt.config import load_config
    from saropt.fuse.fusion import FuseConfig

    config, preds, overrides = _split_inputs(args.inputs)
    cfg = load_config(FuseConfig, config, overrides)
    flags = {"gt": args.gt, "out": args.out, "method": args.method, "weights": args.weights,
             "iou_thr": args.iou_thr, "skip_box_thr": args.skip_box_thr,
             "conf_type": args.conf_type, "sigma": args.sigma}
    updates = {k: v for k, v in flags.items() if v is not None}
    if preds:
        updates["predictions"] = preds
    return cfg.model_copy(update=updates) if updates else cfg


def _cmd_run(args: argparse.Namespace) -> int:
    from saropt.fuse.fusion import FuseConfig, fuse_files

    cfg = FuseConfig.model_validate(fuse_config_from_args(args).model_dump())
    out, summary = fuse_files(cfg, progress=not args.json)
    emit(summary, args.json, f"fused {summary['n_inputs']} predictions with {cfg.method} -> "
         f"{summary['n_fused']} in {out}")
    return 0


def _add_compare(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("compare", help="AP of each detector and of their fusion, overall and "
                       "inshore/offshore; false alarms on land and recall at sea")
    p.add_argument("predictions", nargs="+", metavar="PRED.json")
    p.add_argument("--gt", required=True, help="COCO ground truth (images may carry 'scene')")
    p.add_argument("--names", nargs="+", help="a name per prediction file (default: file stem)")
    p.add_argument("--land-masks", help="folder of <image stem>.png land masks (255 = land)")
    p.add_argument("--score-thr", type=probability, default=0.5,
                   help="score at which false alarms and recall are counted (default 0.5)")
    p.add_argument("--out", help="folder for compare.json, compare.md and compare.png")
    add_overwrite_flag(p)
    _add_fusion_options(p, defaults=True)
    add_json_flag(p)
    p.set_defaults(func=_cmd_compare, _parser=p)


def _cmd_compare(args: argparse.Namespace) -> int:
    from saropt.fuse.compare import complementarity, table_rows, write_compare_outputs
    from saropt.utils.table import format_table

    fusion = {"method": args.method, "weights": args.weights, "iou_thr": args.iou_thr,
              "skip_box_thr": args.skip_box_thr, "conf_type": args.conf_type,
              "sigma": args.sigma}
    result = complementarity(args.gt, args.predictions, args.names, args.land_masks,
                             args.score_thr, fusion, fused_name=f"fused ({args.method})")
    rows, headers = table_rows(result)
    if args.out:
        write_compare_outputs(result, Path(args.out), args.overwrite)
    emit(result, args.json, format_table(rows, headers))
    return 0


def _add_osd_train(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("osd-train", help="train the optical ship detector (OSD) on DOTA ships "
                       "(config osd/faster_rcnn_dota or osd/yolov3_dota)")
    p.add_argument("config", help="OSD config, e.g. osd/faster_rcnn_dota")
    p.add_argument("overrides", nargs="*", metavar="key=value")
    add_json_flag(p)
    p.set_defaults(func=_cmd_osd_train, _parser=p)


def _cmd_osd_train(args: argparse.Namespace) -> int:
    from saropt.fuse.osd import train_osd

    result = train_osd(args.config, args.overrides)
    emit(result, args.json, f"OSD checkpoint: {result['checkpoint']}")
    return 0


def _add_osd_transfer(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("osd-transfer", help="build a SAR detector from an OSD checkpoint and "
                       "list the weights that matched (what `model.init=detector:CKPT` loads)")
    p.add_argument("checkpoint", help="OSD detector checkpoint (optical, 3 channels)")
    p.add_argument("--detector", default="faster_rcnn_r50_fpn",
                   help="detector name (saropt.detect.models.list_detectors())")
    p.add_argument("--in-chans", type=in_chans, default=1,
                   help="input channels of the SAR detector")
    p.add_argument("--partial", action="store_true",
                   help="allow a partial load (model.init_partial=true): heads the checkpoint "
                        "lacks or shapes differently keep their initial values, listed")
    add_json_flag(p)
    p.set_defaults(func=_cmd_osd_transfer, _parser=p)


def _cmd_osd_transfer(args: argparse.Namespace) -> int:
    from saropt.fuse.osd import transfer_report

    result = transfer_report(args.checkpoint, args.detector, args.in_chans,
                             partial_init=args.partial)
    emit(result, args.json, result["text"])
    return 0
