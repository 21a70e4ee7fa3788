"""Benchmark of ``saropt data build``: throughput (SAR-grid megapixels per second) and peak memory
at scene size s and 4s, against GDAL's ``gdalwarp`` (bilinear, the same tie points as GCPs,
``-order 1``) on the same scene, plus registration RMSE against the exact mapping and the
agreement of the warped optical with gdalwarp's.

    MALLOC_MMAP_MAX_=0 MALLOC_TRIM_THRESHOLD_=200000000000 \\
        .venv/bin/python benchmarks/bench_build.py --side 2048 --out /tmp/bench_build

Each run is a separate process; peak memory is its peak resident set (``VmHWM`` of
``/proc/PID/status``, which, unlike ``ru_maxrss``, does not inherit the forking parent's size).
One run each, single-threaded.
gdalwarp is skipped with a message when it is not installed (Debian: ``apt-get install
gdal-bin``).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

CHILD = r"""
import json, sys, time
from saropt.build import BuildConfig, build_dataset
mode, cfg_json = sys.argv[1], sys.argv[2]
cfg = BuildConfig.model_validate_json(cfg_json)
import cv2, rasterio, scipy, skimage.transform, tqdm  # noqa: the build's imports, for "imports"
t = time.perf_counter()
if mode == "imports":
    extra = {}
elif mode == "build":
    r = build_dataset(cfg, fresh=True, summary=False)
    extra = {"kept": r.n_kept, "rmse": [f.rmse for f in r.plan.fits]}
else:  # warp only: the same windowed warping over the scene in 1024 px tiles, nothing written
    import rasterio
    from saropt.build.pipeline import make_plan
    from saropt.build.rasters import GDAL_ENV, OpticalSource, SarSource
    from saropt.build.warp import warp_window
    with rasterio.Env(**GDAL_ENV):
        sar, opt = SarSource(cfg.sar, None, cfg.sar_scaling), OpticalSource(cfg.optical)
        fit = make_plan(cfg, sar, opt).fits[0]
        h, w = sar.shape
        for y in range(0, h, 1024):
            for x in range(0, w, 1024):
                warp_window(fit, opt, x, y, min(1024, w - x), min(1024, h - y))
    extra = {}
