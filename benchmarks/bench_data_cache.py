"""Pairs per second from PNG files and from the decode-once cache, 1 worker and several.

    MALLOC_MMAP_MAX_=0 MALLOC_TRIM_THRESHOLD_=200000000000 \
        .venv/bin/python benchmarks/bench_data_cache.py [--root QXS --n 300 --workers 0 1 2]

Without ``--root`` it writes ``--n`` QXS-layout 256x256 pairs with speckled SAR and textured
optical content (PNG sizes close to real QXS-SAROPT patches) to a temporary folder. Each
configuration reads the same pairs through a DataLoader (batch 20, the paper's batch size,
default collate) and reports pairs per second overall and per worker (workers = 0 means the main
process alone), for float32 samples (the default) and uint8 samples (``dtype="uint8"``, converted
on the GPU), three ways: decoding PNGs, the cache read sample by sample (``__getitem__`` only, the
path before batched reads) and the cache read a batch at a time (``__getitems__``, what a
DataLoader uses). A fourth column, "transfer only", reads nothing: each batch is a fresh, filled
tensor pair of the cache batch's shape and dtype, allocated as the batched read allocates it
(shared memory inside workers), so it is the DataLoader's own ceiling for this batch size. Cache
passes repeat until ``--min-seconds`` have elapsed.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image


def _field(rng: np.random.Generator, size: int, scale: int) -> np.ndarray:
    """Smooth random field in [0, 1] (upsampled noise)."""
    small = rng.random((size // scale + 1, size // scale + 1)).astype(np.float32)
    img = Image.fromarray(small).resize((size, size), Image.Resampling.BICUBIC)
    a = np.asarray(img, dtype=np.float32)
    return (a - a.min()) / max(float(a.max() - a.min()), 1e-6)


def make_pairs(root: Path, n: int, size: int = 256, seed: int = 0) -> Path:
    """QXS-layout pairs: SAR = smooth scene x exponential speckle (log-scaled), optical RGB."""
    from tqdm import tqdm

    rng = np.random.default_rng(seed)
    for d in ("sar_256_oc_0.2", "opt_256_oc_0.2"):
        (root / d).mkdir(parents=True, exist_ok=True)
    for i in tqdm(range(1, n + 1), desc="writing PNG pairs", unit="pair"):
        scene = _field(rng, size, 16)
        speckle = rng.exponential(1.0, (size, size)).astype(np.float32)
        sar = np.clip(np.log1p(20 * scene * speckle) / np.log1p(60) * 255, 0, 255)
        colour = np.stack([_field(rng, size, 8) for _ in range(3)], -1) * 0.5
        opt = np.clip((0.5 * scene[..., None] + colour) * 200 + rng.normal(0, 6, colour.shape),
                      0, 255)
        Image.fromarray(sar.astype(np.uint8)).save(root / "sar_256_oc_0.2" / f"{i}.png")
        Image.fromarray(opt.astype(np.uint8)).save(root / "opt_256_oc_0.2" / f"{i}.png")
    return root


class PerSample:
    """A dataset seen through ``__getitem__`` only (no ``__getitems__``): one read per sample."""

    def __init__(self, ds) -> None:
        self.ds = ds

    def __len__(self) -> int:
        return len(self.ds)

    def __getitem__(self, index: int):
        return self.ds[index]


class TransferOnly:
    """Batches of ``ds``'s shape and dtype that are only allocated and filled, not read."""

    def __init__(self, ds) -> None:
        self.n, self.dtype = len(ds), ds.dtype
        self.h, self.w = ds.cache.pair_shape

    def __len__(self) -> int:
        return self.n

    def __getitems__(self, indices):
        import torch

        from saropt.data.qxs import _empty_pair, batched_samples

        dtype = torch.uint8 if self.dtype == "uint8" else torch.float32
        sar, opt = _empty_pair(len(indices), self.h, self.w, dtype)
        sar.fill_(0)
        opt.fill_(0)
        return batched_samples({"sar": sar, "opt": opt, "id": [str(i) for i in indices]})


def pairs_per_second(ds, workers: int, min_seconds: float = 0.0, batch_size: int = 20) -> float:
    """Pairs per second over whole passes (at least one, more until ``min_seconds``)."""
    from torch.utils.data import DataLoader

    loader = DataLoader(ds, batch_size=batch_size, shuffle=True, num_workers=workers,
                        persistent_workers=workers > 0)
    next(iter(loader))  # start workers, warm caches
    t0 = time.perf_counter()
    count = 0
    while True:
        for batch in loader:
            count += len(batch["id"])
        if time.perf_counter() - t0 >= min_seconds:
            break
    return count / (time.perf_counter() - t0)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--root", help="existing QXS-layout folder (default: generate pairs)")
    ap.add_argument("--sar-dir", default="sar_256_oc_0.2")
    ap.add_argument("--opt-dir", default="opt_256_oc_0.2")
    ap.add_argument("--patch-size", type=int, default=256)
    ap.add_argument("--n", type=int, default=300, help="pairs to generate")
    ap.add_argument("--workers", type=int, nargs="+", default=[0, 1, 2],
                    help="DataLoader num_workers values (0: the main process reads)")
    ap.add_argument("--dtypes", nargs="+", default=["float32", "uint8"],
                    help="sample dtypes to measure (uint8: convert on the GPU)")
    ap.add_argument("--min-seconds", type=float, default=3.0,
                    help="repeat cache passes until this long (PNG: one pass)")
    args = ap.parse_args(argv)

    import torch

    from saropt.data import QXSSAROPT, build_cache
    from saropt.utils.table import format_table

    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(args.root) if args.root else make_pairs(Path(tmp) / "qxs", args.n)
        t0 = time.perf_counter()
        cache = build_cache(root, Path(tmp) / "cache", args.sar_dir, args.opt_dir,
                            args.patch_size)
        build_s = time.perf_counter() - t0
        kw = {"sar_dir": args.sar_dir, "opt_dir": args.opt_dir, "patch_size": args.patch_size}
        png_mb = sum(p.stat().st_size for p in root.rglob("*.png")) / 2**20
        rows = []
        for dtype in args.dtypes:
            png_ds = QXSSAROPT(root, dtype=dtype, **kw)
            cache_ds = QXSSAROPT(root, cache=cache, dtype=dtype, **kw)
            for w in args.workers:
                png = pairs_per_second(png_ds, w)
                single = pairs_per_second(PerSample(cache_ds), w, args.min_seconds)
                batched = pairs_per_second(cache_ds, w, args.min_seconds)
                ceiling = pairs_per_second(TransferOnly(cache_ds), w, args.min_seconds)
                per = max(w, 1)
                rows.append((dtype, w, round(png), round(single), round(batched), round(ceiling),
                             round(png / per), round(batched / per), f"{single / png:.1f}x",
                             f"{batched / png:.1f}x"))
    print(f"{len(png_ds)} pairs of {args.patch_size}x{args.patch_size}, {png_mb:.1f} MB of PNG; "
          f"cache built in {build_s:.1f} s ({len(png_ds) / build_s:.0f} pairs/s)")
    print(format_table(rows, ["samples", "workers", "PNG pairs/s", "cache per-sample pairs/s",
                              "cache batched pairs/s", "transfer only", "PNG /worker",
                              "batched /worker", "speed-up per-sample", "speed-up batched"],
                       markdown=True))


if __name__ == "__main__":
    main()
