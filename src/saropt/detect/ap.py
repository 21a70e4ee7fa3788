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
``difficult``, COCO ``iscrowd``/``ignore``) neither. IoU is continuous (x2/y2 exclusive edges,
no VOC "+1"), as in pycocotools; boxes without a positive-area overlap (zero-area boxes included)
have IoU 0, never NaN.

The three definitions count the same boxes: the ground truth is checked and normalised first
(:func:`normalise_gt`: annotation ids renumbered, zero-area boxes dropped with a count, repeated
image ids refused), the detections checked (:func:`load_results`), and all three see only the
``max_dets`` highest-scoring detections of each image and category (pycocotools' cap, applied
before the VOC matcher too; the number removed is reported).

COCO ignores ``iscrowd=1`` boxes (pycocotools overrides a bare ``ignore`` key with ``iscrowd``,
so a GT with ``ignore=1`` is passed on as ``iscrowd=1``); a detection on a crowd box is matched
with intersection over the detection's area. Multi-class AP is the mean over classes that have
ground truth. An AP with no ground truth is ``None``.
"""

from __future__ import annotations

import contextlib
import copy
import io
import logging
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from saropt.detect.datasets.base import strip_image_suffix
from saropt.detect.datasets.coco import coco_flag
from saropt.errors import DataError
from saropt.utils.io import read_json

log = logging.getLogger(__name__)

AP_DEFINITIONS = {
    "voc07_11pt": "AP@0.5, PASCAL VOC07 11-point interpolation",
    "voc_all_point": "AP@0.5, VOC all-point (area under the monotone PR envelope)",
    "coco_101pt": "AP@0.5, COCO 101-point interpolation (pycocotools COCOeval, maxDets 100)",
}


# ----------------------------------------------------------------------------- inputs

def load_coco_gt(gt: str | Path | Mapping[str, Any] | Any) -> dict[str, Any]:
    """A checked, normalised COCO ground-truth dict (see :func:`normalise_gt`).

    Args:
        gt: a COCO JSON path, a dict in COCO layout, or a ``pycocotools.coco.COCO`` object;
            dicts and ``COCO`` objects are deep-copied, never changed.

    Raises:
        DataError: the file cannot be read or is not valid COCO ground truth.
    """
    source = "ground truth"
    if hasattr(gt, "dataset") and isinstance(gt.dataset, dict):
        data = copy.deepcopy(gt.dataset)
    elif isinstance(gt, Mapping):
        data = copy.deepcopy(dict(gt))
    else:
        from saropt.detect.datasets.coco import load_coco_json

        source = str(gt)
        data = load_coco_json(gt)
    return normalise_gt(data, source)


def normalise_gt(data: dict[str, Any], source: str = "ground truth") -> dict[str, Any]:
    """Check and normalise COCO ground truth before any AP, in place; returns ``data``.

    Refused (:class:`DataError` naming the ids): no image at all, repeated image ids, repeated
    category ids, annotations on an image or category the file does not list, boxes that are not
    four finite numbers. Normalised: image and category ids written as strings (``"12"``) or
    floats become integers (pycocotools refuses results on them otherwise), annotation ids
    renumbered 1..N (pycocotools reads id 0 as "unmatched" and merges repeated ids; the original
    id is kept as ``orig_id``), ``ignore=1`` becomes ``iscrowd=1`` (flags written ``"0"``,
    ``"false"``, ... read as what they say), ``area`` is the box's ``w * h``, and boxes with
    zero or negative width or height are dropped (no definition can match them; their count is
    ``data["normalised"]["dropped_empty_gt_boxes"]``). Category ids may start at 0.
    """
    for key in ("images", "annotations"):
        if not isinstance(data.get(key), list):
            raise DataError(f"{source}: no '{key}' list; not COCO ground truth")
    data.setdefault("categories", [{"id": 1, "name": "ship"}])
    if not data["images"]:
        raise DataError(f"{source}: lists no image, so there is nothing to score (an empty "
                        "split or annotation file?)")
    image_ids = _unique_int_ids(data["images"], "image", source)
    cat_ids = _unique_int_ids(data["categories"], "category", source)
    kept, dropped = [], 0
    for i, ann in enumerate(data["annotations"]):
        try:
            img, cat = int(ann["image_id"]), int(ann.get("category_id", 1))
            x, y, w, h = (float(v) for v in ann["bbox"])
        except (KeyError, TypeError, ValueError):
            raise DataError(f"{source}: annotation {i} needs image_id and bbox [x, y, w, h]: "
                            f"{ann}") from None
        if not np.isfinite([x, y, w, h]).all():
            raise DataError(f"{source}: annotation {i} (id {ann.get('id')}) has a non-finite "
                            f"bbox {ann['bbox']}")
        if img not in image_ids:
            raise DataError(f"{source}: annotation {i} (id {ann.get('id')}) is on image_id "
                            f"{img}, which 'images' does not list")
        if cat not in cat_ids:
            raise DataError(f"{source}: annotation {i} (id {ann.get('id')}) has category_id "
                            f"{cat}, not one of 'categories' {sorted(cat_ids)}")
        if w <= 0 or h <= 0:
            dropped += 1
            continue
        what = f"{source}: annotation {i} (id {ann.get('id')})"
        crowd = coco_flag(ann.get("iscrowd"), what) | coco_flag(ann.get("ignore"), what)
        # area only places a box in pycocotools' area range; the box's own (w * h) keeps a
        # file's negative, missing or segmentation area from dropping boxes the VOC matcher
        # counts ("all" is [0, 1e10])
        kept.append({**ann, "orig_id": ann.get("id"), "image_id": img, "category_id": cat,
                     "bbox": [x, y, w, h], "iscrowd": crowd, "area": w * h})
    for k, ann in enumerate(kept):
        ann["id"] = k + 1
    data["annotations"] = kept
    data["normalised"] = {"annotation_ids_renumbered": True, "dropped_empty_gt_boxes": dropped}
    if dropped:
        log.warning("%s: dropped %d ground-truth box(es) with zero width or height", source,
                    dropped)
    return data


def _unique_int_ids(entries: list[Any], what: str, source: str) -> set[int]:
    ids: list[int] = []
    for e in entries:
        try:
            ids.append(int(e["id"]))
        except (KeyError, TypeError, ValueError):
            raise DataError(f"{source}: {what} entry without an integer id: {e}") from None
        if isinstance(e["id"], str) or not _is_integral(e["id"]):
            if float(e["id"]) != ids[-1]:
                raise DataError(f"{source}: {what} entry without an integer id: {e}")
            e["id"] = ids[-1]  # "12" or 12.0 -> 12: pycocotools matches ids by equality
    counts = Counter(ids)
    repeated = sorted(i for i, n in counts.items() if n > 1)
    if repeated:
        raise DataError(f"{source}: repeated {what} ids {_few(repeated)}; every {what} needs "
                        "its own id (renumber them in the file)")
    return set(ids)


def _few(values: Sequence[Any], n: int = 5) -> str:
    shown = ", ".join(str(v) for v in list(values)[:n])
    return f"{shown}, ... ({len(values)} in all)" if len(values) > n else shown


def image_name_index(gt: dict[str, Any]) -> dict[str, list[int]]:
    """File name, base name and stem of every ground-truth image -> the image ids having it.

    Used to read results whose ``image_id`` is a file name (YOLO-family tools); ids sorted.
    """
    index: dict[str, set[int]] = {}
    for img in gt["images"]:
        name = str(img.get("file_name", ""))
        if not name:
            continue
        base = name.replace("\\", "/").rsplit("/", 1)[-1]
        for key in {name, base, strip_image_suffix(base)}:
            index.setdefault(key, set()).add(int(img["id"]))
    return {k: sorted(v) for k, v in index.items()}


def load_results(results: str | Path | Iterable[Mapping[str, Any]], gt: dict[str, Any]
                 ) -> list[dict[str, Any]]:
    """COCO results checked against the ground truth, with integer image and category ids.

    Each result is ``{"image_id", "category_id", "bbox": [x, y, w, h] in pixels, "score"}``.
    A string ``image_id`` (YOLO-family tools write the file stem) is matched to the ground-truth
    image of that file name, base name or stem; a name that no image or several images have is
    an error. A string ``category_id`` may be a category name. A dict with an ``annotations``
    list (a COCO-style file whose annotations carry scores) is read as that list. Scores must
    be finite and >= 0, boxes four finite numbers with w, h >= 0, image and category ids those
    of the ground truth (errors give the count and the first entries).

    Raises:
        DataError: naming the file and entry, for any of the problems above.
    """
    source = str(results) if isinstance(results, (str, Path)) else "predictions"
    if isinstance(results, (str, Path)):
        results = read_json(results, "predictions")
    if isinstance(results, Mapping) and isinstance(results.get("annotations"), list):
        results = results["annotations"]  # a COCO-style file whose annotations carry scores
    if isinstance(results, Mapping) or not isinstance(results, Iterable):
        raise DataError(f"{source}: expected a COCO results list [{{image_id, category_id, "
                        "bbox, score}, ...], got an object")
    image_ids = {int(img["id"]) for img in gt["images"]}
    cat_ids = {int(c["id"]) for c in gt["categories"]}
    cat_names: dict[str, list[int]] = {}
    for c in gt["categories"]:
        cat_names.setdefault(str(c.get("name", c["id"])), []).append(int(c["id"]))
    names = None
    out, unknown = [], []
    for i, r in enumerate(results):
        try:
            raw_id, raw_cat = r["image_id"], r.get("category_id", 1)
            det = {"image_id": raw_id, "category_id": raw_cat,
                   "bbox": [float(v) for v in r["bbox"]], "score": float(r["score"])}
        except (KeyError, TypeError, ValueError, AttributeError):
            raise DataError(f"{source}: entry {i} needs image_id, bbox [x, y, w, h], score: "
                            f"{r}") from None
        if isinstance(raw_id, str):
            names = image_name_index(gt) if names is None else names
            det["image_id"] = _image_id_from_name(raw_id, names, image_ids, source, i)
        elif not _is_integral(raw_id):
            raise DataError(f"{source}: entry {i} image_id {raw_id!r} is neither an integer id "
                            "nor a file name")
        if isinstance(raw_cat, str) and len(cat_names.get(raw_cat, [])) == 1:
            det["category_id"] = cat_names[raw_cat][0]  # a category given by its name
        elif not _is_integral(raw_cat) and not (isinstance(raw_cat, str)
                                                and raw_cat.strip().lstrip("-").isdigit()):
            raise DataError(f"{source}: entry {i} category_id {raw_cat!r} is neither an "
                            f"integer id nor one of the category names {sorted(cat_names)}")
        det["image_id"], det["category_id"] = int(det["image_id"]), int(det["category_id"])
        _check_detection(det, i, source)
        if det["image_id"] not in image_ids:
            unknown.append(det["image_id"])
        if det["category_id"] not in cat_ids:
            raise DataError(f"{source}: entry {i} has category_id {det['category_id']}, not "
                            f"one of the ground truth's {sorted(cat_ids)}")
        out.append(det)
    if unknown:
        raise DataError(f"{source}: {len(unknown)} detection(s) on image ids the ground truth "
                        f"does not have: {_few(sorted(set(unknown)))} (predictions and ground "
                        "truth of different image sets?)")
    return out


def _is_integral(value: Any) -> bool:
    return (isinstance(value, (int, float)) and not isinstance(value, bool)
            and bool(np.isfinite(value)) and value == int(value))


def _image_id_from_name(name: str, index: dict[str, list[int]], image_ids: set[int],
                        source: str, i: int) -> int:
    ids = index.get(name) or index.get(strip_image_suffix(name.replace("\\", "/")
                                                          .rsplit("/", 1)[-1]))
    if ids and len(ids) == 1:
        return ids[0]
    if ids:
        raise DataError(f"{source}: entry {i} image_id {name!r} names {len(ids)} ground-truth "
                        f"images (ids {_few(ids)}); give integer image ids")
    if name.strip().lstrip("-").isdigit() and int(name) in image_ids:
        return int(name)
    raise DataError(f"{source}: entry {i} image_id {name!r} is no ground-truth image's file "
                    "name or id")


def _check_detection(det: dict[str, Any], i: int, source: str) -> None:
    if len(det["bbox"]) != 4:
        raise DataError(f"{source}: entry {i} bbox is not [x, y, w, h]: {det['bbox']}")
    if not np.isfinite(det["bbox"]).all() or det["bbox"][2] < 0 or det["bbox"][3] < 0:
        raise DataError(f"{source}: entry {i} bbox {det['bbox']} is not four finite numbers "
                        "[x, y, w, h] with w, h >= 0")
    if not np.isfinite(det["score"]) or det["score"] < 0:
        raise DataError(f"{source}: entry {i} score {det['score']} is not a finite confidence "
                        ">= 0 (convert logits to probabilities)")


def cap_per_image(dets: list[dict[str, Any]], max_dets: int) -> tuple[list[dict[str, Any]], int]:
    """The ``max_dets`` best-scoring detections of each (image, category), and the number removed.

    Stable order on equal scores, as pycocotools keeps them; the input order is preserved.
    """
    groups: dict[tuple[int, int], list[int]] = {}
    for k, d in enumerate(dets):
        groups.setdefault((d["image_id"], d["category_id"]), []).append(k)
    keep = set()
    for ks in groups.values():
        order = sorted(ks, key=lambda k: -dets[k]["score"])  # stable, like mergesort
        keep.update(order[:max_dets])
    return [d for k, d in enumerate(dets) if k in keep], len(dets) - len(keep)


def xywh_to_xyxy(b: Iterable[Iterable[float]]) -> np.ndarray:
    """COCO ``[x, y, w, h]`` boxes as an ``(N, 4)`` float64 xyxy array (``(0, 4)`` for none)."""
    a = np.asarray(list(b), dtype=np.float64).reshape(-1, 4)
    return np.concatenate([a[:, :2], a[:, :2] + a[:, 2:]], axis=1)


def box_iou_xyxy(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``(N, M)`` IoU of xyxy boxes ``a`` ``(N, 4)`` and ``b`` ``(M, 4)``, continuous coordinates.

    Boxes that do not overlap with positive area (including zero-area boxes, whose union may be
    empty) have IoU 0, as in pycocotools, never NaN. No VOC "+1" on widths.
    """
    a = np.asarray(a, np.float64).reshape(-1, 4)[:, None, :]
    b = np.asarray(b, np.float64).reshape(-1, 4)[None, :, :]
    w = np.minimum(a[..., 2], b[..., 2]) - np.maximum(a[..., 0], b[..., 0])
    h = np.minimum(a[..., 3], b[..., 3]) - np.maximum(a[..., 1], b[..., 1])
    inter = np.where((w > 0) & (h > 0), w * h, 0.0)
    area = lambda x: (x[..., 2] - x[..., 0]) * (x[..., 3] - x[..., 1])  # noqa: E731
    union = area(a) + area(b) - inter
    return np.divide(inter, union, out=np.zeros_like(inter), where=(inter > 0) & (union > 0))


