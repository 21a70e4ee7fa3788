"""``run_scene``: one SAR scene through one or more detectors to georeferenced ship detections.

Order of work: every input is checked first (scene, band, nodata, detectors, tile size, land
mask, an all-nodata scene) so bad input fails before any output exists; the radiometry's
statistics come from one decimated read of the whole scene (also the quicklook); tiles are read
in a background thread (reading overlaps inference; a queue of two batches bounds memory) and
run in batches; each block of tiles ends in ``DIR/tiles/block_NNNNNN.json`` (atomic), so a
killed run resumes where it stopped; the final files are written only when every block exists.
"""

from __future__ import annotations

import queue
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from saropt.detect.scene.detectors import SceneDetector
from saropt.detect.scene.radiometry import Radiometry, apply_stretch, fit_stretch
from saropt.detect.scene.raster import (
    SceneInfo,
    WindowReader,
    decimated,
    open_scene,
    pixel_spacing_m,
    valid_mask,
)
from saropt.detect.scene.tiles import (
    EMPTY,
    Grid,
    block_path,
    fuse_rows,
    merge,
    read_block,
    to_scene,
    write_block,
)
from saropt.errors import SaroptError
from saropt.utils.io import read_json, write_json_atomic

MERGE_METHODS = ("nms", "wbf")
#: above this tile overlap every pixel is run through more than 16 tiles for no gain
MAX_OVERLAP = 0.75


@dataclass
class SceneOptions:
    """Settings of one scene run (the CLI flags of ``saropt detect scene``).

    Units: ``tile`` side, ``edge_margin`` and ``quicklook_side`` in scene pixels; ``overlap`` a
    fraction of the tile; ``merge_iou`` / ``fuse_iou`` IoU; ``inshore_m`` and
    ``pixel_spacing`` in metres (``pixel_spacing`` only for scenes without georeference);
    ``block_tiles`` tiles per resume block; ``draw_thr`` the lowest score drawn in the quicklook and
    map; ``gdal_cache_mb`` MB; ``band`` 1-based.
    """

    tile: int | None = None  # default: the first detector's training image size
    overlap: float | None = None  # default: the first detector's (0.25 unless recorded)
    batch_size: int = 4
    merge: str = "nms"  # across tiles, per model
    merge_iou: float = 0.5
    fuse: str = "wbf"  # across models
    fuse_iou: float = 0.55
    weights: list[float] | None = None
    land_mask: str | None = None
    drop_land: bool = False
    inshore_m: float = 500.0
    band: int | None = None
    nodata: float | None = None
    image_id: int = 1
    edge_margin: float = 2.0
    block_tiles: int | None = None  # default 8 batches
    pixel_spacing: float | None = None  # metres; default from the georeference
    quicklook_side: int = 2048
    draw_thr: float = 0.5
    gdal_cache_mb: int = 64
    progress: bool = True


# ------------------------------------------------------------------ checks


def _check_options(o: SceneOptions, n_models: int) -> None:
    if o.merge not in MERGE_METHODS or o.fuse not in MERGE_METHODS:
        raise SaroptError(f"--merge/--fuse take {' or '.join(MERGE_METHODS)}, got "
                          f"{o.merge!r}/{o.fuse!r}")
    if o.weights is not None:
        if len(o.weights) != n_models:
            raise SaroptError(f"--weights: {len(o.weights)} given for {n_models} checkpoints")
        if any(w <= 0 for w in o.weights):
            raise SaroptError(f"--weights must be positive, got {o.weights}")
    if o.batch_size < 1:
        raise SaroptError(f"--batch-size must be >= 1, got {o.batch_size}")
    if o.overlap is not None and not 0.0 <= o.overlap < 1.0:
        raise SaroptError(f"--overlap must be in [0, 1), got {o.overlap}")
    if o.pixel_spacing is not None and o.pixel_spacing <= 0:
        raise SaroptError(f"--pixel-spacing must be > 0 metres, got {o.pixel_spacing}")


