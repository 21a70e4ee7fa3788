"""Benchmark of the synthetic world: scene-pair render time and peak memory per size, and the
QXS-pair and ship-chip writers' throughput.

    MALLOC_MMAP_MAX_=0 MALLOC_TRIM_THRESHOLD_=200000000000 \\
        .venv/bin/python benchmarks/bench_synth.py [--sizes 1024 2048 4096] [--writers]

Each size renders in a fresh process; peak memory is that process's peak resident set
(``VmHWM`` from ``/proc/self/status``) and the peak of numpy allocations seen by tracemalloc
(OpenCV's own buffers are not traced). Timings are wall-clock, one run each: on a shared
machine run it when the machine is quiet.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time

CHILD = r"""
import json, sys, time, tracemalloc
size, seed, trace = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3] == "1"
from saropt.synth import make_scene_pair
if trace:
    tracemalloc.start()
t0 = time.perf_counter(); c0 = time.process_time()
pair = make_scene_pair(size, seed)
wall, cpu = time.perf_counter() - t0, time.process_time() - c0
traced = tracemalloc.get_traced_memory()[1] if trace else None
hwm = next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmHWM"))
print(json.dumps({"size": size, "wall_s": round(wall, 2), "cpu_s": round(cpu, 2),
                  "peak_rss_mib": round(hwm / 1024, 1),
                  "numpy_peak_mib": None if traced is None else round(traced / 2**20, 1),
                  "ships": len(pair.ships), "buildings_px": int((pair.classes == 4).sum()),
                  "optical_shape": list(pair.optical.shape[:2])}))
"""


def bench_render(size: int, seed: int, trace: bool) -> dict:
    out = subprocess.run([sys.executable, "-c", CHILD, str(size), str(seed), "1" if trace else "0"],
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def bench_writers(seed: int) -> list[dict]:
    from saropt.synth import write_qxs_pairs, write_ship_datasets

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        write_qxs_pairs(f"{tmp}/qxs", 200, seed, progress=False)
        dt = time.perf_counter() - t0
        rows.append({"writer": "write_qxs_pairs (200 x 256 px, 2048 scenes)",
                     "wall_s": round(dt, 2), "per_item_ms": round(1000 * dt / 200, 1)})
        t0 = time.perf_counter()
        write_ship_datasets(f"{tmp}/ships", seed, 60, 20, image_size=256, progress=False)
        dt = time.perf_counter() - t0
        rows.append({"writer": "write_ship_datasets (60 + 20 chips of 256 px)",
                     "wall_s": round(dt, 2), "per_item_ms": round(1000 * dt / 80, 1)})
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[1024, 2048, 4096])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--trace", action="store_true",
                    help="also trace numpy allocations (slows rendering a little)")
    ap.add_argument("--writers", action="store_true", help="also time the dataset writers")
    args = ap.parse_args()
    for size in args.sizes:
        print(json.dumps(bench_render(size, args.seed, args.trace)), flush=True)
    if args.writers:
        for row in bench_writers(args.seed):
            print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
