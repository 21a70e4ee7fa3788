"""AP at IoU 0.5, three ways, always labelled (paper 003 Table 3 reports "AP").

- ``voc07_11pt``: PASCAL VOC 2007 11-point interpolated AP: the mean over recall thresholds
  0, 0.1, ..., 1 of the highest precision at recall >= threshold.
- ``voc_all_point``: VOC 2010+ AP: the area under the monotone (right-to-left maximum) envelope of
  the precision-recall curve, summed at every recall change.
- ``coco_101pt``: COCO AP50 from ``pycocotools.COCOeval`` (bbox, IoU threshold 0.5, area "all",
  at most ``max_dets`` = 100 detections per image; 101 recall thresholds 0, 0.01, ..., 1).

Matching for the two VOC variants follows the VOC devkit: detections of a class in descending
score order (stable); each takes the ground-truth box of highest IoU; IoU >= 0.5 on an unmatched
box is a true positive, on an already matched box a false positive, on an ignored box (VOC
``difficult``, COCO ``iscrowd``/``ignore``) neither; all detections count (no per-image cap). IoU
is continuous (x2/y2 exclusive edges, no VOC "+1"), as in pycocotools.

COCO ignores ``iscrowd=1`` boxes (pycocotools overrides a bare ``ignore`` key with ``iscrowd``,
so a GT with ``ignore=1`` is passed on as ``iscrowd=1``); a detection on a crowd box is matched
with intersection over the detection's area. Multi-class AP is the mean over classes that have
ground truth. An AP with no ground truth is ``None``.
"""

from __future__ import annotations

import contextlib
import copy
import io
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torchvision.ops import box_iou

from saropt.errors import DataError
from saropt.utils.io import read_json

AP_DEFINITIONS = {
    "voc07_11pt": "AP@0.5, PASCAL VOC07 11-point interpolation",
    "voc_all_point": "AP@0.5, VOC all-point (area under the monotone PR envelope)",
    "coco_101pt": "AP@0.5, COCO 101-point interpolation (pycocotools COCOeval, maxDets 100)",
}


# ----------------------------------------------------------------------------- inputs

def load_coco_gt(gt: str | Path | Mapping[str, Any] | Any) -> dict[str, Any]:
    """A COCO ground-truth dict from a path, a dict or a ``pycocotools.coco.COCO`` object.
    ``ignore=1`` annotations become ``iscrowd=1``."""
    if hasattr(gt, "dataset") and isinstance(gt.dataset, dict):
        data = copy.deepcopy(gt.dataset)
    elif isinstance(gt, Mapping):
        data = copy.deepcopy(dict(gt))
    else:
        from saropt.detect.datasets.coco import load_coco_json

        data = load_coco_json(gt)
    for key in ("images", "annotations"):
        if key not in data:
            raise DataError(f"ground truth has no '{key}' list")
    data.setdefault("categories", [{"id": 1, "name": "ship"}])
    for i, ann in enumerate(data["annotations"]):
        ann.setdefault("id", i + 1)
        ann["iscrowd"] = int(bool(ann.get("iscrowd", 0) or ann.get("ignore", 0)))
        if "area" not in ann:
            ann["area"] = float(ann["bbox"][2]) * float(ann["bbox"][3])
    return data


def load_results(results: str | Path | Iterable[Mapping[str, Any]], gt: dict[str, Any]
                 ) -> list[dict[str, Any]]:
    """COCO results (``image_id``, ``category_id``, ``bbox`` [x, y, w, h], ``score``), checked
    against the ground truth's images and categories; errors name the file."""
    source = str(results) if isinstance(results, (str, Path)) else "predictions"
    if isinstance(results, (str, Path)):
        results = read_json(results, "predictions")
    if isinstance(results, Mapping):
        raise DataError(f"{source}: expected a COCO results list, got an object")
    image_ids = {int(img["id"]) for img in gt["images"]}
    cat_ids = {int(c["id"]) for c in gt["categories"]}
    out = []
    for i, r in enumerate(results):
        try:
            det = {"image_id": int(r["image_id"]), "category_id": int(r.get("category_id", 1)),
                   "bbox": [float(v) for v in r["bbox"]], "score": float(r["score"])}
        except (KeyError, TypeError, ValueError):
            raise DataError(f"{source}: entry {i} needs image_id, bbox [x, y, w, h], score: "
                            f"{r}") from None
        if len(det["bbox"]) != 4:
            raise DataError(f"{source}: entry {i} bbox is not [x, y, w, h]: {r['bbox']}")
        if det["image_id"] not in image_ids:
            raise DataError(f"{source}: entry {i} has image_id {det['image_id']}, "
                            "which the ground truth does not have")
        if det["category_id"] not in cat_ids:
            raise DataError(f"{source}: entry {i} has category_id {det['category_id']}, not "
                            f"one of the ground truth's {sorted(cat_ids)}")
        out.append(det)
    return out


def xywh_to_xyxy(b: Iterable[Iterable[float]]) -> np.ndarray:
    a = np.asarray(list(b), dtype=np.float64).reshape(-1, 4)
    return np.concatenate([a[:, :2], a[:, :2] + a[:, 2:]], axis=1)