def _tile_and_overlap(o: SceneOptions, dets: list[SceneDetector], info: SceneInfo
                      ) -> tuple[int, float]:
    tile = int(o.tile if o.tile is not None else dets[0].tile)
    if tile < 1:
        raise SaroptError(f"--tile must be >= 1 px, got {tile}")
    overlap = float(o.overlap if o.overlap is not None else dets[0].overlap)
    for d in dets:
        need = d.min_tile()
        if tile < need and min(info.width, info.height) >= need:
            raise SaroptError(f"--tile {tile} is below the minimum of detector {d.name}: "
                              f"{need} px (its model input would be under 64 px at pixel "
                              f"scale {d.scale:.3g}); use --tile {need} or more")
    if int(round(tile * (1 - overlap))) < 1 or tile * overlap < 2 * o.edge_margin:
        raise SaroptError(f"--overlap {overlap} leaves no room for the seam rule at tile {tile} "
                          f"(need tile * overlap >= {2 * o.edge_margin:g} px)")
    if overlap > MAX_OVERLAP:
        stride = max(1, int(round(tile * (1 - overlap))))
        raise SaroptError(f"--overlap {overlap} runs every pixel through about "
                          f"{(tile / stride) ** 2:.0f} tiles (stride {stride} px at tile {tile}); "
                          f"the seam rule only needs tile * overlap above the longest ship: use "
                          f"--overlap {MAX_OVERLAP} or less")
    return tile, overlap


def _names(dets: list[SceneDetector]) -> list[str]:
    names: list[str] = []
    for d in dets:
        n = d.name
        names.append(n if n not in names else f"{n}_{len(names) + 1}")
    return names


# ------------------------------------------------------------------ radiometry


def _check_sample(info: SceneInfo, values: np.ndarray) -> None:
    """Refuse a scene whose valid pixels all hold one value: an error, not an empty result.

    Such a scene (a blank product, or a nodata value the file does not declare) has nothing to
    stretch or detect.
    """
    if values.min() == values.max():
        raise SaroptError(f"scene {info.path}: every valid pixel of band {info.band} is "
                          f"{values.min():g} (decimated read; nodata {info.nodata}); if "
                          f"{values.min():g} marks no data pass --nodata {values.min():g}, else "
                          "check the file or --band")


def _stretches(info: SceneInfo, small: np.ndarray, valid: np.ndarray,
               dets: list[SceneDetector]) -> dict[str, tuple[Radiometry, float, float]]:
    """One fitted mapping per distinct radiometry; 8-bit scenes pass through."""
    out: dict[str, tuple[Radiometry, float, float]] = {}
    for d in dets:
        key = d.radiometry.model_dump_json()
        if key in out:
            continue
        if info.dtype == "uint8":
            rad = Radiometry(kind="linear", low=0.0, high=255.0)
            out[key] = (rad, 0.0, 255.0)
        else:
            out[key] = (d.radiometry, *fit_stretch(small[valid], d.radiometry))
    return out


# ------------------------------------------------------------------ tile loop


def _reader(info: SceneInfo, grid: Grid, blocks: list[tuple[int, int, int]],
            stretches: dict[str, tuple[Radiometry, float, float]], batch_size: int,
            q: queue.Queue, stop: threading.Event, timing: dict[str, float],
            cache_mb: int) -> None:
    """Background thread: read, stretch and queue tile batches of the pending blocks."""
    try:
        reader = WindowReader(info, cache_mb)
        try:
            for k, first, last in blocks:
                for b0 in range(first, last, batch_size):
                    items = []
                    t0 = time.perf_counter()
                    for t in range(b0, min(b0 + batch_size, last)):
                        win = grid.window(t)
                        values, ok = reader.read(win)
                        u8 = None if not ok.any() else {
                            key: apply_stretch(values, lo, hi, rad, ok)
                            for key, (rad, lo, hi) in stretches.items()}
                        items.append((t, win, u8))
                    timing["read_s"] += time.perf_counter() - t0
                    if not _put(q, ("batch", k, items), stop):
                        return
                if not _put(q, ("block", k, (first, last)), stop):
                    return
        finally:
            reader.close()
        _put(q, ("done", None, None), stop)
    except BaseException as err:  # noqa: BLE001 - handed to the main thread
        _put(q, ("error", None, err), stop)


def _put(q: queue.Queue, item: tuple, stop: threading.Event) -> bool:
    """Queue ``item`` unless the main thread has stopped (then False)."""
    while not stop.is_set():
        try:
            q.put(item, timeout=0.5)
            return True
        except queue.Full:
            continue
    return False


def _pad(tile: np.ndarray, side: int) -> np.ndarray:
    if tile.shape == (side, side):
        return tile
    out = np.zeros((side, side), np.uint8)
    out[:tile.shape[0], :tile.shape[1]] = tile
    return out