# ----------------------------------------------------------------------------- VOC

def voc_match(gt: dict[str, Any], dets: list[dict[str, Any]], category_id: int,
              image_ids: set[int], iou_thr: float = 0.5
              ) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """VOC devkit matching for one class on ``image_ids``: ``(scores, tp, fp, n_positive)``.

    ``scores``, ``tp`` and ``fp`` are ``(D,)`` arrays in descending score order (stable);
    detections whose best IoU >= ``iou_thr`` is on an ignored (``iscrowd``) box are removed, so
    they count neither way; ``n_positive`` counts the non-ignored ground-truth boxes.
    """
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
        m = box_iou_xyxy(d, g)
        for row, k in zip(m, ks):
            out[k] = row
    return out


def pr_curve(tp: np.ndarray, fp: np.ndarray, npos: int) -> tuple[np.ndarray, np.ndarray]:
    """Recall and precision ``(D,)`` after each of the ``D`` detections (descending score).

    ``tp`` and ``fp`` are :func:`voc_match`'s 0/1 arrays, ``npos`` the number of ground-truth
    boxes (recall is 0 when there are none).
    """
    tpc, fpc = np.cumsum(tp), np.cumsum(fp)
    recall = tpc / max(npos, 1)
    precision = tpc / np.maximum(tpc + fpc, np.finfo(np.float64).eps)
    return recall, precision


