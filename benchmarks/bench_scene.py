"""Benchmark of ``saropt detect scene``: megapixels per second and peak memory at scene size s
and 4s, against SAHI's sliced prediction (``sahi.predict.get_sliced_prediction``) with the same
torchvision detector, tiles, overlap and batch size, plus the agreement of the two and AP@0.5 of
each against the scene's true ships.

    MALLOC_MMAP_MAX_=0 MALLOC_TRIM_THRESHOLD_=200000000000 \\
        .venv/bin/python benchmarks/bench_scene.py --side 2048 --out /tmp/bench_scene

SAHI is a benchmark-only dependency: ``pip install --no-deps sahi==0.12.8 fire termcolor``
(``--no-deps`` because SAHI asks for ``opencv-python``, which would replace the
``opencv-python-headless`` saropt uses; the headless build provides the same ``cv2``).

The detector is a small Faster R-CNN (ResNet18-FPN, 32-channel FPN) trained for ~1 minute on
64 px toy chips (``tests/test_detect_train.write_toy_hrsid``) unless ``--checkpoint`` is given;
the scene is uint16 Gamma sea with bright ships (``tests/_scene_fixtures.write_scene``). Both
pipelines get the same 8-bit tiles: SAHI is handed the whole scene stretched with the same
mapping (it has no radiometry of its own and needs the scene in memory); its model is the same
object, with the same ``min_size``/``max_size`` so tiles are not resized. SAHI runs without its
extra full-image pass (``perform_standard_pred=False``) and with its default merge (GREEDYNMM,
IOS 0.5). ``--huge 30000`` instead runs the pipeline alone (the tests' blob detector,
1024 px tiles) at 7500 and 30000 px a side. "to detections" is the time to the merged
detections (saropt's total less the writing of GeoJSON, CSV, quicklook and map, which SAHI
does not make); MP/s uses it. Each run is a separate process (peak memory = its ``VmHWM``);
one run each, one torch thread.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

CHILD = r"""
import json, sys, time
sys.path.insert(0, sys.argv[4])
mode, scene, out, _, ckpt, tile, overlap, batch = sys.argv[1:9]
tile, overlap, batch = int(tile), float(overlap), int(batch)
import torch
torch.set_num_threads(1)
from saropt.detect.scene.detectors import CheckpointDetector
from saropt.detect.scene.run import SceneOptions, run_scene
det = CheckpointDetector(ckpt, "cpu")
t = time.perf_counter()
if mode == "saropt":
    s = run_scene(scene, [det], out, SceneOptions(tile=tile, overlap=overlap, batch_size=batch,
                                                  progress=False))
    res = json.load(open(out + "/detections.json"))
    outputs_s = s["outputs_s"]
else:
    import numpy as np, rasterio
    from sahi.models.torchvision import TorchVisionDetectionModel
    from sahi.predict import get_sliced_prediction
    from saropt.detect.scene.radiometry import apply_stretch, fit_stretch
    from saropt.detect.scene.raster import decimated, open_scene

    class GrayTorchVision(TorchVisionDetectionModel):
        def perform_inference(self, image, image_size=None):  # one-channel SAR detector
            super().perform_inference(np.ascontiguousarray(image[..., :1]), image_size)

    info = open_scene(scene)
    small, _ = decimated(info, 2048)
    lo, hi = fit_stretch(small, det.radiometry)
    with rasterio.open(scene) as src:
        u8 = apply_stretch(src.read(1), lo, hi, det.radiometry)
    rgb = np.repeat(u8[..., None], 3, axis=2)
    del u8
    det.prepare(tile, tile)
    model = GrayTorchVision(model=det.model, confidence_threshold=0.05, device="cpu",
                            category_mapping={"1": "ship"}, load_at_init=True)
    r = get_sliced_prediction(rgb, model, slice_height=tile, slice_width=tile,
                              overlap_height_ratio=overlap, overlap_width_ratio=overlap,
                              perform_standard_pred=False, verbose=0, batch_size=batch)
    res = [{"image_id": 1, "category_id": 1, "bbox": list(p.bbox.to_xywh()),
            "score": float(p.score.value)} for p in r.object_prediction_list]
    json.dump(res, open(out + "/sahi.json", "w"))
    outputs_s = 0.0
sec = time.perf_counter() - t
hwm = [l for l in open("/proc/self/status") if l.startswith("VmHWM")][0]
print(json.dumps({"seconds": sec, "detect_seconds": sec - outputs_s,
                  "peak_mb": int(hwm.split()[1]) / 1024, "n": len(res), "results": res}))
