"""Peak memory of ``saropt detect eval`` with the gallery on a scene-size GeoTIFF (issue 10,
kind 5: figures never cost the numbers; the gallery draws a window, never the whole scene).

    MALLOC_MMAP_MAX_=0 MALLOC_TRIM_THRESHOLD_=200000000000 OMP_NUM_THREADS=1 \\
        .venv/bin/python benchmarks/bench_detect_eval_memory.py          # 26102 x 16705 scene
    .venv/bin/python benchmarks/bench_detect_eval_memory.py --width 8000 --height 6000 --json

The scene is the real Sentinel-1 GRD of ``../shared/cases/real-inputs/sentinel1-grd-scene-gallery``
when present (``--synthetic`` to skip it), else a generated uint16 tiled, deflate-compressed
GeoTIFF of ``--width`` x ``--height`` (speckle-free sea of 200 plus one bright ship, written
window by window) with a VOC XML holding that ship and a predictions file hitting it. The command
runs under ``/usr/bin/time -v``; the table gives the peak resident memory, the wall time and AP.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from saropt.utils.table import format_table

CASE = Path(__file__).resolve().parents[2] / "shared" / "cases" / "real-inputs" / \
    "sentinel1-grd-scene-gallery"


def synthetic_scene(folder: Path, width: int, height: int) -> tuple[Path, Path]:
    """(root, predictions) of a generated scene with one ship at (1000, 2000)."""
    import rasterio
    from rasterio.windows import Window

    root = folder / "scenes"
    root.mkdir(parents=True)
    with rasterio.open(root / "scene.tiff", "w", driver="GTiff", width=width, height=height,
                       count=1, dtype="uint16", tiled=True, compress="deflate") as dst:
        for y0 in range(0, height, 1024):
            h = min(1024, height - y0)
            dst.write(np.full((h, width), 200, np.uint16), 1, window=Window(0, y0, width, h))
        dst.write(np.full((15, 40), 30000, np.uint16), 1, window=Window(1000, 2000, 40, 15))
    (root / "scene.xml").write_text(
        f"<annotation><size><width>{width}</width><height>{height}</height></size><object>"
        "<name>ship</name><bndbox><xmin>1000</xmin><ymin>2000</ymin><xmax>1040</xmax>"
        "<ymax>2015</ymax></bndbox></object></annotation>")
    pred = folder / "pred.json"
    pred.write_text(json.dumps([{"image_id": 1, "category_id": 1, "bbox": [1000, 2000, 40, 15],
                                 "score": 0.9}]))
    return root, pred


def measure(root: Path, pred: Path, out: Path) -> dict:
    cmd = ["/usr/bin/time", "-v", sys.executable, "-m", "saropt.cli", "detect", "eval",
           "--dataset", "air-sarship-1.0", "--root", str(root), "--split", "all", "--pred",
           str(pred), "--out", str(out)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    peak = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", proc.stderr).group(1))
    wall = re.search(r"Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): ([\d:.]+)", proc.stderr)
    metrics = json.loads((out / "metrics.json").read_text()) if proc.returncode == 0 else {}
    return {"exit": proc.returncode, "peak_rss_mb": round(peak / 1024, 1),
            "wall": wall.group(1) if wall else None,
            "ap50_voc_all_point": metrics.get("all", {}).get("ap50", {}).get("voc_all_point"),
            "gallery": (out / "gallery.png").is_file(), "warnings": metrics.get("warnings")}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--width", type=int, default=26102)
    ap.add_argument("--height", type=int, default=16705)
    ap.add_argument("--synthetic", action="store_true", help="generate even if the case exists")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        if CASE.is_dir() and not args.synthetic:
            name, root, pred = "sentinel-1 GRD 26102x16705", CASE / "scenes", \
                CASE / "scene_pred.json"
        else:
            name = f"synthetic {args.width}x{args.height}"
            root, pred = synthetic_scene(tmp, args.width, args.height)
        row = {"scene": name, **measure(root, pred, tmp / "out")}
    if args.json:
        print(json.dumps(row, indent=2))
    else:
        print(format_table([list(row.values())], list(row)))


if __name__ == "__main__":
    main()
