"""``saropt detect eval`` as a function: score predictions, write metrics, curves and a gallery."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from saropt.detect.ap import AP_DEFINITIONS, evaluate_coco_results, load_coco_gt
from saropt.errors import DataError
from saropt.utils.io import save_figure_atomic, write_json_atomic
from saropt.utils.table import format_table

AP_SHORT = {"voc07_11pt": "VOC07 11-pt", "voc_all_point": "VOC all-pt",
            "coco_101pt": "COCO 101-pt"}


def metrics_table(result: dict[str, Any]) -> str:
    """One row per image set, one column per AP definition."""
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
    """Score ``pred`` against ``gt`` (a COCO file) or a dataset's ground truth; write
    ``metrics.json``, ``pr_curves.json``, ``pr_curves.png`` and ``gallery.png`` into ``out``.
    ``merge_tiles`` (tiled readers): merge tile predictions into scenes, score on scenes."""
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
                   "level": "scene" if merge_tiles else "image"})
    write_json_atomic(files["pr_curves_json"], curves)
    files["pr_curves_png"] = _pr_figure(result, curves, out / "pr_curves.png")
    if n_gallery > 0:
        image_dir = images or _guess_image_dir(gt_path)
        if reader is not None or image_dir is not None:
            files["gallery"] = _gallery(gt_dict, pred, reader, image_dir, n_gallery, score_thr,
                                        out / "gallery.png", scenes=merge_tiles)
    result["files"] = {k: str(v) for k, v in files.items()}
    write_json_atomic(files["metrics"], result)
    return result


def _on_scenes(reader: Any, pred: Path) -> bool:
    """Whether ``pred`` holds results on a tiled reader's whole scenes rather than its tiles
    (tile and scene ids never coincide; a mixture is an error)."""
    ids = _pred_image_ids(pred)
    scenes = {int(s["id"]) for s in reader.scene_coco()["images"]}
    on_scenes = ids & scenes
    if on_scenes and ids - scenes:
        raise DataError(f"{pred}: image ids mix whole scenes ({sorted(on_scenes)[:3]}...) and "
                        f"other images ({sorted(ids - scenes)[:3]}...)")
    return bool(on_scenes)


def _pred_image_ids(pred: Path) -> set[int]:
    try:
        return {int(r["image_id"]) for r in json.loads(Path(pred).read_text())}
    except (OSError, ValueError, TypeError, KeyError):
        return set()  # load_results reports the problem with the file's name


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
    names = {int(i["id"]): i["file_name"] for i in gt["images"]}
    items = []
    for i in tqdm(chosen, desc="gallery", leave=False):
        image = reader.load_scene(i) if scenes else _load(reader, image_dir, i, names[i])
        items.append({"image": image, "gt": boxes[i]["gt"], "pred": boxes[i]["pred"],
                      "scores": boxes[i]["scores"], "ignore": boxes[i]["ign"],
                      "title": f"{names[i]} (id {i})"})
    fig = gallery(items, score_thr=score_thr,
                  title=f"predictions with score >= {score_thr}: {Path(pred).name}")
    return save_figure_atomic(fig, path)


def _load(reader: Any, image_dir: Path | None, image_id: int, file_name: str) -> np.ndarray:
    if reader is not None:
        rec = reader.record_by_id(image_id)
        return reader.load_image(rec)
    from saropt.detect.datasets.base import read_image

    path = image_dir / file_name
    if not path.is_file():
        raise DataError(f"gallery image {path} does not exist (set --images)")
    return read_image(path, 3)


def load_json(path: Path) -> Any:
    return json.loads(Path(path).read_text())
