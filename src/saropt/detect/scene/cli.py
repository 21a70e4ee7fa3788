"""``saropt detect scene CKPT [CKPT ...] --scene SCENE.tif --out DIR``."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from saropt import cli_types as ct
from saropt.cli import add_json_flag, emit

EXAMPLES = """examples:
  saropt detect scene runs/detect/checkpoints/last.ckpt --scene S1A_GRD.tif --out ships/
  saropt detect scene osm.ckpt osd.ckpt --weights 1 2 --scene GF3.tiff --out ships/ \\
      --land-mask coastline.geojson --drop-land --json
  saropt detect eval --gt scene_gt.json --pred ships/detections.json --out ships/eval \\
      --max-dets 10000
"""


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``scene`` to the ``saropt detect`` subcommands (work: :mod:`saropt.detect.scene`)."""
    p = sub.add_parser(
        "scene", help="detect ships in a whole SAR scene of any size (tiled, georeferenced)",
        description="Run one or more `saropt detect train` checkpoints over a single-band SAR "
        "raster of any size: the training radiometry fitted once per scene, tiles at the "
        "trained pixel scale, boxes cut by tile borders dropped in favour of the tile holding "
        "them whole, the rest merged across tiles and fused across models. Writes "
        "detections.geojson (lon/lat), detections.json (COCO results, scene pixels), "
        "detections.csv, quicklook.png, map.html (offline) and summary.json to --out. A killed "
        "run resumes when rerun with the same arguments (docs/scene.md).",
        epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("checkpoints", nargs="+", metavar="CKPT", help="detector checkpoint(s)")
    p.add_argument("--scene", required=True, help="SAR raster (GeoTIFF or any GDAL format)")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--tile", type=ct.image_side, help="tile side in scene pixels (default: "
                   "the first checkpoint's training image size)")
    p.add_argument("--overlap", type=ct.overlap, help="tile overlap in [0, 1) (default: the "
                   "checkpoint's, else 0.25); must exceed the longest ship")
    p.add_argument("--batch-size", type=ct.positive_int, default=4, help="tiles per forward pass")
    p.add_argument("--merge", choices=("nms", "wbf"), default="nms",
                   help="merge of one model's boxes across tiles (default nms)")
    p.add_argument("--merge-iou", type=ct.iou, default=0.5)
    p.add_argument("--fuse", choices=("wbf", "nms"), default="wbf",
                   help="fusion of several checkpoints (default wbf, as `saropt fuse`)")
    p.add_argument("--fuse-iou", type=ct.iou, default=0.55)
    p.add_argument("--weights", type=ct.positive_float, nargs="+",
                   help="one fusion weight per checkpoint")
    p.add_argument("--land-mask", help="land raster (non-zero = land) or GeoJSON polygons, any "
                   "CRS: tags inshore / offshore / land")
    p.add_argument("--drop-land", action="store_true", help="drop detections centred on land")
    p.add_argument("--inshore-m", type=ct.float_range(0.0), default=500.0,
                   help="land within this many metres makes a ship inshore (default 500)")
    p.add_argument("--band", type=ct.positive_int, help="band of a multi-band raster (1-based)")
    p.add_argument("--nodata", type=float, help="nodata value (default: the file's)")
    p.add_argument("--score-thresh", type=ct.probability, help="keep detections above this score "
                   "(default: the checkpoint's)")
    p.add_argument("--pixel-spacing", type=ct.positive_float,
                   help="metres per pixel when the scene has no georeference")
    p.add_argument("--image-id", type=int, default=1,
                   help="image_id in detections.json (match your scene ground truth)")
    p.add_argument("--device", default="auto", help="cpu, cuda, cuda:1, ... (default: auto)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    add_json_flag(p)
    p.set_defaults(func=_cmd_scene)


def _cmd_scene(args: argparse.Namespace) -> int:
    from saropt.detect.scene.detectors import CheckpointDetector
    from saropt.detect.scene.run import SceneOptions, run_scene
    from saropt.engine import check_device

    device = check_device(args.device)
    opts = SceneOptions(tile=args.tile, overlap=args.overlap, batch_size=args.batch_size,
                        merge=args.merge, merge_iou=args.merge_iou, fuse=args.fuse,
                        fuse_iou=args.fuse_iou, weights=args.weights, land_mask=args.land_mask,
                        drop_land=args.drop_land, inshore_m=args.inshore_m, band=args.band,
                        nodata=args.nodata, image_id=args.image_id,
                        pixel_spacing=args.pixel_spacing, progress=not args.quiet)
    dets = [CheckpointDetector(c, device, args.score_thresh) for c in args.checkpoints]
    for d in dets:  # before the run, also with --json (the summary repeats them)
        for note in d.notes:
            print(f"saropt: warning: {note}", file=sys.stderr)
    summary = run_scene(args.scene, dets, args.out, opts)
    emit(summary, args.json, _text(summary))
    return 0


def _text(s: dict[str, Any]) -> str:
    lines = [f"{s['scene']}: {s['width']} x {s['height']} px ({s['megapixels']} MP), "
             f"georeference: {s['georeference']}",
             f"tiles: {s['tiles']} of {s['tile']} px, overlap {s['overlap']} "
             f"({s['blocks_resumed']} of {s['blocks']} blocks resumed, {s['nodata_tiles']} "
             f"nodata tiles skipped)"]
    for name, c in s["per_model"].items():
        lines.append(f"  {name}: {c['tile_detections']} tile detections -> "
                     f"{c['after_seam_rule']} after the seam rule -> {c['after_merge']} merged")
    lines.append(f"ships: {s['n_detections']} ({s['model']}), {s['n_above_draw_thr']} with "
                 f"score >= {s['options']['draw_thr']}; locations {s['locations']}"
                 + (f", {s['land_dropped']} on land dropped" if s["options"]["drop_land"]
                    else ""))
    for d in s["detectors"]:
        lines += [f"note: {n}" for n in d["notes"]]
    lines.append(f"map: {s['map']}")
    lines.append("written: " + ", ".join(s["files"].values()))
    return "\n".join(lines)
