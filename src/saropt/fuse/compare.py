"""The complementarity claim of paper 000, measured per detector and for their fusion.

AP of each detector and of their fusion, overall and on inshore / offshore images, and false
alarms on land / recall at sea per detector (``saropt fuse compare``).

Definitions (``docs/fusion.md``):
- subsets: the ground-truth image key ``scene`` (``inshore`` / ``offshore``);
- a prediction is *on land* when the pixel under its box centre is land in the image's land mask
  (``LAND_MASKS/<file stem>.png``, 255 = land); it is a *false alarm* when its score is at least
  ``score_thr`` and its IoU with every ground-truth box of the image is below 0.5;
- *recall at sea*: the fraction of ground-truth ships whose centre is at sea that some prediction
  with score >= ``score_thr`` overlaps at IoU >= 0.5.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from saropt.detect.ap import load_coco_gt
from saropt.errors import DataError
from saropt.fuse.fusion import fuse_coco_results, image_sizes_from_gt, load_coco_results

SUBSETS = ("inshore", "offshore")
MATCH_IOU = 0.5


def scene_subsets(gt: dict[str, Any]) -> dict[str, list[int]]:
    """Image ids per ``scene`` value (inshore / offshore); images without the key are left out."""
    out: dict[str, list[int]] = {s: [] for s in SUBSETS}
    for im in gt["images"]:
        if im.get("scene") in out:
            out[im["scene"]].append(int(im["id"]))
    return {k: v for k, v in out.items() if v}


def load_land_masks(gt: dict[str, Any], masks_dir: str | Path) -> dict[int, np.ndarray]:
    """Boolean land masks (True = land) per image id from ``masks_dir/<file stem>.png``."""
    from PIL import Image

    masks_dir = Path(masks_dir)
    if not masks_dir.is_dir():
        raise DataError(f"land-mask folder {masks_dir} does not exist")
    masks = {}
    for im in gt["images"]:
        path = masks_dir / f"{Path(im['file_name']).stem}.png"
        if not path.is_file():
            raise DataError(f"land mask {path} for image {im['file_name']} does not exist")
        mask = np.asarray(Image.open(path).convert("L")) > 127
        if mask.shape != (int(im["height"]), int(im["width"])):
            raise DataError(f"{path}: mask is {mask.shape[1]}x{mask.shape[0]}, image "
                            f"{im['file_name']} is {im['width']}x{im['height']}")
        masks[int(im["id"])] = mask
    return masks


def iou_xywh(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU matrix (len(a), len(b)) of COCO ``[x, y, w, h]`` boxes."""
    if len(a) == 0 or len(b) == 0:
        return np.zeros((len(a), len(b)))
    ax1, ay1, ax2, ay2 = a[:, 0], a[:, 1], a[:, 0] + a[:, 2], a[:, 1] + a[:, 3]
    bx1, by1, bx2, by2 = b[:, 0], b[:, 1], b[:, 0] + b[:, 2], b[:, 1] + b[:, 3]
    iw = np.clip(np.minimum(ax2[:, None], bx2) - np.maximum(ax1[:, None], bx1), 0, None)
    ih = np.clip(np.minimum(ay2[:, None], by2) - np.maximum(ay1[:, None], by1), 0, None)
    inter = iw * ih
    union = (a[:, 2] * a[:, 3])[:, None] + b[:, 2] * b[:, 3] - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-12), 0.0)


