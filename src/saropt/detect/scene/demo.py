"""``saropt demo`` stage: the demo's detectors (OSM and OSD, paper 000) on a whole synthetic scene.

Fused by WBF, with a land mask, the georeferenced outputs and the offline map.

The scene is rendered by ``saropt.synth`` (not one of the training scenes), written as a uint16
amplitude GeoTIFF placed in UTM zone 33N at 1 m pixels (the synthetic world has no geography:
the place is made up so the map has coordinates), with its class map as the land mask raster
and its ships' boxes as scene-level ground truth.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

#: scene side (px, 1 m), tile overlap (ships up to ~100 m must fit in the overlap), seed offset
#: and the inshore distance (a 1.3 km scene: the CLI's 500 m would make most ships inshore)
DEMO = {"size": 1280, "overlap": 0.4, "seed_offset": 900, "inshore_m": 100.0}
UTM33N_ORIGIN = (480000.0, 4420000.0)
#: COCO AP's detections-per-image cap for a whole scene (the chip default of 100 would cut it)
SCENE_MAX_DETS = 10_000


def write_geo_scene(pair: Any, out: Path) -> tuple[Path, Path, Path]:
    """Write a synthetic scene pair as GeoTIFFs and COCO ground truth; returns the three paths.

    ``scene.tif`` (uint16 amplitude), ``land.tif`` (uint8, 1 = land) with one made-up UTM 33N
    georeference at 1 m pixels, and ``gt.json`` (COCO, image id 1) from the scene's ships.
    """
    import rasterio
    from rasterio.transform import Affine

    from saropt.synth.config import SEA, SHIP
    from saropt.synth.writers import write_geotiff
    from saropt.utils.io import write_json_atomic

    h, w = pair.shape
    land = ((pair.classes != SEA) & (pair.classes != SHIP)).astype(np.uint8)
    paths = (write_geotiff(out / "scene.tif", pair.sar_amp), write_geotiff(out / "land.tif", land))
    for p in paths:
        with rasterio.open(p, "r+") as dst:
            dst.crs = "EPSG:32633"
            dst.transform = Affine(1.0, 0.0, UTM33N_ORIGIN[0], 0.0, -1.0, UTM33N_ORIGIN[1])
    anns = [{"id": i + 1, "image_id": 1, "category_id": 1,
             "bbox": [b[0], b[1], b[2] - b[0], b[3] - b[1]],
             "area": (b[2] - b[0]) * (b[3] - b[1]), "iscrowd": 0}
            for i, b in enumerate(s["sar_box"] for s in pair.ships)]
    gt = write_json_atomic(out / "gt.json", {
        "images": [{"id": 1, "file_name": "scene.tif", "width": w, "height": h}],
        "annotations": anns, "categories": [{"id": 1, "name": "ship"}]})
    return paths[0], paths[1], gt


def _checkpoints(ctx: Any) -> dict[str, str]:
    """OSM and OSD when the earlier stages made them, else what there is."""
    found = dict(ctx.artifacts.get("detect_checkpoints") or {})
    if ctx.artifacts.get("osd_sar_checkpoint"):
        found["OSD"] = ctx.artifacts["osd_sar_checkpoint"]
    pick = {k: found[k] for k in ("OSM", "OSD") if k in found}
    return pick or found


def run(ctx: Any) -> None:
    """Run the demo's scene stage: detect, fuse, score and map one synthetic scene.

    Skips (with a line in the report) when no detector checkpoint was made earlier.
    """
    r = ctx.report
    r.section("Ships in a whole scene",
              "`saropt detect scene`: the detectors above run over a whole synthetic scene "
              f"({DEMO['size']} x {DEMO['size']} px, not seen in training) in tiles at their "
              "trained pixel scale, with the training radiometry fitted once on the scene; "
              "boxes cut by tile borders are dropped for the tile holding them whole, the rest "
              "merged by NMS, and the models fused by WBF (as `saropt fuse`). A land raster "
              f"tags each ship land / inshore (land within {DEMO['inshore_m']:.0f} m) / "
              "offshore.")
    ckpts = _checkpoints(ctx)
    if not ckpts:
        r.text("*Skipped: no detector checkpoints from the detection stages.*")
        return
    from saropt.detect.ap import evaluate_coco_results
    from saropt.detect.scene.detectors import CheckpointDetector
    from saropt.detect.scene.run import SceneOptions, run_scene
    from saropt.synth import make_scene_pair
    from saropt.synth.ships import ship_world_config

    t0 = time.perf_counter()
    out = ctx.out_dir / "scene"
    out.mkdir(parents=True, exist_ok=True)
    pair = make_scene_pair(DEMO["size"], ctx.seed * 1000 + DEMO["seed_offset"],
                           ship_world_config())
    scene, land, gt = write_geo_scene(pair, out)
    t_render = time.perf_counter() - t0
    try:
        from saropt.detect.demo import cpu_threads
    except ImportError:
        from contextlib import nullcontext as cpu_threads
    with cpu_threads():
        dets = [CheckpointDetector(p, "cpu") for p in ckpts.values()]
        for d, name in zip(dets, ckpts):
            d.name = name
        s = run_scene(scene, dets, out / "detections", SceneOptions(
            overlap=DEMO["overlap"], land_mask=str(land), inshore_m=DEMO["inshore_m"],
            progress=False))
    rows = []
    files = {**{n: s["files"].get(f"coco_{n}") for n in ckpts}, s["model"]: s["files"]["coco"]}
    for name, path in files.items():
        if path is None:
            continue
        m = evaluate_coco_results(gt, path, max_dets=SCENE_MAX_DETS)["all"]
        ap = m["ap50"]
        rows.append((name, m["n_detections"], _f(ap["voc_all_point"]), _f(ap["coco_101pt"])))
    sea = _off_land(s)  # what --drop-land keeps, scored the same way
    m = evaluate_coco_results(gt, sea, max_dets=SCENE_MAX_DETS)["all"]
    rows.append((f"{s['model']}, land dropped", m["n_detections"],
                 _f(m["ap50"]["voc_all_point"]), _f(m["ap50"]["coco_101pt"])))
    r.table(rows, ["model", "detections", "AP50 VOC all-pt", "AP50 COCO 101-pt"])
    c = next(iter(s["per_model"].values()))
    r.text(f"{len(pair.ships)} true ships. {s['tiles']} tiles of {s['tile']} px (overlap "
           f"{s['overlap']}, pixel scale {dets[0].scale:.3g}); first model: "
           f"{c['tile_detections']} tile detections, {c['after_seam_rule']} after the seam rule, "
           f"{c['after_merge']} merged. Fused ships by location: {s['locations']}. Scene "
           f"render {t_render:.1f} s, detection {s['tile_stage_s']:.1f} s "
           f"({s['megapixels_per_s']} MP/s), outputs {s['outputs_s']:.1f} s. Map: {s['map']} "
           f"(`{Path(s['files']['map']).relative_to(ctx.out_dir).as_posix()}`).")
    ql = Path(s["files"]["quicklook"])
    r.image(ql, f"quicklook.png: fused detections with score >= {s['options']['draw_thr']} "
                "(cyan offshore, orange inshore, red on land) on the scene")
    ctx.artifacts["scene_detections"] = s["files"]["geojson"]


def _off_land(summary: dict[str, Any]) -> list[dict[str, Any]]:
    """The fused COCO results whose GeoJSON feature is not tagged ``land`` (same order)."""
    import json

    feats = json.loads(Path(summary["files"]["geojson"]).read_text())["features"]
    res = json.loads(Path(summary["files"]["coco"]).read_text())
    return [r for r, f in zip(res, feats) if f["properties"]["location"] != "land"]


def _f(v: float | None) -> str:
    return "n/a" if v is None else f"{v:.3f}"
