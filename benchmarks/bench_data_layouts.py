"""What finding the pairs of a root costs per layout: detected against explicit folder names.

    MALLOC_MMAP_MAX_=0 MALLOC_TRIM_THRESHOLD_=200000000000 \
        .venv/bin/python benchmarks/bench_data_layouts.py [--n 20000 --repeat 3]

Writes ``--n`` empty pair files in each layout (QXS folders, ``sar/`` + ``opt/``, SEN1-2 with
1,000 patches per ``s1_N`` scene, OSdataset ``256/{train,val,test}``) to a temporary folder and
times :func:`saropt.data.layout.scan_layout` (listing and pairing only; no image is decoded),
best of ``--repeat``. The baseline is the QXS root read with explicit ``sar_dir``/``opt_dir``
(no detection), measured in the same run.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path


def write_layouts(base: Path, n: int) -> dict[str, Path]:
    """Empty files named as each layout names them, ``n`` pairs each."""
    roots = {k: base / k for k in ("qxs", "plain", "sen12", "osdataset")}
    for sar, opt in (("sar_256_oc_0.2", "opt_256_oc_0.2"), ("sar", "opt")):
        root = roots["qxs" if sar != "sar" else "plain"]
        for d in (sar, opt):
            (root / d).mkdir(parents=True)
            for i in range(1, n + 1):
                (root / d / f"{i}.png").touch()
    for k in range(n):
        scene, p = divmod(k, 1000)
        for m in ("1", "2"):
            folder = roots["sen12"] / "ROIs1158_spring" / f"s{m}_{scene}"
            folder.mkdir(parents=True, exist_ok=True)
            (folder / f"ROIs1158_spring_s{m}_{scene}_p{p + 1}.png").touch()
    parts = {"train": int(0.7 * n), "val": int(0.1 * n)}
    parts["test"] = n - parts["train"] - parts["val"]
    for part, count in parts.items():
        folder = roots["osdataset"] / "256" / part
        folder.mkdir(parents=True)
        for i in range(1, count + 1):
            (folder / f"sar{i}.png").touch()
            (folder / f"opt{i}.png").touch()
    return roots


def best_time(fn, repeat: int) -> tuple[float, int]:
    times, pairs = [], 0
    for _ in range(repeat):
        t0 = time.perf_counter()
        pairs = len(fn().ids)
        times.append(time.perf_counter() - t0)
    return min(times), pairs


def main() -> None:
    from saropt.data.layout import scan_layout
    from saropt.utils.table import format_table

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=20000, help="pairs per layout")
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        roots = write_layouts(Path(tmp), args.n)
        runs = [("qxs, explicit folders (baseline)",
                 lambda: scan_layout(roots["qxs"], "sar_256_oc_0.2", "opt_256_oc_0.2"))]
        runs += [(f"{k}, detected", lambda r=r: scan_layout(r)) for k, r in roots.items()]
        rows = []
        for name, fn in runs:
            t, pairs = best_time(fn, args.repeat)
            rows.append((name, pairs, t * 1000, pairs / t))
    print(f"scan_layout, {args.n} pairs per root, empty files, best of {args.repeat}")
    print(format_table(rows, ["root", "pairs", "ms", "pairs/s"], floatfmt=".0f"))


if __name__ == "__main__":
    main()