sec = time.perf_counter() - t
hwm = [l for l in open("/proc/self/status") if l.startswith("VmHWM")][0]
print(json.dumps({"seconds": sec, "peak_mb": int(hwm.split()[1]) / 1024, **extra}))
"""


def run_child(mode: str, cfg) -> dict:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    proc = subprocess.run([sys.executable, "-c", CHILD, mode, cfg.model_dump_json()],
                          capture_output=True, text=True, env=env)
    if proc.returncode:
        raise SystemExit(f"{mode} run failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def run_gdalwarp(scene: Path, registration: Path, side: int, work: Path) -> dict | None:
    """gdal_translate (tie points as GCPs) + gdalwarp -order 1 -r bilinear onto the SAR grid.

    gdalwarp has no outlier rejection, so it gets the tie points that saropt's RANSAC kept
    (with the outliers its least-squares fit would be off by pixels)."""
    if not shutil.which("gdalwarp"):
        print("gdalwarp not found: skipping the GDAL comparison (apt-get install gdal-bin)")
        return None
    gcps = []
    points = json.loads(registration.read_text())["subregions"][0]["points"]
    for p in (p for p in points if p["inlier"]):  # GDAL pixel/line: pixel centre = index + 0.5
        gcps += ["-gcp", f"{p['opt_x'] + 0.5}", f"{p['opt_y'] + 0.5}", f"{p['sar_x'] + 0.5}",
                 f"{-(p['sar_y'] + 0.5)}"]
    vrt, out = work / "optical_gcps.vrt", work / "gdalwarp.tif"
    subprocess.run(["gdal_translate", "-q", "-of", "VRT", "-a_srs", "EPSG:3857", *gcps,
                    str(scene / "optical.tif"), str(vrt)], check=True)
    out.unlink(missing_ok=True)
    cmd = ["gdalwarp", "-q", "-order", "1", "-r", "bilinear", "-te", "0", str(-side), str(side),
           "0", "-tr", "1", "1", "-wm", "64", "-co", "TILED=YES", str(vrt), str(out)]
    t = time.perf_counter()
    proc = subprocess.Popen(cmd)
    peak = 0.0
    while proc.poll() is None:  # VmHWM only grows: the last reading before exit is the peak
        peak = max(peak, _vm_hwm_mb(proc.pid))
        time.sleep(0.02)
    sec = time.perf_counter() - t
    if proc.returncode:
        raise SystemExit(f"gdalwarp failed ({proc.returncode})")
    return {"seconds": sec, "peak_mb": peak, "path": out}


def _vm_hwm_mb(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/status") as f:
            line = next(l for l in f if l.startswith("VmHWM"))
        return int(line.split()[1]) / 1024
    except (OSError, StopIteration):
        return 0.0


def agreement_with_gdal(out: Path, gdal_tif: Path, size: int) -> float:
    """Mean |ours - gdalwarp| (grey levels) over up to 20 kept optical patches."""
    import rasterio
    from PIL import Image
    from rasterio.windows import Window

    from saropt.build.pipeline import layout_dirs

    _, opt_dir = layout_dirs(size, 0.2)
    with (out / "manifest.csv").open() as f:
        kept = [r for r in csv.DictReader(f) if r["decision"] == "keep"]
    diffs = []
    with rasterio.open(gdal_tif) as ds:
        for r in kept[:: max(1, len(kept) // 20)]:
            ours = np.asarray(Image.open(out / opt_dir / f"{r['id']}.png"), np.float64)
            ref = ds.read(window=Window(int(r["x"]), int(r["y"]), size, size)).astype(float)
            diffs.append(np.abs(ours - np.moveaxis(ref, 0, -1)).mean())
    return float(np.mean(diffs))


def truth_rmse(scene, fit_rmse_json: Path) -> float:
    """RMSE (px) of the fitted affine against the exact mapping over the SAR grid."""
    reg = json.loads(fit_rmse_json.read_text())["subregions"][0]
    m = np.asarray(reg["params"])
    h, w = scene.sar_shape
    ys, xs = np.mgrid[0:h:16, 0:w:16]
    xy = np.column_stack([xs.ravel(), ys.ravel(), np.ones(xs.size)])
    err = xy @ m.T - xy @ scene.matrix.T
    return float(np.sqrt(np.mean(np.sum(err[:, :2] ** 2, axis=1))))


def main() -> None:
    from saropt.build import BuildConfig
    from saropt.build.fixtures import make_affine_scene
    from saropt.utils.table import format_table

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--side", type=int, default=2048, help="scene side s (4s = 2x side)")
    ap.add_argument("--out", default="/tmp/saropt_bench_build")
    args = ap.parse_args()
    root = Path(args.out)
    rows, notes = [], []
    base = None
    for side in (args.side, 2 * args.side):
        scene = make_affine_scene(root / f"scene_{side}", side, seed=0, sea_fraction=0.2,
                                  n_points=40, noise_px=0.3, n_outliers=4)
        cfg = BuildConfig(sar=scene.dir / "sar.tif", optical=scene.dir / "optical.tif",
                          tiepoints=scene.dir / "tiepoints.csv",
                          subregions=scene.dir / "subregions.json", out=root / f"out_{side}",
                          progress=False, summary=False)
        mp = side * side / 1e6
        if base is None:
            base = run_child("imports", cfg)
            rows.append(("python + saropt imports (baseline)", "-", 0.0, 0.0, 0.0,
                         base["peak_mb"]))
        b = run_child("build", cfg)
        rmse = truth_rmse(scene, cfg.out / "registration.json")
        rows.append(("saropt build (warp+patches+screen+PNG)", f"{side}^2", mp, b["seconds"],
                     mp / b["seconds"], b["peak_mb"]))
        wo = run_child("warp", cfg)
        rows.append(("saropt warp only (1024 px windows)", f"{side}^2", mp, wo["seconds"],
                     mp / wo["seconds"], wo["peak_mb"]))
        g = run_gdalwarp(scene.dir, cfg.out / "registration.json", side, root)
        if g:
            rows.append(("gdalwarp -order 1 -r bilinear -wm 64", f"{side}^2", mp, g["seconds"],
                         mp / g["seconds"], g["peak_mb"]))
            diff = agreement_with_gdal(cfg.out, g["path"], cfg.patches.size)
            notes.append(f"{side}^2: mean |saropt - gdalwarp| on kept optical patches "
                         f"{diff:.2f} grey levels")
        notes.append(f"{side}^2: {b['kept']} pairs kept; fit RMSE {b['rmse'][0]:.3f} px, "
                     f"RMSE vs exact mapping {rmse:.3f} px (40 points, 0.3 px noise, 4 "
                     "outliers)")
    notes.append(f"CPU: {os.cpu_count()} cores (shared); one run each")
    print(format_table(rows, ["run", "scene", "MP", "seconds", "MP/s", "peak RSS MB"], ".2f"))
    print("\n".join(notes))


if __name__ == "__main__":
    main()