def _run_tiles(info: SceneInfo, grid: Grid, dets: list[SceneDetector],
               stretches: dict[str, tuple[Radiometry, float, float]], o: SceneOptions,
               folder: Path, block_tiles: int) -> dict[str, Any]:
    """Run every pending block; returns counts and timings."""
    from tqdm import tqdm

    n_blocks = (len(grid) + block_tiles - 1) // block_tiles
    blocks = [(k, k * block_tiles, min(len(grid), (k + 1) * block_tiles))
              for k in range(n_blocks)]
    pending = [b for b in blocks if not block_path(folder, b[0]).is_file()]
    done_tiles = len(grid) - sum(last - first for _, first, last in pending)
    stats = {"blocks": n_blocks, "blocks_resumed": n_blocks - len(pending),
             "tiles_run": 0, "read_s": 0.0, "detect_s": 0.0}
    if not pending:
        return stats
    square = [bool(getattr(d, "square", lambda: False)()) for d in dets]
    side = max(grid.th, grid.tw)
    for d, sq in zip(dets, square):
        d.prepare(*(side, side) if sq else (grid.th, grid.tw))
    keys = [d.radiometry.model_dump_json() for d in dets]
    q: queue.Queue = queue.Queue(maxsize=2)
    stop = threading.Event()
    timing = {"read_s": 0.0}
    th = threading.Thread(target=_reader, args=(info, grid, pending, stretches, o.batch_size,
                                                q, stop, timing, o.gdal_cache_mb),
                          daemon=True)
    th.start()
    bar = tqdm(total=len(grid), initial=done_tiles, desc="scene tiles", unit="tile",
               disable=not o.progress, smoothing=0.05)
    acc: list[list[np.ndarray]] = [[] for _ in dets]
    raw = [0] * len(dets)
    n_nodata = 0
    try:
        while True:
            kind, k, payload = q.get()
            if kind == "error":
                raise payload
            if kind == "done":
                break
            if kind == "block":
                write_block(folder, k, payload, [np.concatenate(a) if a else EMPTY
                                                 for a in acc], n_nodata, raw)
                acc, raw, n_nodata = [[] for _ in dets], [0] * len(dets), 0
                continue
            live = [(t, win, u8) for t, win, u8 in payload if u8 is not None]
            n_nodata += len(payload) - len(live)
            t0 = time.perf_counter()
            for m, d in enumerate(dets):
                if not live:
                    break
                tiles = [(_pad(u8[keys[m]], side) if square[m] else u8[keys[m]])
                         for _, _, u8 in live]
                for (_, win, _), out in zip(live, d.detect(tiles)):
                    rows = to_scene(out, win)
                    raw[m] += len(rows)
                    acc[m].append(rows[grid.seam_keep(rows[:, :4], win, o.edge_margin)])
            stats["detect_s"] += time.perf_counter() - t0
            stats["tiles_run"] += len(payload)
            bar.update(len(payload))
    finally:
        stop.set()
        bar.close()
        th.join(timeout=10)
    stats["read_s"] = timing["read_s"]
    return stats


# ------------------------------------------------------------------ the run


def _fingerprint(info: SceneInfo, dets: list[SceneDetector], tile: int, overlap: float,
                 o: SceneOptions, block_tiles: int, stretches: dict[str, Any]) -> dict[str, Any]:
    st = info.path.stat()
    return {"scene": str(info.path.resolve()), "scene_bytes": st.st_size,
            "scene_mtime": int(st.st_mtime), "band": info.band, "nodata": _json_nodata(info),
            "detectors": [d.fingerprint or d.name for d in dets], "tile": tile,
            "overlap": overlap, "edge_margin": o.edge_margin, "block_tiles": block_tiles,
            "stretch": [[lo, hi] for _, lo, hi in stretches.values()]}


def _json_nodata(info: SceneInfo | SceneOptions) -> float | str | None:
    """The nodata value for JSON, NaN (float products) written as ``"nan"``.

    NaN is not JSON and never equals itself (a resume compared it and refused its own run).
    """
    nd = info.nodata
    return "nan" if nd is not None and np.isnan(nd) else nd


def _prepare_folder(out: Path, fp: dict[str, Any]) -> Path:
    folder = out / "tiles"
    run_file = folder / "run.json"
    if run_file.is_file():
        old = read_json(run_file, "scene run")
        if old != fp:
            diff = sorted(k for k in fp if old.get(k) != fp[k])
            raise SaroptError(f"{out} holds tile results of a different run ({', '.join(diff)} "
                              f"differ); use another --out or delete {folder}")
    else:
        write_json_atomic(run_file, fp)
    return folder