# ----------------------------------------------------------------------------- VOC

def voc_match(gt: dict[str, Any], dets: list[dict[str, Any]], category_id: int,
              image_ids: set[int], iou_thr: float = 0.5
              ) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """VOC devkit matching for one class: (scores, tp, fp, n_positive) in descending score
    order; detections on ignored boxes are removed."""
    gts: dict[int, list[dict]] = {i: [] for i in image_ids}
    for ann in gt["annotations"]:
        if ann["category_id"] == category_id and ann["image_id"] in gts:
            gts[ann["image_id"]].append(ann)
    npos = sum(1 for anns in gts.values() for a in anns if not a["iscrowd"])
    dets = [d for d in dets if d["category_id"] == category_id and d["image_id"] in gts]
    scores = np.array([d["score"] for d in dets], dtype=np.float64)
    order = np.argsort(-scores, kind="mergesort")
    ious = _ious_per_detection(gts, dets)
    used = {i: np.zeros(len(a), bool) for i, a in gts.items()}
    tp, fp, keep = np.zeros(len(dets)), np.zeros(len(dets)), np.ones(len(dets), bool)
    for rank, k in enumerate(order):
        img, row = dets[k]["image_id"], ious[k]
        j = int(row.argmax()) if row.size else -1
        if j < 0 or row[j] < iou_thr:
            fp[rank] = 1
        elif gts[img][j]["iscrowd"]:
            keep[rank] = False
        elif not used[img][j]:
            tp[rank], used[img][j] = 1, True
        else:
            fp[rank] = 1
    return scores[order][keep], tp[keep], fp[keep], npos


def _ious_per_detection(gts: dict[int, list[dict]], dets: list[dict]) -> list[np.ndarray]:
    by_img: dict[int, list[int]] = {}
    for k, d in enumerate(dets):
        by_img.setdefault(d["image_id"], []).append(k)
    out: list[np.ndarray] = [np.zeros(0)] * len(dets)
    for img, ks in by_img.items():
        g = xywh_to_xyxy(a["bbox"] for a in gts[img])
        if not len(g):
            continue
        d = xywh_to_xyxy(dets[k]["bbox"] for k in ks)
        m = box_iou(torch.from_numpy(d), torch.from_numpy(g)).numpy()
        for row, k in zip(m, ks):
            out[k] = row
    return out


def pr_curve(tp: np.ndarray, fp: np.ndarray, npos: int) -> tuple[np.ndarray, np.ndarray]:
    """Recall and precision after each detection (descending score)."""
    tpc, fpc = np.cumsum(tp), np.cumsum(fp)
    recall = tpc / max(npos, 1)
    precision = tpc / np.maximum(tpc + fpc, np.finfo(np.float64).eps)
    return recall, precision


def ap_voc07_11pt(recall: np.ndarray, precision: np.ndarray) -> float:
    """Mean over t in {0, 0.1, ..., 1} of max precision at recall >= t (0 if none)."""
    vals = [precision[recall >= t].max() if (recall >= t).any() else 0.0
            for t in np.linspace(0.0, 1.0, 11)]
    return float(np.mean(vals))


def ap_voc_all_point(recall: np.ndarray, precision: np.ndarray) -> float:
    """Area under the monotone envelope of the PR curve (VOC 2010+)."""
    mrec = np.concatenate([[0.0], recall, [1.0]])
    mpre = np.concatenate([[0.0], precision, [0.0]])
    mpre = np.maximum.accumulate(mpre[::-1])[::-1]
    idx = np.where(mrec[1:] != mrec[:-1])[0]
    return float(np.sum((mrec[idx + 1] - mrec[idx]) * mpre[idx + 1]))


# ----------------------------------------------------------------------------- COCO