"""


HUGE = r"""
import json, sys, time
sys.path.insert(0, sys.argv[3])
from _scene_fixtures import BlobDetector
from saropt.detect.scene.run import SceneOptions, run_scene
t = time.perf_counter()
s = run_scene(sys.argv[1], [BlobDetector(tile=1024)], sys.argv[2],
              SceneOptions(tile=1024, overlap=0.25, batch_size=4, progress=False))
hwm = [l for l in open("/proc/self/status") if l.startswith("VmHWM")][0]
print(json.dumps({"seconds": time.perf_counter() - t, "peak_mb": int(hwm.split()[1]) / 1024,
                  "n": s["n_detections"], "tiles": s["tiles"]}))
"""


def huge(side: int, out: Path) -> None:
    """Peak memory of the pipeline at side/4 and side (16x the pixels) with the deterministic
    blob detector of the tests (no neural network: the pipeline's own memory and speed)."""
    from _scene_fixtures import ship_boxes, write_scene

    from saropt.utils.table import format_table

    rows = []
    for s in (side // 4, side):
        t0 = time.perf_counter()
        boxes = ship_boxes(s, s, s * s // 400_000, seed=s, max_len=30)
        scene = write_scene(out / f"huge_{s}.tif", s, s, boxes, strip=512)
        t_write = time.perf_counter() - t0
        env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT / "src")}
        r = subprocess.run([sys.executable, "-c", HUGE, str(scene), str(out / f"huge_out_{s}"),
                            str(ROOT / "tests")], env=env, capture_output=True, text=True)
        if r.returncode:
            raise SystemExit(r.stderr[-3000:])
        res = json.loads(r.stdout.strip().splitlines()[-1])
        mp = s * s / 1e6
        rows.append([f"{s} x {s}", f"{mp:.0f}", res["tiles"], f"{t_write:.0f}",
                     f"{res['seconds']:.0f}", f"{mp / res['seconds']:.1f}",
                     f"{res['peak_mb']:.0f}", f"{res['n']} of {len(boxes)}"])
        (out / f"huge_{s}.tif").unlink()
        print(f"done {s}", flush=True)
    print(format_table(rows, ["scene", "MP", "tiles", "write s", "detect s", "MP/s", "peak MB",
                              "detections / true ships"], markdown=True))


def fusion_cost() -> None:
    """Seconds of the scene-level merge (NMS, one model) and WBF fusion (two models) for n
    random small boxes per model on a 30,000 px scene."""
    from saropt.detect.scene.tiles import fuse_rows, merge
    from saropt.utils.table import format_table

    merge(np.zeros((1, 6), np.float32) + [0, 0, 1, 1, 1, 1], "nms", 0.5, (2, 2))  # import torch
    rng = np.random.default_rng(0)
    rows = []
    for n in (2000, 8000, 32000):
        xy = rng.random((n, 2)) * 29950
        wh = rng.random((n, 2)) * 40 + 5
        r = np.concatenate([xy, xy + wh, rng.random((n, 1)), np.ones((n, 1))], 1)
        r = r.astype(np.float32)
        t = time.perf_counter()
        merge(r, "nms", 0.5, (30000, 30000))
        t_nms = time.perf_counter() - t
        t = time.perf_counter()
        fuse_rows([r, r[::-1].copy()], [1.0, 1.0], "wbf", 0.55, (30000, 30000))
        rows.append([n, f"{t_nms:.2f}", f"{time.perf_counter() - t:.2f}"])
    print(format_table(rows, ["boxes per model", "NMS merge s", "WBF of 2 models s"],
                       markdown=True))


def train_tiny(out: Path) -> Path:
    """A small Faster R-CNN on 64 px toy chips (the test suite's recipe, 8 epochs)."""
    from test_detect_train import TINY, write_toy_hrsid

    from saropt.cli import main

    root = write_toy_hrsid(out / "toy_hrsid", n_train=48)
    run = out / "tiny_run"
    args = ["detect", "train", "detect/synthetic_faster_rcnn_r18", f"data.root={root}",
            f"out_dir={run}", "trainer.max_epochs=8", *TINY,
            "model.options.fpn_channels=32", "model.options.representation_size=128",
            # the toy chips: sea ~50, ships ~200 in 8 bit; the bench scene: sea ~120 DN
            "data.radiometry={kind: linear, low: 0, high: 700}", "--json"]
    if main(args) != 0:
        raise SystemExit("training the tiny detector failed")
    return run / "checkpoints" / "last.ckpt"


def child(mode: str, scene: Path, out: Path, ckpt: Path, tile: int, overlap: float,
          batch: int) -> dict:
    out.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT / "src")}
    r = subprocess.run([sys.executable, "-c", CHILD, mode, str(scene), str(out),
                        str(ROOT / "tests"), str(ckpt), str(tile), str(overlap), str(batch)],
                       env=env, capture_output=True, text=True)
    if r.returncode:
        raise SystemExit(f"{mode} run failed:\n{r.stderr[-3000:]}")
    return json.loads(r.stdout.strip().splitlines()[-1])