def run_scene(scene: str | Path, detectors: list[SceneDetector], out: str | Path,
              options: SceneOptions | None = None) -> dict[str, Any]:
    """Detect ships in one SAR scene with ``detectors``, writing georeferenced results to ``out``.

    Tiles (``options.tile`` px, ``options.overlap``) are merged per model across tiles
    (``options.merge``: NMS or WBF) and, with several detectors, fused across models
    (``options.fuse``, default WBF via ``ensemble-boxes`` as in paper 000). Writes
    ``detections.geojson``, ``detections.json`` (COCO results on image ``image_id``, boxes in
    scene pixels), ``detections.csv``, ``quicklook.png``, ``map.html`` (georeferenced scenes
    only), ``detections_<model>.json`` per model when there are several, and ``summary.json``.
    Resumes a killed run from its ``tiles/`` block files. Returns the summary.

    Raises:
        SaroptError: bad input (scene, band, nodata, options, tile size, land mask, an
            all-nodata or constant scene) before any file is written, or ``out`` holding tile
            results of a different run. :class:`~saropt.errors.DataError` is a subclass.
    """
    from saropt.detect.scene.land import LandMask

    o = options or SceneOptions()
    t_start = time.perf_counter()
    if not detectors:
        raise SaroptError("no detector given")
    _check_options(o, len(detectors))
    info = open_scene(scene, o.band, o.nodata)
    tile, overlap = _tile_and_overlap(o, detectors, info)
    land = (LandMask(o.land_mask, info.georef, (info.width, info.height))
            if o.land_mask else None)
    small, factor = decimated(info, o.quicklook_side, o.gdal_cache_mb)
    ok = valid_mask(small, info.nodata)
    if not ok.any():
        raise SaroptError(f"scene {info.path}: every pixel of band {info.band} is nodata "
                          f"({info.nodata}); check --band or --nodata")
    _check_sample(info, small[ok])
    if o.pixel_spacing is not None and info.georef.georeferenced:
        raise SaroptError(f"--pixel-spacing is for scenes without georeference; {info.path} "
                          f"has one ({info.georef.describe()}), which gives the pixel spacing")
    stretches = _stretches(info, small, ok, detectors)
    grid = Grid(info.width, info.height, tile, overlap)
    block_tiles = o.block_tiles or 8 * o.batch_size
    out = Path(out)
    folder = _prepare_folder(out, _fingerprint(info, detectors, tile, overlap, o, block_tiles,
                                               stretches))
    t_tiles = time.perf_counter()
    stats = _run_tiles(info, grid, detectors, stretches, o, folder, block_tiles)
    tile_s = time.perf_counter() - t_tiles
    names = _names(detectors)
    per_model, counts, nodata_tiles = _collect(folder, stats["blocks"], len(detectors),
                                               (info.width, info.height), o)
    final, model_label = _fuse(per_model, names, o, (info.width, info.height))
    t_out = time.perf_counter()
    summary = _finish(info, out, final, model_label, land, small, ok, factor, stretches,
                      detectors, o)
    if len(detectors) > 1:  # what each model found, merged across tiles, before the fusion
        from saropt.detect.scene.outputs import SceneDetections, coco_results

        for n, rows in zip(names, per_model):
            summary["files"][f"coco_{n}"] = str(write_json_atomic(
                out / f"detections_{n}.json",
                coco_results(SceneDetections(rows, n, []), o.image_id)))
    spacing = pixel_spacing_m(info.georef, info.width, info.height)
    summary.update({
        "scene": str(info.path), "width": info.width, "height": info.height,
        "megapixels": round(info.megapixels, 3), "band": info.band, "dtype": info.dtype,
        "nodata": _json_nodata(info), "georeference": info.georef.describe(),
        "pixel_spacing_m": ([round(v, 4) for v in spacing] if spacing else
                            [o.pixel_spacing] * 2 if o.pixel_spacing else None),
        "detectors": [{"name": n, "scale": d.scale, "radiometry": d.radiometry.model_dump(),
                       "notes": list(getattr(d, "notes", []))} for n, d in zip(names, detectors)],
        "stretch": [{"radiometry": r.model_dump(), "low": lo, "high": hi}
                    for r, lo, hi in stretches.values()],
        "tile": tile, "overlap": overlap, "stride": grid.stride, "tiles": len(grid),
        **stats, "nodata_tiles": nodata_tiles,
        "per_model": {n: c for n, c in zip(names, counts)}, "tile_stage_s": round(tile_s, 2),
        "megapixels_per_s": (round(info.megapixels * stats["tiles_run"] / len(grid) / tile_s, 3)
                             if stats["tiles_run"] and tile_s > 0 else None),
        "outputs_s": round(time.perf_counter() - t_out, 2),
        "wall_s": round(time.perf_counter() - t_start, 2),
        "options": {**asdict(o), "nodata": _json_nodata(o)}})
    write_json_atomic(out / "summary.json", summary)
    return summary


