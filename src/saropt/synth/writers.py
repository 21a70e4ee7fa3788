"""Writers: a scene pair as GeoTIFFs + truth, and co-registered patches in the QXS-SAROPT layout."""

from __future__ import annotations

import csv
import io
import warnings
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from saropt.synth.config import SEA, WorldConfig
from saropt.synth.world import ScenePair, make_scene_pair
from saropt.utils.io import atomic_path, save_image_atomic, write_json_atomic, write_text_atomic
from saropt.utils.outdir import prepare_out_dir

#: pixel frame written into the GeoTIFFs: 1 m pixels, no CRS (the images are not georeferenced;
#: the SAR-optical relation is in truth.json and the tie points)
PIXEL_TRANSFORM = (1.0, 0.0, 0.0, 0.0, -1.0, 0.0)


def write_geotiff(path: str | Path, array: np.ndarray, tags: dict[str, str] | None = None) -> Path:
    """Write (H, W) or (H, W, 3) uint8/uint16 as a tiled, deflate-compressed GeoTIFF (rasterio).

    Atomic; no CRS, the geotransform is :data:`PIXEL_TRANSFORM` (1 m pixels); ``tags`` become
    GDAL metadata. Returns ``path``.
    """
    import rasterio
    from rasterio.transform import Affine

    bands = array[None] if array.ndim == 2 else np.moveaxis(array, -1, 0)
    profile: dict[str, Any] = {"driver": "GTiff", "height": bands.shape[1],
                               "width": bands.shape[2], "count": bands.shape[0],
                               "dtype": bands.dtype.name, "compress": "deflate",
                               "transform": Affine(*PIXEL_TRANSFORM)}
    if bands.shape[1] >= 256 and bands.shape[2] >= 256:
        profile.update(tiled=True, blockxsize=256, blockysize=256)
    if bands.shape[0] == 3:
        profile["photometric"] = "RGB"
    with atomic_path(path) as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with rasterio.open(tmp, "w", **profile) as dst:
            dst.write(bands)
            if tags:
                dst.update_tags(**tags)
    return Path(path)