def ap_voc07_11pt(recall: np.ndarray, precision: np.ndarray) -> float:
    """PASCAL VOC 2007 11-point AP: mean over t = 0, 0.1, ..., 1 of max precision at recall >= t.

    A threshold no recall reaches contributes 0. The thresholds are exactly k / 10 (the
    devkit's ``np.arange(0, 1.1, 0.1)`` makes 0.3, 0.6 and 0.7 slightly larger, so a recall of
    exactly 0.3 would miss its threshold there).
    """
    vals = [precision[recall >= t].max() if (recall >= t).any() else 0.0
            for t in np.arange(11) / 10.0]
    return float(np.mean(vals))


def ap_voc_all_point(recall: np.ndarray, precision: np.ndarray) -> float:
    """VOC 2010+ all-point AP: the area under the monotone envelope of the PR curve.

    As the VOC devkit's ``VOCap``: precision made non-increasing from the right, summed over
    the recall steps, with sentinels (0, 0) and (1, 0).
    """
    mrec = np.concatenate([[0.0], recall, [1.0]])
    mpre = np.concatenate([[0.0], precision, [0.0]])
    mpre = np.maximum.accumulate(mpre[::-1])[::-1]
    idx = np.where(mrec[1:] != mrec[:-1])[0]
    return float(np.sum((mrec[idx + 1] - mrec[idx]) * mpre[idx + 1]))