def _collect(folder: Path, n_blocks: int, n_models: int, size: tuple[int, int],
             o: SceneOptions) -> tuple[list[np.ndarray], list[dict[str, int]], int]:
    rows: list[list[np.ndarray]] = [[] for _ in range(n_models)]
    raw, nodata = [0] * n_models, 0
    for k in range(n_blocks):
        blk = read_block(folder, k)
        nodata += blk["nodata_tiles"]
        for m in range(n_models):
            rows[m].append(blk["detections"][m])
            raw[m] += blk["raw"][m]
    merged, counts = [], []
    for m in range(n_models):
        r = np.concatenate(rows[m]) if rows[m] else EMPTY
        mm = merge(r, o.merge, o.merge_iou, size)
        merged.append(mm)
        counts.append({"tile_detections": raw[m], "after_seam_rule": len(r),
                       "after_merge": len(mm)})
    return merged, counts, nodata


def _fuse(per_model: list[np.ndarray], names: list[str], o: SceneOptions,
          size: tuple[int, int]) -> tuple[np.ndarray, str]:
    if len(per_model) == 1:
        return per_model[0], names[0]
    w = o.weights or [1.0] * len(per_model)
    fused = fuse_rows(per_model, w, o.fuse, o.fuse_iou, size)
    return fused, f"{o.fuse}({'+'.join(names)})"


def _finish(info: SceneInfo, out: Path, rows: np.ndarray, model: str, land: Any,
            small: np.ndarray, ok: np.ndarray, factor: float,
            stretches: dict[str, tuple[Radiometry, float, float]],
            detectors: list[SceneDetector], o: SceneOptions) -> dict[str, Any]:
    from saropt.detect.scene import outputs as out_mod

    spacing = pixel_spacing_m(info.georef, info.width, info.height)
    step = (sum(spacing) / 2 if spacing else o.pixel_spacing) or None
    n_land_dropped = 0
    if land is not None:
        locations = land.classify(rows[:, :4], o.inshore_m / step if step else 0.0)
        if o.drop_land:
            keep = np.array([loc != "land" for loc in locations], bool)
            n_land_dropped = int((~keep).sum())
            rows = rows[keep] if len(rows) else rows
            locations = [loc for loc, k in zip(locations, keep) if k]
    else:
        locations = ["unknown"] * len(rows)
    dets = out_mod.SceneDetections(rows, model, locations)
    recs = out_mod.records(dets, info.georef)
    if not info.georef.georeferenced and o.pixel_spacing:
        for r in recs:
            a = (r["x2"] - r["x1"]) * o.pixel_spacing
            b = (r["y2"] - r["y1"]) * o.pixel_spacing
            r["length_m"], r["width_m"] = round(max(a, b), 2), round(min(a, b), 2)
    meta = {"scene": str(info.path), "model": model, "image_id": o.image_id}
    files = {"geojson": out_mod.write_geojson(out / "detections.geojson", recs, info.georef,
                                              meta),
             "coco": write_json_atomic(out / "detections.json",
                                       out_mod.coco_results(dets, o.image_id)),
             "csv": out_mod.write_csv(out / "detections.csv", recs)}
    rad, lo, hi = stretches[detectors[0].radiometry.model_dump_json()]
    img = apply_stretch(small, lo, hi, rad, ok)
    files["quicklook"] = out_mod.save_png(out / "quicklook.png",
                                          out_mod.quicklook(img, factor, dets, o.draw_thr))
    map_note = None
    if info.georef.georeferenced:
        files["map"] = out_mod.write_map(out / "map.html", files["quicklook"], recs,
                                         info.georef, (info.width, info.height), o.draw_thr)
        urls = out_mod.remote_urls(Path(files["map"]).read_text())
        map_note = "offline: loads nothing from the network" if not urls else \
            f"loads {len(urls)} remote URL(s): {', '.join(urls[:3])}"
    else:
        map_note = "no map.html: the scene has no georeference"
    by_loc = {k: locations.count(k) for k in sorted(set(locations))}
    return {"n_detections": len(rows), "model": model, "image_id": o.image_id,
            "locations": by_loc, "land_dropped": n_land_dropped,
            "n_above_draw_thr": int((rows[:, 4] >= o.draw_thr).sum()) if len(rows) else 0,
            "map": map_note, "quicklook_factor": round(factor, 3),
            "files": {k: str(v) for k, v in files.items()}}