def tie_points_csv(pair: ScenePair) -> str:
    """``subregion,sar_x,sar_y,opt_x,opt_y`` (the outlier flags stay in truth.json)."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["subregion", "sar_x", "sar_y", "opt_x", "opt_y"])
    for tp in pair.tie_points:
        w.writerow([tp["subregion"]] + [f"{tp[k]:.3f}" for k in ("sar_x", "sar_y", "opt_x",
                                                                   "opt_y")])
    return buf.getvalue()


SCENE_FILES = ["sar.tif", "sar_8bit.png", "optical.tif", "classes.png", "tiepoints.csv",
               "subregions.json", "truth.json"]


def write_scene(pair: ScenePair, out_dir: str | Path, config: Any = None,
                overwrite: bool = False) -> Path:
    """Write a scene pair's files into ``out_dir``; returns ``out_dir``.

    Files: ``sar.tif`` (uint16 amplitude DN), ``sar_8bit.png`` (dB-scaled), ``optical.tif``
    (uint8 RGB on the optical grid), ``tiepoints.csv`` (px), ``subregions.json``, ``truth.json``
    (plus ``classes.png``, the SAR-grid class map).

    ``config`` (what the scene was made from; default: its shape and seed) decides, under
    :func:`saropt.utils.outdir.prepare_out_dir`, whether a folder holding another scene is
    refused (unless ``overwrite``).

    Raises:
        OutDirError: (a SaroptError) when ``out_dir`` is in use or holds other output and
            ``overwrite`` is false.
    """
    out = Path(out_dir)
    config = config if config is not None else {"shape": list(pair.shape)}
    with prepare_out_dir(out, "synth scene", config, SCENE_FILES, overwrite=overwrite,
                         quiet=True) as od:
        _write_scene_files(pair, out)
        od.finish()
    return out


def _write_scene_files(pair: ScenePair, out: Path) -> None:
    write_geotiff(out / "sar.tif", pair.sar_amp,
                  {"SAROPT_GRID": "sar", "SAROPT_CONTENT": "amplitude DN (synthetic)"})
    save_image_atomic(out / "sar_8bit.png", pair.sar8)
    write_geotiff(out / "optical.tif", pair.optical,
                  {"SAROPT_GRID": "optical", "SAROPT_CONTENT": "RGB (synthetic)"})
    save_image_atomic(out / "classes.png", pair.classes)
    write_text_atomic(out / "tiepoints.csv", tie_points_csv(pair))
    write_json_atomic(out / "subregions.json", pair.subregions)
    write_json_atomic(out / "truth.json", pair.truth())


def save_png_fast(path: str | Path, array: np.ndarray) -> Path:
    """Atomic PNG (L or RGB uint8) with light zlib compression: many small patches write fast.

    ``array``: uint8 ``(H, W)`` or ``(H, W, 3)`` RGB; OpenCV ``imencode`` at level 1.

    Raises:
        OSError: when OpenCV cannot encode the array.
    """
    import cv2

    img = array if array.ndim == 2 else cv2.cvtColor(array, cv2.COLOR_RGB2BGR)
    ok, buf = cv2.imencode(".png", img, [cv2.IMWRITE_PNG_COMPRESSION, 1])
    if not ok:
        raise OSError(f"{path}: PNG encoding failed")
    with atomic_path(path) as tmp:
        tmp.write_bytes(buf.tobytes())
    return Path(path)


def qxs_dir_names(patch_size: int, overlap: float) -> tuple[str, str]:
    """``("opt_256_oc_0.2", "sar_256_oc_0.2")`` for the QXS-SAROPT defaults."""
    tag = f"{patch_size}_oc_{overlap:g}"
    return f"opt_{tag}", f"sar_{tag}"


def patch_origins(shape: tuple[int, int], patch_size: int, overlap: float) -> list[tuple[int, int]]:
    """Top-left (x, y) of patches cut with stride ``round(patch_size * (1 - overlap))``.

    ``shape`` is ``(H, W)`` px; row-major, patches fully inside. 205 px stride for the QXS
    256 px / 20 % (paper 002 section II.F).
    """
    stride = max(1, int(round(patch_size * (1 - overlap))))
    h, w = shape
    return [(x, y) for y in range(0, h - patch_size + 1, stride)
            for x in range(0, w - patch_size + 1, stride)]


def calm_fraction(pair: ScenePair, x: int, y: int, size: int) -> float:
    """Share of the patch covered by the planted calm (texture-less) sea."""
    m = np.zeros((size, size), bool)
    for x0, y0, x1, y1 in pair.calm_sea:
        m[max(0, y0 - y):max(0, y1 - y), max(0, x0 - x):max(0, x1 - x)] = True
    return float((m & (pair.classes[y:y + size, x:x + size] == SEA)).mean())


def write_qxs_pairs(out_dir: str | Path, n_pairs: int, seed: int, patch_size: int = 256,
                    overlap: float = 0.2, scene_size: int = 2048, cfg: WorldConfig | None = None,
                    max_calm_fraction: float = 0.5, progress: bool = True,
                    overwrite: bool = False) -> Path:
    """Cut ``n_pairs`` co-registered SAR/optical patches into the QXS-SAROPT layout.

    Patches of ``patch_size`` px come from rendered scenes of ``scene_size`` px (seeds
    ``seed * 1000 + k``), with ``manifest.csv`` (id, scene, x, y, size in SAR px, sea fraction,
    ships); returns ``out_dir``.

    Patches are taken row by row with the QXS overlap; patches mostly on calm sea are skipped,
    as the QXS screening drops texture-less patches. The folder follows
    :func:`saropt.utils.outdir.prepare_out_dir`: it is marked complete only after
    ``manifest.csv`` (a killed run leaves a dataset that readers and ``data check`` refuse), and
    a folder holding other pairs (another ``n_pairs``, seed, ...) is refused unless
    ``overwrite``.

    Raises:
        ValueError: when ``n_pairs`` < 1, ``scene_size`` < ``patch_size`` or ``overlap`` is
            outside [0, 1).
        OutDirError: (a SaroptError) when ``out_dir`` is in use or holds other output and
            ``overwrite`` is false.
    """
    if n_pairs < 1:
        raise ValueError(f"n_pairs must be >= 1, got {n_pairs}")
    if scene_size < patch_size:
        raise ValueError(f"scene_size {scene_size} is smaller than patch_size {patch_size}")
    if not 0 <= overlap < 1:
        raise ValueError(f"overlap must be in [0, 1), got {overlap}")
    root = Path(out_dir)
    opt_name, sar_name = qxs_dir_names(patch_size, overlap)
    config = {"n_pairs": n_pairs, "seed": seed, "patch_size": patch_size, "overlap": overlap,
              "scene_size": scene_size, "max_calm_fraction": max_calm_fraction,
              "world": (cfg or WorldConfig()).model_dump(mode="json")}
    with prepare_out_dir(root, "synth pairs", config, [opt_name, sar_name, "manifest.csv"],
                         overwrite=overwrite, quiet=True) as od:
        _write_pairs(root, opt_name, sar_name, n_pairs, seed, patch_size, overlap, scene_size,
                     cfg, max_calm_fraction, progress)
        od.finish()
    return root


def _write_pairs(root: Path, opt_name: str, sar_name: str, n_pairs: int, seed: int,
                 patch_size: int, overlap: float, scene_size: int, cfg: WorldConfig | None,
                 max_calm_fraction: float, progress: bool) -> None:
    (root / opt_name).mkdir(parents=True, exist_ok=True)
    (root / sar_name).mkdir(parents=True, exist_ok=True)
    rows: list[list[Any]] = []
    bar = tqdm(total=n_pairs, desc="QXS pairs", unit="pair", disable=not progress)
    k = 0
    while len(rows) < n_pairs:
        scene_seed = seed * 1000 + k
        pair = make_scene_pair(scene_size, scene_seed, cfg)
        for x, y in patch_origins(pair.shape, patch_size, overlap):
            if len(rows) >= n_pairs:
                break
            if calm_fraction(pair, x, y, patch_size) > max_calm_fraction:
                continue
            idx = len(rows) + 1
            sl = (slice(y, y + patch_size), slice(x, x + patch_size))
            save_png_fast(root / opt_name / f"{idx}.png", pair.optical_on_sar[sl])
            save_png_fast(root / sar_name / f"{idx}.png", pair.sar8[sl])
            cls = pair.classes[sl]
            n_ships = sum(_box_inside(s["sar_box"], x, y, patch_size) for s in pair.ships)
            rows.append([idx, f"s{scene_seed}", x, y, patch_size, scene_seed,
                         f"{float((cls == SEA).mean()):.3f}", n_ships])
            bar.update(1)
        k += 1
    bar.close()
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["id", "scene", "x", "y", "size", "scene_seed", "sea_fraction", "n_ships"])
    w.writerows(rows)
    write_text_atomic(root / "manifest.csv", buf.getvalue())


def _box_inside(box: list[float], x: int, y: int, size: int) -> bool:
    return box[0] >= x and box[1] >= y and box[2] <= x + size and box[3] <= y + size