# ----------------------------------------------------------------------------- COCO

def coco_ap50(gt: dict[str, Any], dets: list[dict[str, Any]], image_ids: list[int],
              max_dets: int = 100, iou_thr: float = 0.5
              ) -> dict[int, tuple[float | None, np.ndarray]]:
    """Per category id: (COCO 101-point AP at ``iou_thr``, the ``(101,)`` interpolated precisions).

    From ``pycocotools.cocoeval.COCOeval`` (bbox) restricted to one IoU threshold, area "all"
    and ``max_dets`` detections per image. The AP is None for a category without ground truth
    on ``image_ids``; precisions pycocotools marks -1 (no ground truth) are returned as 0.
    """
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
    """Named image-id lists for subset scores, ``{"scene=inshore": [ids], ...}``.

    A key or list of keys (``"scene"``) groups the ground-truth images by that image entry's
    value (images without it are left out); a mapping ``{name: ids}`` is taken as is.
    """
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
    names = Counter(str(c.get("name", c["id"])) for c in gt["categories"])
    for cat in gt["categories"]:
        cid, name = int(cat["id"]), str(cat.get("name", cat["id"]))
        if names[name] > 1:  # two categories of one name must not overwrite each other
            name = f"{name} (id {cid})"
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
    """Score COCO results against COCO ground truth with the three AP definitions of this module.

    Args:
        gt_json_or_coco: ground truth, as :func:`load_coco_gt` takes it.
        results_json_or_list: COCO results, as :func:`load_results` takes them.
        subsets: image subsets scored on their own too (see :func:`subset_image_ids`).
        iou_thr: IoU threshold for a true positive, in (0, 1].
        max_dets: detections kept per image and category (highest scores), >= 1.

    Returns:
        ``{"definitions", "iou_threshold", "max_dets", "input_checks", "all": metrics,
        "subsets": {name: metrics}, "curves": {"all" | subset: {category: {"recall",
        "precision", "scores", "coco_precision_101"}}}}`` where ``metrics["ap50"]`` holds the
        three labelled APs (None without ground truth) and ``input_checks`` the counts of boxes
        dropped (empty ground truth, detections over ``max_dets``).

    Raises:
        DataError: a bad ``iou_thr`` or ``max_dets``, or ground truth or results that fail the
            checks of :func:`normalise_gt` and :func:`load_results`.
    """
    if not 0.0 < iou_thr <= 1.0:
        raise DataError(f"IoU threshold must be in (0, 1], got {iou_thr}")
    if max_dets < 1:
        raise DataError(f"max_dets must be >= 1, got {max_dets}")
    gt = load_coco_gt(gt_json_or_coco)
    dets, n_capped = cap_per_image(load_results(results_json_or_list, gt), max_dets)
    all_ids = [int(img["id"]) for img in gt["images"]]
    metrics, curves = _evaluate_images(gt, dets, all_ids, iou_thr, max_dets)
    checks = {**gt.get("normalised", {}), "dropped_over_max_dets": n_capped}
    out = {"definitions": AP_DEFINITIONS, "iou_threshold": iou_thr, "max_dets": max_dets,
           "input_checks": checks, "all": metrics, "subsets": {}, "curves": {"all": curves}}
    named = subset_image_ids(gt, subsets)
    for name, ids in named.items():
        out["subsets"][name], out["curves"][name] = _evaluate_images(gt, dets, ids, iou_thr,
                                                                     max_dets)
    absent = _subset_keys_without_values(gt, subsets, named)
    if absent:
        checks["subset_keys_without_values"] = absent
        keys = sorted({k for img in gt["images"] for k, v in img.items() if v is not None}
                      - {"id", "file_name", "width", "height"})
        log.warning("no ground-truth image has a value for the subset key(s) %s, so they "
                    "give no rows (image keys with values: %s)", ", ".join(absent),
                    ", ".join(keys) or "none")
    return out


def _subset_keys_without_values(gt: dict[str, Any], subsets: Any,
                                named: dict[str, list[int]]) -> list[str]:
    """The subset keys asked for (a key or list of keys) that no image entry has a value for."""
    if subsets is None or isinstance(subsets, Mapping):
        return []
    keys = [subsets] if isinstance(subsets, str) else list(subsets)
    return [k for k in keys if not any(name.startswith(f"{k}=") for name in named)]


def gt_as_results(gt: str | Path | Mapping[str, Any], score: float = 1.0) -> list[dict]:
    """The non-ignored ground truth as COCO results (a perfect detector)."""
    data = load_coco_gt(gt)
    return [{"image_id": a["image_id"], "category_id": a["category_id"],
             "bbox": list(a["bbox"]), "score": score}
            for a in data["annotations"] if not a["iscrowd"]]