def coco_ap50(gt: dict[str, Any], dets: list[dict[str, Any]], image_ids: list[int],
              max_dets: int = 100, iou_thr: float = 0.5
              ) -> dict[int, tuple[float | None, np.ndarray]]:
    """Per category: (COCO 101-point AP at ``iou_thr``, the 101 interpolated precisions), from
    pycocotools restricted to one IoU threshold, area "all" and ``max_dets``."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    cat_ids = [int(c["id"]) for c in gt["categories"]]
    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt = COCO()
        coco_gt.dataset = copy.deepcopy(gt)
        coco_gt.createIndex()
        if not dets:
            return {c: (_none_if_no_gt(gt, c, image_ids, 0.0), np.zeros(101)) for c in cat_ids}
        coco_dt = coco_gt.loadRes(copy.deepcopy(dets))
        ev = COCOeval(coco_gt, coco_dt, "bbox")
        ev.params.imgIds = sorted(image_ids)
        ev.params.catIds = cat_ids
        ev.params.iouThrs = np.array([iou_thr])
        ev.params.maxDets = [max_dets]
        ev.params.areaRng, ev.params.areaRngLbl = [[0.0, 1e10]], ["all"]
        ev.evaluate()
        ev.accumulate()
    out = {}
    for k, c in enumerate(cat_ids):
        p = ev.eval["precision"][0, :, k, 0, 0]
        out[c] = (float(p[p > -1].mean()) if (p > -1).any() else None, np.clip(p, 0, None))
    return out


def _none_if_no_gt(gt: dict, cat: int, image_ids: list[int], value: float) -> float | None:
    ids = set(image_ids)
    has = any(a["category_id"] == cat and a["image_id"] in ids and not a["iscrowd"]
              for a in gt["annotations"])
    return value if has else None


# ----------------------------------------------------------------------------- all together

def subset_image_ids(gt: dict[str, Any], subsets: str | Iterable[str] | Mapping[str, Any] | None
                     ) -> dict[str, list[int]]:
    """Named image-id lists: a meta key (``"scene"``) groups images by that key's value
    (``"scene=inshore"``, ...; images without it are left out); a mapping is taken as is."""
    if subsets is None:
        return {}
    if isinstance(subsets, Mapping):
        return {str(k): [int(i) for i in v] for k, v in subsets.items()}
    keys = [subsets] if isinstance(subsets, str) else list(subsets)
    out: dict[str, list[int]] = {}
    for key in keys:
        for img in gt["images"]:
            if img.get(key) is not None:
                out.setdefault(f"{key}={img[key]}", []).append(int(img["id"]))
    return dict(sorted(out.items()))


def _evaluate_images(gt: dict, dets: list[dict], image_ids: list[int], iou_thr: float,
                     max_dets: int) -> tuple[dict[str, Any], dict[str, Any]]:
    """Metrics and curves on one set of images."""
    ids = set(image_ids)
    coco = coco_ap50(gt, dets, image_ids, max_dets, iou_thr)
    per_cat, curves = {}, {}
    for cat in gt["categories"]:
        cid, name = int(cat["id"]), str(cat.get("name", cat["id"]))
        scores, tp, fp, npos = voc_match(gt, dets, cid, ids, iou_thr)
        rec, prec = pr_curve(tp, fp, npos)
        has_gt = npos > 0
        per_cat[name] = {
            "ap50": {"voc07_11pt": ap_voc07_11pt(rec, prec) if has_gt else None,
                     "voc_all_point": ap_voc_all_point(rec, prec) if has_gt else None,
                     "coco_101pt": coco[cid][0]},
            "n_gt": npos, "n_detections": len(scores) + 0,
            "true_positives": int(tp.sum()), "false_positives": int(fp.sum())}
        curves[name] = {"recall": rec.tolist(), "precision": prec.tolist(),
                        "scores": scores.tolist(), "coco_precision_101": coco[cid][1].tolist()}
    anns = [a for a in gt["annotations"] if a["image_id"] in ids]
    metrics = {"ap50": {k: _mean([c["ap50"][k] for c in per_cat.values()])
                        for k in AP_DEFINITIONS},
               "n_images": len(ids), "n_gt": sum(1 for a in anns if not a["iscrowd"]),
               "n_ignored": sum(1 for a in anns if a["iscrowd"]),
               "n_detections": sum(1 for d in dets if d["image_id"] in ids),
               "per_category": per_cat}
    return metrics, curves


def _mean(vals: list[float | None]) -> float | None:
    vals = [v for v in vals if v is not None]
    return float(np.mean(vals)) if vals else None


def evaluate_coco_results(gt_json_or_coco: str | Path | Mapping[str, Any] | Any,
                          results_json_or_list: str | Path | Iterable[Mapping[str, Any]],
                          subsets: str | Iterable[str] | Mapping[str, Any] | None = None,
                          iou_thr: float = 0.5, max_dets: int = 100) -> dict[str, Any]:
    """Score COCO results against COCO ground truth.

    Returns ``{"definitions", "iou_threshold", "all": metrics, "subsets": {name: metrics},
    "curves": {"all" | subset: {category: {"recall", "precision", "scores",
    "coco_precision_101"}}}}`` where ``metrics["ap50"]`` holds the three labelled APs.
    """
    gt = load_coco_gt(gt_json_or_coco)
    dets = load_results(results_json_or_list, gt)
    all_ids = [int(img["id"]) for img in gt["images"]]
    metrics, curves = _evaluate_images(gt, dets, all_ids, iou_thr, max_dets)
    out = {"definitions": AP_DEFINITIONS, "iou_threshold": iou_thr, "max_dets": max_dets,
           "all": metrics, "subsets": {}, "curves": {"all": curves}}
    for name, ids in subset_image_ids(gt, subsets).items():
        out["subsets"][name], out["curves"][name] = _evaluate_images(gt, dets, ids, iou_thr,
                                                                     max_dets)
    return out


def gt_as_results(gt: str | Path | Mapping[str, Any], score: float = 1.0) -> list[dict]:
    """The non-ignored ground truth as COCO results (a perfect detector)."""
    data = load_coco_gt(gt)
    return [{"image_id": a["image_id"], "category_id": a["category_id"],
             "bbox": list(a["bbox"]), "score": score}
            for a in data["annotations"] if not a["iscrowd"]]