def agreement(a: list[dict], b: list[dict], thr: float = 0.5) -> float:
    """Share of ``a``'s detections (score >= 0.5) matched one-to-one by ``b``'s at IoU >= thr."""
    from saropt.detect.ap import xywh_to_xyxy
    from saropt.detect.viz import match_detections

    pa = [r for r in a if r["score"] >= 0.5]
    pb = [r for r in b if r["score"] >= 0.5]
    if not pa:
        return float("nan")
    gt = xywh_to_xyxy([r["bbox"] for r in pa])
    pred = xywh_to_xyxy([r["bbox"] for r in pb])
    scores = np.array([r["score"] for r in pb], np.float32)
    _, _, missed = match_detections(gt, pred, scores, thr, np.zeros((0, 4), np.float32))
    return float(1 - missed.mean())


def ap50(results: list[dict], boxes: np.ndarray, side: int) -> float:
    from saropt.detect.ap import evaluate_coco_results

    gt = {"images": [{"id": 1, "file_name": "scene.tif", "width": side, "height": side}],
          "annotations": [{"id": i + 1, "image_id": 1, "category_id": 1,
                           "bbox": [float(b[0]), float(b[1]), float(b[2] - b[0]),
                                    float(b[3] - b[1])],
                           "area": float((b[2] - b[0]) * (b[3] - b[1])), "iscrowd": 0}
                          for i, b in enumerate(boxes)],
          "categories": [{"id": 1, "name": "ship"}]}
    m = evaluate_coco_results(gt, results)
    return m["all"]["ap50"]["voc_all_point"] or 0.0


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--side", type=int, default=2048, help="scene side s (the second is 2s)")
    p.add_argument("--tile", type=int, default=256)
    p.add_argument("--overlap", type=float, default=0.25)
    p.add_argument("--batch-size", type=int, default=4)
    p.add_argument("--checkpoint", type=Path, help="detector (default: train a tiny one)")
    p.add_argument("--out", type=Path, default=Path("/tmp/bench_scene"))
    p.add_argument("--huge", type=int, help="instead: peak memory of the pipeline at HUGE/4 "
                   "and HUGE px a side with the blob detector (e.g. 30000)")
    p.add_argument("--fusion-cost", action="store_true",
                   help="instead: seconds of the scene-level NMS merge and WBF fusion")
    args = p.parse_args()
    if args.fusion_cost:
        fusion_cost()
        return
    from _scene_fixtures import ship_boxes, write_scene

    args.out.mkdir(parents=True, exist_ok=True)
    if args.huge:
        huge(args.huge, args.out)
        return
    t0 = time.perf_counter()
    ckpt = args.checkpoint or train_tiny(args.out)
    print(f"detector: {ckpt} ({time.perf_counter() - t0:.0f} s)", flush=True)
    rows, report = [], []
    for side in (args.side, 2 * args.side):
        boxes = ship_boxes(side, side, side * side // 40_000, seed=side, max_len=30)
        scene = write_scene(args.out / f"scene_{side}.tif", side, side, boxes)
        mp = side * side / 1e6
        res = {m: child(m, scene, args.out / f"{m}_{side}", ckpt, args.tile, args.overlap,
                        args.batch_size) for m in ("saropt", "sahi")}
        agree = (agreement(res["saropt"]["results"], res["sahi"]["results"]),
                 agreement(res["sahi"]["results"], res["saropt"]["results"]))
        for m, r in res.items():
            rows.append([f"{side} x {side}", m, f"{mp:.1f}", f"{r['seconds']:.1f}",
                         f"{r['detect_seconds']:.1f}", f"{mp / r['detect_seconds']:.3f}",
                         f"{r['peak_mb']:.0f}", r["n"],
                         f"{ap50(r['results'], boxes, side):.3f}"])
        rows.append([f"{side} x {side}", "agreement", "", "", "", "", "", "",
                     f"saropt in sahi {agree[0]:.3f}, sahi in saropt {agree[1]:.3f}"])
        report.append({"side": side, "ships": len(boxes), "agreement": agree,
                       **{m: {k: v for k, v in r.items() if k != "results"}
                          for m, r in res.items()}})
        print(f"done {side}", flush=True)
    head = ["scene", "pipeline", "MP", "seconds", "to detections s", "MP/s", "peak MB",
            "detections",
            "AP50 (VOC all-pt)"]
    from saropt.utils.table import format_table

    print(format_table(rows, head, markdown=True))
    (args.out / "bench_scene.json").write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