def on_land(boxes: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Whether each ``[x, y, w, h]`` box's centre pixel is land (pixel j spans [j, j + 1))."""
    if len(boxes) == 0:
        return np.zeros(0, dtype=bool)
    h, w = mask.shape
    cx = np.clip(np.floor(boxes[:, 0] + boxes[:, 2] / 2), 0, w - 1).astype(int)
    cy = np.clip(np.floor(boxes[:, 1] + boxes[:, 3] / 2), 0, h - 1).astype(int)
    return mask[cy, cx]


def _gt_boxes(gt: dict[str, Any]) -> dict[int, np.ndarray]:
    groups: dict[int, list[list[float]]] = defaultdict(list)
    for a in gt.get("annotations", []):
        if not a.get("iscrowd", 0):
            groups[int(a["image_id"])].append([float(v) for v in a["bbox"]])
    return {k: np.array(v).reshape(-1, 4) for k, v in groups.items()}


def land_sea_counts(gt: dict[str, Any], results: Sequence[dict[str, Any]],
                    masks: dict[int, np.ndarray], score_thr: float) -> dict[str, Any]:
    """False alarms on land / at sea and recall at sea / on land at ``score_thr``."""
    gts = _gt_boxes(gt)
    preds: dict[int, list[list[float]]] = defaultdict(list)
    for r in results:
        if r["score"] >= score_thr:
            preds[r["image_id"]].append(r["bbox"])
    c = {"fa_land": 0, "fa_sea": 0, "gt_sea": 0, "gt_land": 0, "hit_sea": 0, "hit_land": 0,
         "n_pred": 0}
    for image_id, mask in masks.items():
        g = gts.get(image_id, np.zeros((0, 4)))
        p = np.array(preds.get(image_id, []), dtype=float).reshape(-1, 4)
        iou = iou_xywh(p, g)
        false = ~(iou >= MATCH_IOU).any(axis=1) if len(g) else np.ones(len(p), dtype=bool)
        land = on_land(p, mask)
        c["n_pred"] += len(p)
        c["fa_land"] += int((false & land).sum())
        c["fa_sea"] += int((false & ~land).sum())
        hit = (iou >= MATCH_IOU).any(axis=0) if len(p) else np.zeros(len(g), dtype=bool)
        g_land = on_land(g, mask)
        c["gt_sea"] += int((~g_land).sum())
        c["gt_land"] += int(g_land.sum())
        c["hit_sea"] += int((hit & ~g_land).sum())
        c["hit_land"] += int((hit & g_land).sum())
    c["recall_sea"] = c["hit_sea"] / c["gt_sea"] if c["gt_sea"] else float("nan")
    c["recall_land"] = c["hit_land"] / c["gt_land"] if c["gt_land"] else float("nan")
    return c


def subset_gt(gt: dict[str, Any], image_ids: Sequence[int]) -> dict[str, Any]:
    """The ground truth restricted to ``image_ids``."""
    keep = set(image_ids)
    return {**gt, "images": [im for im in gt["images"] if int(im["id"]) in keep],
            "annotations": [a for a in gt.get("annotations", []) if int(a["image_id"]) in keep]}


def average_precisions(gt: dict[str, Any], results: list[dict[str, Any]],
                       subsets: dict[str, list[int]]) -> dict[str, dict[str, float]]:
    """AP@0.5 (three labelled definitions, ``saropt.detect.ap``) overall and per subset.

    Returns:
        ``{"all" | subset: {AP definition: value}}``; NaN where a subset has no ground truth.
    """
    from saropt.detect.ap import evaluate_coco_results

    ev = evaluate_coco_results(gt, results, subsets=subsets)
    parts = {"all": ev["all"], **{k: ev["subsets"][k] for k in subsets}}
    return {k: {d: float("nan") if v is None else float(v) for d, v in m["ap50"].items()}
            for k, m in parts.items()}


def complementarity(gt_path: str | Path, pred_paths: Sequence[str | Path],
                    names: Sequence[str] | None = None, land_masks: str | Path | None = None,
                    score_thr: float = 0.5, fusion: dict[str, Any] | None = None,
                    fused_name: str = "fused (WBF)", fuse: Sequence[str] | None = None
                    ) -> dict[str, Any]:
    """AP overall / per subset and land / sea counts per detector and for their fusion.

    The implementation of ``saropt fuse compare`` (paper 000's complementarity claim; the
    definitions are in this module's docstring and ``docs/fusion.md``).

    Args:
        gt_path: COCO ground truth; images may carry ``scene`` (``inshore`` / ``offshore``).
        pred_paths: COCO results files, one per detector.
        names: a name per prediction file (default: the file stems).
        land_masks: folder of ``<image stem>.png`` land masks (255 = land); without it no land /
            sea counts.
        score_thr: score at which false alarms and recall are counted.
        fusion: keyword arguments of :func:`fuse_coco_results` (method, weights, iou_thr, ...).
        fused_name: the fused detector's row name.
        fuse: names of the detectors to fuse (default all of them; fewer than two: no fusion).

    Returns:
        ``gt``, ``score_thr``, ``subsets`` (images per subset), ``land_masks``, ``fused`` (the
        names fused) and ``detectors``: per name ``ap`` (see :func:`average_precisions`) and,
        with masks, ``land_sea`` (see :func:`land_sea_counts`).

    Raises:
        DataError: unreadable ground truth or results, as many names as files not given, a
            name given twice, an unknown name in ``fuse``, or a missing land mask.
    """
    gt = load_coco_gt(gt_path)
    sizes = image_sizes_from_gt(gt, str(gt_path))
    names = list(names) if names else [Path(p).stem for p in pred_paths]
    if len(names) != len(pred_paths):
        raise DataError(f"{len(names)} names given for {len(pred_paths)} prediction files")
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:  # one detector's column would silently replace the other's
        raise DataError(f"detector name(s) {', '.join(repeated)} given twice (the file stems by "
                        "default); give each prediction file its own name with --names")
    lists = {n: load_coco_results(p) for n, p in zip(names, pred_paths)}
    fuse = list(fuse) if fuse else list(lists)
    unknown = [n for n in fuse if n not in lists]
    if unknown:
        raise DataError(f"cannot fuse {unknown}: detectors are {list(lists)}")
    if len(fuse) > 1:
        lists[fused_name] = fuse_coco_results([lists[n] for n in fuse], sizes,
                                              **(fusion or {}))
    subsets = scene_subsets(gt)
    masks = load_land_masks(gt, land_masks) if land_masks else None
    detectors = {}
    for name, results in lists.items():
        row: dict[str, Any] = {"ap": average_precisions(gt, results, subsets)}
        if masks is not None:
            row["land_sea"] = land_sea_counts(gt, results, masks, score_thr)
        detectors[name] = row
    return {"gt": str(gt_path), "score_thr": score_thr, "subsets": {k: len(v) for k, v in
                                                                    subsets.items()},
            "land_masks": str(land_masks) if land_masks else None, "fused": fuse if len(fuse) > 1
            else [], "detectors": detectors}


# ------------------------------------------------------------------ presentation


def ap_keys(result: dict[str, Any]) -> list[str]:
    """The AP definitions present in a :func:`complementarity` result, in a stable order."""
    first = next(iter(result["detectors"].values()))["ap"]["all"]
    return list(first)


def table_rows(result: dict[str, Any]) -> tuple[list[list[Any]], list[str]]:
    """One row per detector: APs per subset, then land / sea counts when masks were given."""
    keys = ap_keys(result)
    parts = ["all", *result["subsets"]]
    headers = ["detector"] + [f"{k} ({p})" for p in parts for k in keys]
    with_masks = result["land_masks"] is not None
    if with_masks:
        headers += [f"FA land @{result['score_thr']}", "FA sea", "recall sea", "recall land"]
    rows = []
    for name, d in result["detectors"].items():
        row: list[Any] = [name] + [d["ap"][p][k] for p in parts for k in keys]
        if with_masks:
            c = d["land_sea"]
            row += [c["fa_land"], c["fa_sea"], c["recall_sea"], c["recall_land"]]
        rows.append(row)
    return rows, headers


def write_compare_outputs(result: dict[str, Any], out: Path,
                          overwrite: bool = False) -> dict[str, Path]:
    """Write ``compare.json``, ``compare.md`` (table) and ``compare.png`` (bars) into ``out``.

    The folder follows :func:`saropt.utils.outdir.prepare_out_dir` (atomic files, a folder of
    another command refused unless ``overwrite``; a rerun of ``fuse compare`` replaces it).

    Args:
        result: a :func:`complementarity` result.
        out: the output folder.
        overwrite: replace another command's output in ``out``.

    Returns:
        The paths written, by key ``json``, ``md`` and ``png``.

    Raises:
        OutDirError: ``out`` is in use by another run, is a file, or holds another command's
            output and ``overwrite`` is not set (a :class:`~saropt.errors.SaroptError`).
    """
    from saropt.utils.io import save_figure_atomic, write_json_atomic, write_text_atomic
    from saropt.utils.outdir import prepare_out_dir
    from saropt.utils.table import format_table

    rows, headers = table_rows(result)
    names = ["compare.json", "compare.md", "compare.png"]
    with prepare_out_dir(out, "fuse compare", None, names, overwrite, replace_same=True,
                         quiet=True) as od:
        files = {"json": write_json_atomic(out / "compare.json", result),
                 "md": write_text_atomic(out / "compare.md",
                                         format_table(rows, headers, markdown=True) + "\n"),
                 "png": save_figure_atomic(figure(result), out / "compare.png")}
        od.finish()
    return files


def figure(result: dict[str, Any], ap_key: str | None = None) -> Any:
    """Bars: AP per detector on all / inshore / offshore; false alarms on land; recall at sea."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ap_key = ap_key or ap_keys(result)[-1]
    names = list(result["detectors"])
    parts = ["all", *result["subsets"]]
    with_masks = result["land_masks"] is not None
    fig, axes = plt.subplots(1, 3 if with_masks else 1, figsize=(12 if with_masks else 5, 3.6),
                             squeeze=False)
    x = np.arange(len(names))
    width = 0.8 / len(parts)
    ax = axes[0, 0]
    for i, p in enumerate(parts):
        ax.bar(x + (i - (len(parts) - 1) / 2) * width,
               [result["detectors"][n]["ap"][p][ap_key] for n in names], width, label=p)
    _style(ax, names, f"{ap_key}", "AP by scene")
    ax.set_ylim(0, 1)
    ax.legend(fontsize=8)
    if with_masks:
        ls = [result["detectors"][n]["land_sea"] for n in names]
        axes[0, 1].bar(x, [c["fa_land"] for c in ls], color="tab:red")
        axes[0, 1].set_ylim(0, max(1, *[c["fa_land"] for c in ls]) * 1.15)
        axes[0, 1].yaxis.get_major_locator().set_params(integer=True)
        _style(axes[0, 1], names, "count", f"false alarms on land (score >= "
               f"{result['score_thr']})")
        axes[0, 2].bar(x, [c["recall_sea"] for c in ls], color="tab:blue")
        axes[0, 2].set_ylim(0, 1)
        _style(axes[0, 2], names, "recall", f"recall at sea (score >= {result['score_thr']})")
    fig.tight_layout()
    return fig


def _style(ax: Any, names: list[str], ylabel: str, title: str) -> None:
    ax.set_xticks(np.arange(len(names)))
    ax.set_xticklabels(names, rotation=20, ha="right", fontsize=8)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=9)
