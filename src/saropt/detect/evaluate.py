"""``saropt detect eval`` as a function: score predictions, write metrics, curves and a gallery."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from saropt.detect.ap import AP_DEFINITIONS, evaluate_coco_results, load_coco_gt
from saropt.detect.datasets.base import strip_image_suffix
from saropt.errors import DataError
from saropt.utils.io import save_figure_atomic, write_json_atomic
from saropt.utils.table import format_table

log = logging.getLogger(__name__)
#: side of the window drawn from an image larger than this (pixels): scene-size images are
#: cropped around their first error (or ship) and read window-only, never whole
PREVIEW_SIDE = 1024
AP_SHORT = {"voc07_11pt": "VOC07 11-pt", "voc_all_point": "VOC all-pt",
            "coco_101pt": "COCO 101-pt"}


def metrics_table(result: dict[str, Any]) -> str:
    """A text table of a :func:`run_eval` result: one row per image set, one column per AP.

    Columns: image set (``all``, then each subset), images, ground-truth boxes (not ignored),
    detections, and AP50 under each of :data:`saropt.detect.ap.AP_DEFINITIONS` (``n/a``
    without ground truth).
    """
    rows = []
    for name, m in [("all", result["all"]), *result["subsets"].items()]:
        rows.append([name, m["n_images"], m["n_gt"], m["n_detections"],
                     *[_f(m["ap50"][k]) for k in AP_DEFINITIONS]])
    head = ["images", "n_img", "n_gt", "n_det", *[f"AP50 {AP_SHORT[k]}" for k in AP_DEFINITIONS]]
    return format_table(rows, head)


def _f(v: float | None) -> float | str:
    return "n/a" if v is None else float(v)


def run_eval(pred: Path, out: Path, gt: Path | None = None, dataset: str | None = None,
             root: Path | None = None, split: str = "test", images: Path | None = None,
             subset_keys: list[str] | None = None, iou: float = 0.5, max_dets: int = 100,
             score_thr: float = 0.5, n_gallery: int = 6, merge_tiles: bool = False,
             options: dict[str, Any] | None = None, overwrite: bool = False) -> dict[str, Any]:
    """Score COCO results ``pred`` against ``gt`` or a dataset's ground truth, writing into ``out``.

    Writes ``metrics.json`` (the :func:`saropt.detect.ap.evaluate_coco_results` numbers plus
    files, level and warnings), ``pr_curves.json``, ``pr_curves.png``, ``gallery.png`` (the
    ``n_gallery`` images with most errors at ``score_thr``; 0 draws none) and, with
    ``dataset``, ``gt.json``. ``merge_tiles`` (tiled readers such as AIR-SARShip): merge tile
    predictions into scenes (offset + class-wise NMS) and score on scenes; predictions already
    on the reader's scenes are scored on scenes without it. A figure that fails is a warning
    in the result, never a lost metric. Returns the ``metrics.json`` content.

    Raises:
        DataError: neither ``gt`` nor ``dataset``, ``dataset`` without ``root``,
            ``merge_tiles`` without a tiling dataset, or ground truth / predictions that fail
            the checks of :mod:`saropt.detect.ap`.
        OutDirError: ``out`` holds another command's output (or a different run without
            ``overwrite``) or is locked (see :func:`saropt.utils.outdir.prepare_out_dir`).
    """
    from saropt.utils.outdir import prepare_out_dir

    config = {"pred": str(pred), "gt": str(gt), "dataset": dataset, "root": str(root),
              "split": split}
    with prepare_out_dir(out, "detect eval", config, EVAL_FILES, overwrite, replace_same=True,
                         quiet=True) as od:
        result = _run_eval(pred, Path(out), gt, dataset, root, split, images, subset_keys, iou,
                           max_dets, score_thr, n_gallery, merge_tiles, options)
        made = [*result["files"].values(), result["ground_truth"], result["predictions"]]
        od.finish([Path(f).name for f in made if Path(f).parent == Path(out)])
    return result


#: what ``saropt detect eval`` writes (gallery.png only with --gallery > 0)
EVAL_FILES = ["metrics.json", "pr_curves.json", "pr_curves.png", "gallery.png", "gt.json",
              "scene_predictions.json"]


def _run_eval(pred: Path, out: Path, gt: Path | None, dataset: str | None, root: Path | None,
              split: str, images: Path | None, subset_keys: list[str] | None, iou: float,
              max_dets: int, score_thr: float, n_gallery: int, merge_tiles: bool,
              options: dict[str, Any] | None) -> dict[str, Any]:
    reader = None
    if dataset is not None:
        if root is None:
            raise DataError("--dataset needs --root")
        from saropt.detect.datasets import build_dataset

        reader = build_dataset(dataset, root, split, **(options or {}))
        gt_dict = reader.to_coco()
        scene_level = hasattr(reader, "scene_coco") and _on_scenes(reader, pred)
        if scene_level:  # e.g. `saropt detect predict` output, already merged into scenes
            gt_dict, merge_tiles = reader.scene_coco(), True
        elif merge_tiles:
            pred, gt_dict = _merge_to_scenes(reader, gt_dict, pred, out)
        gt_path = write_json_atomic(out / "gt.json", gt_dict)
    elif gt is not None:
        if merge_tiles:
            raise DataError("--merge-tiles needs --dataset (the reader knows the tiles)")
        gt_dict, gt_path = load_coco_gt(gt), Path(gt)
    else:
        raise DataError("give --gt or --dataset")
    result = evaluate_coco_results(gt_dict, pred, subset_keys or None, iou, max_dets)
    curves = result.pop("curves")
    files = {"metrics": out / "metrics.json", "pr_curves_json": out / "pr_curves.json"}
    result.update({"ground_truth": str(gt_path), "predictions": str(pred),
                   "level": "scene" if merge_tiles else "image", "warnings": []})
    if result["all"]["n_detections"] == 0:  # AP 0 from a wrong or empty file, said plainly
        msg = (f"{pred}: no detections on the ground truth's images; every AP is 0 (wrong or "
               "empty predictions file?)")
        log.warning("%s", msg)
        result["warnings"].append(msg)
    for key in result["input_checks"].get("subset_keys_without_values", []):
        result["warnings"].append(f"--subset-key {key}: no ground-truth image has a value for "
                                  f"{key!r}; no {key} rows")
    write_json_atomic(files["pr_curves_json"], curves)
    result["files"] = {k: str(v) for k, v in files.items()}
    write_json_atomic(files["metrics"], result)  # the numbers first: figures may fail
    figures = {"pr_curves_png": lambda: _pr_figure(result, curves, out / "pr_curves.png")}
    if n_gallery > 0:
        image_dir = images or _guess_image_dir(gt_path)
        if reader is not None or image_dir is not None:
            figures["gallery"] = lambda: _gallery(gt_dict, pred, reader, image_dir, n_gallery,
                                                  score_thr, out / "gallery.png",
                                                  scenes=merge_tiles)
        else:
            msg = (f"gallery not drawn: no image folder beside {gt_path} (JPEGImages/ or "
                   "images/); give --images DIR, or --gallery 0")
            log.warning("%s", msg)
            result["warnings"].append(msg)
    for key, draw in figures.items():
        try:
            files[key] = draw()
        except Exception as err:  # noqa: BLE001 - a figure never costs the numbers
            msg = f"{key} not drawn: {type(err).__name__}: {err}".splitlines()[0]
            log.warning("%s", msg)
            result["warnings"].append(msg)
    result["files"] = {k: str(v) for k, v in files.items()}
    write_json_atomic(files["metrics"], result)
    return result


def _on_scenes(reader: Any, pred: Path) -> bool:
    """Whether ``pred`` holds results on a tiled reader's whole scenes rather than its tiles.

    Tile and scene ids never coincide; string ids name scene files or tiles; a mixture is an
    error.
    """
    scene_gt = reader.scene_coco()
    ids = _pred_image_ids(pred, scene_gt)
    scenes = {int(s["id"]) for s in scene_gt["images"]}
    on_scenes = ids & scenes
    if on_scenes and ids - scenes:
        raise DataError(f"{pred}: image ids mix whole scenes ({sorted(on_scenes)[:3]}...) and "
                        f"other images ({sorted(ids - scenes)[:3]}...)")
    return bool(on_scenes)


def _pred_image_ids(pred: Path, scene_gt: dict[str, Any]) -> set[int]:
    """The integer image ids of ``pred``.

    A string id naming one scene file counts as that scene, any other string as -1 (not a
    scene).
    """
    from saropt.detect.ap import image_name_index

    names = image_name_index(scene_gt)
    from saropt.utils.io import read_json

    data = read_json(pred, "predictions")
    if isinstance(data, dict) and isinstance(data.get("annotations"), list):
        data = data["annotations"]  # read as load_results reads it
    if not isinstance(data, list):
        return set()  # load_results reports the problem with the file's name
    raw = [r["image_id"] for r in data if isinstance(r, dict) and "image_id" in r]
    ids = set()
    for v in raw:
        if isinstance(v, str):
            found = names.get(v) or names.get(strip_image_suffix(v.replace("\\", "/")
                                                                  .rsplit("/", 1)[-1]))
            ids.add(found[0] if found and len(found) == 1 else -1)
        elif isinstance(v, (int, float)) and not isinstance(v, bool) and np.isfinite(v):
            ids.add(int(v))
    return ids


def _merge_to_scenes(reader: Any, gt_tiles: dict, pred: Path, out: Path) -> tuple[Path, dict]:
    """Tile predictions -> scene predictions (offset + class-wise NMS), scene ground truth."""
    from saropt.detect.ap import load_results
    from saropt.detect.tiling import tile_results_to_scene

    if not hasattr(reader, "tile_to_scene"):
        raise DataError(f"--merge-tiles: the {reader.name} reader does not cut scenes into tiles")
    merged = tile_results_to_scene(load_results(pred, gt_tiles), reader.tile_to_scene())
    return write_json_atomic(out / "scene_predictions.json", merged), reader.scene_coco()


def _pr_figure(result: dict, curves: dict, path: Path) -> Path:
    from saropt.detect.viz import plot_pr_curves

    lines, aps = {}, {}
    for set_name, per_cat in curves.items():
        metrics = result["all"] if set_name == "all" else result["subsets"][set_name]
        for cat, c in per_cat.items():
            name = set_name if len(per_cat) == 1 else f"{set_name} {cat}"
            lines[name] = c
            aps[name] = {AP_SHORT[k]: v for k, v in
                         metrics["per_category"][cat]["ap50"].items()}
    return save_figure_atomic(plot_pr_curves(lines, aps), path)


def _guess_image_dir(gt_path: Path) -> Path | None:
    for cand in (gt_path.parent.parent / "JPEGImages", gt_path.parent.parent / "images",
                 gt_path.parent / "JPEGImages", gt_path.parent / "images"):
        if cand.is_dir():
            return cand
    return None


def _gallery(gt: dict, pred: Path, reader: Any, image_dir: Path | None, n: int,
             score_thr: float, path: Path, scenes: bool = False) -> Path:
    """The ``n`` images with the most errors (false alarms + misses), then the most ships."""
    from tqdm import tqdm

    from saropt.detect.ap import load_results, xywh_to_xyxy
    from saropt.detect.viz import gallery, match_detections

    dets = load_results(pred, gt)
    by_img: dict[int, dict[str, list]] = {int(i["id"]): {"gt": [], "ign": [], "pred": [],
                                                         "scores": []} for i in gt["images"]}
    for a in gt["annotations"]:
        by_img[a["image_id"]]["ign" if a["iscrowd"] else "gt"].append(a["bbox"])
    for d in dets:
        by_img[d["image_id"]]["pred"].append(d["bbox"])
        by_img[d["image_id"]]["scores"].append(d["score"])
    boxes = {i: {k: (xywh_to_xyxy(v) if k != "scores" else np.asarray(v, np.float32))
                 for k, v in b.items()} for i, b in by_img.items()}

    def errors(i: int) -> tuple[int, int]:
        b = boxes[i]
        keep = b["scores"] >= score_thr
        tp, ign, missed = match_detections(b["gt"], b["pred"][keep], b["scores"][keep], 0.5,
                                           b["ign"])
        return int((~tp & ~ign).sum() + missed.sum()), len(b["gt"])

    chosen = sorted(boxes, key=lambda i: tuple(-v for v in errors(i)))[:n]
    info = {int(i["id"]): i for i in gt["images"]}
    items = []
    for i in tqdm(chosen, desc="gallery", leave=False):
        b = boxes[i]
        width, height = _image_size(info[i], image_dir)
        win = preview_window(width, height, _focus_box(b, score_thr))
        image = _load_window(reader, image_dir, i, info[i]["file_name"], win, scenes)
        shift = np.array([win[0], win[1], win[0], win[1]], np.float64)
        keep = {k: _inside(b[k], win) for k in ("gt", "pred", "ign")}
        title = f"{info[i]['file_name']} (id {i})"
        if (win[2] - win[0], win[3] - win[1]) != (width, height):
            title += f"\ncrop x {win[0]}:{win[2]}, y {win[1]}:{win[3]}"
        items.append({"image": image, "gt": b["gt"][keep["gt"]] - shift,
                      "pred": b["pred"][keep["pred"]] - shift,
                      "scores": b["scores"][keep["pred"]], "ignore": b["ign"][keep["ign"]] - shift,
                      "title": title})
    fig = gallery(items, score_thr=score_thr,
                  title=f"predictions with score >= {score_thr}: {Path(pred).name}")
    return save_figure_atomic(fig, path)


def _image_size(entry: dict[str, Any], image_dir: Path | None) -> tuple[int, int]:
    """(width, height) of a ground-truth image entry, from the file when the entry lacks it."""
    if entry.get("width") and entry.get("height"):
        return int(entry["width"]), int(entry["height"])
    from saropt.detect.datasets.base import image_size

    if image_dir is None:
        raise DataError(f"image {entry.get('file_name')!r} has no width/height (set --images)")
    return image_size(image_dir / str(entry["file_name"]))


def preview_window(width: int, height: int, focus: np.ndarray | None,
                   side: int = PREVIEW_SIDE) -> tuple[int, int, int, int]:
    """The ``(x0, y0, x1, y1)`` pixel window of a ``width`` x ``height`` image the gallery draws.

    All of the image when it fits in ``side`` x ``side``, else a window of at most ``side`` px
    a side centred on ``focus`` (an xyxy box in pixels; None: the image centre), shifted to lie
    inside the image.
    """
    if width <= side and height <= side:
        return 0, 0, width, height
    cx, cy = ((focus[0] + focus[2]) / 2, (focus[1] + focus[3]) / 2) if focus is not None \
        else (width / 2, height / 2)
    w, h = min(side, width), min(side, height)
    x0 = int(np.clip(round(cx - w / 2), 0, width - w))
    y0 = int(np.clip(round(cy - h / 2), 0, height - h))
    return x0, y0, x0 + w, y0 + h


def _focus_box(b: dict[str, np.ndarray], score_thr: float) -> np.ndarray | None:
    """The box a crop is centred on: a missed ship, else a false alarm, else a ship."""
    from saropt.detect.viz import match_detections

    keep = b["scores"] >= score_thr
    pred = b["pred"][keep]
    tp, ign, missed = match_detections(b["gt"], pred, b["scores"][keep], 0.5, b["ign"])
    for group in (b["gt"][missed], pred[~tp & ~ign], b["gt"], pred):
        if len(group):
            return group[0]
    return None


def _inside(boxes: np.ndarray, win: tuple[int, int, int, int]) -> np.ndarray:
    return ((boxes[:, 2] > win[0]) & (boxes[:, 0] < win[2]) & (boxes[:, 3] > win[1])
            & (boxes[:, 1] < win[3]))


def _load_window(reader: Any, image_dir: Path | None, image_id: int, file_name: str,
                 win: tuple[int, int, int, int], scenes: bool) -> np.ndarray:
    """Only ``win`` (in the image's pixels) of an image, a tile or a whole scene."""
    if reader is not None:
        from dataclasses import replace

        if scenes:
            rec = reader.scene_record(image_id)
        else:
            rec = reader.record_by_id(image_id)
        x0, y0 = rec.window[:2] if rec.window is not None else (0, 0)
        crop = (x0 + win[0], y0 + win[1], x0 + win[2], y0 + win[3])
        return reader.load_image(replace(rec, window=crop))
    from saropt.detect.datasets.base import read_image

    path = image_dir / file_name
    if not path.is_file():
        raise DataError(f"gallery image {path} does not exist (set --images)")
    return read_image(path, 3, win)

