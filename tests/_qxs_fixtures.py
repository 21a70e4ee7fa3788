"""Tiny QXS-layout datasets written with numpy + Pillow, for the data-layer tests."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
from PIL import Image

SAR_DIR, OPT_DIR = "sar_256_oc_0.2", "opt_256_oc_0.2"
REAL_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def pair_arrays(i: int, size: int) -> tuple[np.ndarray, np.ndarray]:
    """A deterministic SAR (H, W) and optical (H, W, 3) uint8 pair for id ``i``."""
    rng = np.random.default_rng(i)
    sar = rng.integers(0, 256, (size, size), dtype=np.uint8)
    opt = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
    return sar, opt


def make_qxs(root: Path, n: int = 6, size: int = 16, sar_dir: str = SAR_DIR,
             opt_dir: str = OPT_DIR, names: list[str] | None = None) -> Path:
    """``root/<sar_dir>/{1..n}.png`` (L) and ``root/<opt_dir>/{1..n}.png`` (RGB)."""
    (root / sar_dir).mkdir(parents=True, exist_ok=True)
    (root / opt_dir).mkdir(parents=True, exist_ok=True)
    for k, name in enumerate(names or [str(i) for i in range(1, n + 1)], start=1):
        sar, opt = pair_arrays(k, size)
        Image.fromarray(sar).save(root / sar_dir / f"{name}.png")
        Image.fromarray(opt).save(root / opt_dir / f"{name}.png")
    return root


def write_manifest(root: Path, rows: list[tuple[str, str, float, float, float]]) -> Path:
    """``root/manifest.csv`` with ``id,scene,x,y,size`` rows."""
    with (root / "manifest.csv").open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["id", "scene", "x", "y", "size"])
        w.writerows(rows)
    return root / "manifest.csv"


def grid_manifest(root: Path, scenes: int = 2, nx: int = 8, ny: int = 8, size: int = 256,
                  stride: int = 205) -> list[str]:
    """Manifest of overlapping patches on a grid per scene (20 % overlap); returns the ids."""
    rows, k = [], 0
    for s in range(scenes):
        for gy in range(ny):
            for gx in range(nx):
                k += 1
                rows.append((str(k), f"scene{s}", gx * stride, gy * stride, size))
    write_manifest(root, rows)
    return [r[0] for r in rows]


def _save_pair(sar_path: Path, opt_path: Path, k: int, size: int) -> None:
    sar, opt = pair_arrays(k, size)
    sar_path.parent.mkdir(parents=True, exist_ok=True)
    opt_path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(sar).save(sar_path)
    Image.fromarray(opt).save(opt_path)


SEN12_SCENES = (("ROIs1158_spring", 1, 3), ("ROIs1868_summer", 5, 2))


def make_sen12(root: Path, size: int = 16,
               scenes: tuple[tuple[str, int, int], ...] = SEN12_SCENES) -> list[str]:
    """SEN1-2 layout: ``ROOT/<roi>/s1_<n>/<roi>_s1_<n>_p<k>.png`` + the ``s2_<n>`` twin, for
    ``(roi, n, patches)`` in ``scenes``; returns the pair ids (``<roi>_<n>_p<k>``) in order."""
    ids, k = [], 0
    for roi, n, patches in scenes:
        for p in range(1, patches + 1):
            k += 1
            _save_pair(root / roi / f"s1_{n}" / f"{roi}_s1_{n}_p{p}.png",
                       root / roi / f"s2_{n}" / f"{roi}_s2_{n}_p{p}.png", k, size)
            ids.append(f"{roi}_{n}_p{p}")
    return ids


def make_osdataset(root: Path, size: int = 16,
                   counts: dict[str, int] | None = None) -> dict[str, list[str]]:
    """OSdataset layout: ``ROOT/<size>/<part>/sarN.png`` + ``optN.png``; returns the ids
    (``<size>/<part>/N``) of each part."""
    counts = counts or {"train": 4, "val": 2, "test": 3}
    out, k = {}, 0
    for part, n in counts.items():
        out[part] = []
        for i in range(1, n + 1):
            k += 1
            folder = root / str(size) / part
            _save_pair(folder / f"sar{i}.png", folder / f"opt{i}.png", k, size)
            out[part].append(f"{size}/{part}/{i}")
    return out


def write_tiny_coco(folder: Path) -> tuple[Path, Path]:
    """``gt.json`` (one 64x64 image, one ship) and ``pred.json`` (that ship, score 0.9)."""
    import json

    gt = {"images": [{"id": 1, "file_name": "1.png", "width": 64, "height": 64}],
          "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [4, 4, 10, 10],
                           "area": 100, "iscrowd": 0}],
          "categories": [{"id": 1, "name": "ship"}]}
    (folder / "gt.json").write_text(json.dumps(gt))
    (folder / "pred.json").write_text(json.dumps([{"image_id": 1, "category_id": 1,
                                                   "bbox": [4, 4, 10, 10], "score": 0.9}]))
    return folder / "gt.json", folder / "pred.json"
