"""Fusion of several detectors' COCO results: weighted boxes fusion (WBF), NMS and soft-NMS.

Paper 000 combines the OSD- and OSM-pretrained SAR ship detectors "through weighted boxes
fusion" (WBF: Solovyev et al., Image and Vision Computing 2021, the ``ensemble-boxes`` package).

All three go through ``ensemble-boxes``, which wants per-image boxes normalised to [0, 1]: we
divide by each image's width and height (from the ground-truth COCO file), clip to [0, 1], drop
boxes of zero area, fuse, and multiply back. See ``docs/fusion.md`` for the score modes.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
from pydantic import Field

from saropt.config import Config
from saropt.errors import DataError, SaroptError
from saropt.utils.io import read_json

METHODS = ("wbf", "nms", "soft_nms")
CONF_TYPES = ("avg", "max", "box_and_model_avg", "absent_model_aware_avg")
#: conf_types whose fused score provably stays in [0, 1] for any weights (see docs/fusion.md)
BOUNDED_CONF_TYPES = ("max", "box_and_model_avg", "absent_model_aware_avg")

ImageSizes = dict[int, tuple[float, float]]  # image_id -> (width, height)


class FuseConfig(Config):
    """``saropt fuse`` settings (``configs/fuse/wbf.yaml``).

    ``predictions``: COCO results files, one per model (``names`` label them); ``gt``: the COCO
    ground truth giving image sizes; ``method``: wbf, nms or soft_nms; ``weights``: one
    positive number per model (default all 1); ``iou_thr``: the boxes' match IoU;
    ``skip_box_thr``: scores below it are left out; ``conf_type``: the WBF score mode
    (``docs/fusion.md``); ``sigma`` / ``soft_nms_thr``: soft-NMS's Gaussian sigma and final
    score floor; ``out``: the fused COCO results file.
    """

    predictions: list[str] = []
    names: list[str] | None = None
    gt: str | None = None
    method: Literal["wbf", "nms", "soft_nms"] = "wbf"
    weights: list[Annotated[float, Field(gt=0)]] | None = None
    iou_thr: float = Field(0.55, gt=0, le=1)
    skip_box_thr: float = Field(0.0, ge=0, le=1)
    conf_type: Literal["avg", "max", "box_and_model_avg",
                       "absent_model_aware_avg"] = "box_and_model_avg"
    sigma: float = Field(0.5, gt=0)
    soft_nms_thr: float = Field(0.001, ge=0, le=1)
    out: str = "fused.json"


# ------------------------------------------------------------------ reading


def _check_result(path: Path, i: int, r: Any) -> dict[str, Any]:
    if not isinstance(r, dict) or not {"image_id", "bbox", "score"} <= set(r):
        raise DataError(f"{path}: entry {i} is not a COCO result with image_id, bbox and score")
    bbox = r["bbox"]
    if (not isinstance(bbox, list) or len(bbox) != 4
            or not all(isinstance(v, (int, float)) and math.isfinite(v) for v in bbox)):
        raise DataError(f"{path}: entry {i} has bbox {bbox!r}, expected 4 finite numbers")
    if bbox[2] < 0 or bbox[3] < 0:
        raise DataError(f"{path}: entry {i} has bbox {bbox!r} with a negative width or height; "
                        "COCO boxes are [x, y, w, h] with w, h >= 0 (not [x1, y1, x2, y2])")
    score = r["score"]
    if not isinstance(score, (int, float)) or not math.isfinite(score):
        raise DataError(f"{path}: entry {i} has score {score!r}, expected a finite number")
    if not 0 <= score <= 1:
        raise DataError(f"{path}: entry {i} has score {score!r}; fusion weighs confidences in "
                        "[0, 1] (convert logits or percentages to probabilities)")
    return {"image_id": int(r["image_id"]), "category_id": int(r.get("category_id", 1)),
            "bbox": [float(v) for v in bbox], "score": float(score)}


def load_coco_results(path: str | Path) -> list[dict[str, Any]]:
    """A checked COCO results file: ``[{image_id, category_id, bbox: [x, y, w, h] px, score}]``.

    ``category_id`` defaults to 1; ids become ints, boxes and scores floats.

    Raises:
        DataError: not a JSON list, or an entry without image_id, bbox and score, a bbox that
            is not 4 finite numbers with w, h >= 0, or a score outside [0, 1].
    """
    path = Path(path)
    data = read_json(path, "predictions")
    if not isinstance(data, list):
        raise DataError(f"{path}: a COCO results file is a JSON list, got {type(data).__name__}")
    return [_check_result(path, i, r) for i, r in enumerate(data)]


def image_sizes_from_gt(gt: str | Path | dict[str, Any], source: str | None = None
                        ) -> ImageSizes:
    """``image_id -> (width, height)`` in pixels from COCO ground truth (a file or its dict).

    ``source`` names it in errors. (Checked, normalised ground truth for AP:
    ``saropt.detect.ap.load_coco_gt``.)

    Raises:
        DataError: an unreadable file, no ``images`` list, or an image without id, width and
            height.
    """
    source = source or ("ground truth" if isinstance(gt, dict) else str(gt))
    data = gt if isinstance(gt, dict) else read_json(Path(gt), "ground-truth")
    if not isinstance(data, dict) or not isinstance(data.get("images"), list):
        raise DataError(f"{source}: a COCO ground-truth file needs an 'images' list")
    for i, im in enumerate(data["images"]):
        if not isinstance(im, dict) or not {"id", "width", "height"} <= set(im):
            raise DataError(f"{source}: images[{i}] needs id, width and height")
    return {int(im["id"]): (float(im["width"]), float(im["height"])) for im in data["images"]}


# ------------------------------------------------------------------ normalisation


def _normalised_arrays(results: Sequence[dict[str, Any]], size: tuple[float, float]
                       ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Boxes (xyxy) in [0, 1], scores and labels of one model on one image (zero-area dropped)."""
    if not results:
        return np.zeros((0, 4)), np.zeros(0), np.zeros(0)
    w, h = size
    xywh = np.array([r["bbox"] for r in results], dtype=np.float64)
    boxes = np.stack([xywh[:, 0] / w, xywh[:, 1] / h, (xywh[:, 0] + xywh[:, 2]) / w,
                      (xywh[:, 1] + xywh[:, 3]) / h], axis=1).clip(0.0, 1.0)
    keep = (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])
    scores = np.array([r["score"] for r in results], dtype=np.float64)
    labels = np.array([r["category_id"] for r in results], dtype=np.float64)
    return boxes[keep], scores[keep], labels[keep]


def per_image_inputs(results_lists: Sequence[Sequence[dict[str, Any]]], image_sizes: ImageSizes,
                     image_id: int) -> tuple[list[np.ndarray], list[np.ndarray], list[np.ndarray]]:
    """The normalised per-model lists that ``ensemble_boxes`` takes, for one image.

    Per model: boxes ``(N, 4)`` xyxy divided by the image's width and height and clipped to
    [0, 1] (zero-area boxes dropped), scores ``(N,)``, labels ``(N,)`` (float, as
    ``ensemble_boxes`` takes them).
    """
    boxes, scores, labels = [], [], []
    for results in results_lists:
        b, s, lab = _normalised_arrays([r for r in results if r["image_id"] == image_id],
                                       image_sizes[image_id])
        boxes.append(b)
        scores.append(s)
        labels.append(lab)
    return boxes, scores, labels


def _denormalise(boxes: np.ndarray, scores: np.ndarray, labels: np.ndarray, image_id: int,
                 size: tuple[float, float]) -> list[dict[str, Any]]:
    w, h = size
    out = []
    for (x1, y1, x2, y2), s, lab in zip(boxes, scores, labels):
        out.append({"image_id": image_id, "category_id": int(lab),
                    "bbox": [float(x1 * w), float(y1 * h), float((x2 - x1) * w),
                             float((y2 - y1) * h)], "score": float(s)})
    return out


# ------------------------------------------------------------------ fusion


def fuse_arrays(boxes: list[np.ndarray], scores: list[np.ndarray], labels: list[np.ndarray],
                method: str, weights: Sequence[float], iou_thr: float, skip_box_thr: float,
                conf_type: str, sigma: float, soft_nms_thr: float
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One image through ``ensemble_boxes``: fused ``(boxes (M, 4), scores (M,), labels (M,))``.

    Inputs are per-model lists already normalised to [0, 1] (:func:`per_image_inputs`); the
    output boxes are normalised too. ``wbf`` is ``weighted_boxes_fusion`` (``skip_box_thr``
    and ``conf_type`` passed to it); ``nms`` and ``soft_nms`` drop scores below
    ``skip_box_thr`` first and take ``sigma`` / ``soft_nms_thr`` (soft-NMS only).
    """
    import ensemble_boxes

    if sum(len(b) for b in boxes) == 0:
        return np.zeros((0, 4)), np.zeros(0), np.zeros(0)
    w = list(weights)
    if method == "wbf":
        return ensemble_boxes.weighted_boxes_fusion(boxes, scores, labels, weights=w,
                                                    iou_thr=iou_thr, skip_box_thr=skip_box_thr,
                                                    conf_type=conf_type)
    keep = [s >= skip_box_thr for s in scores]
    boxes = [b[k] for b, k in zip(boxes, keep)]
    scores = [s[k] for s, k in zip(scores, keep)]
    labels = [lab[k] for lab, k in zip(labels, keep)]
    if sum(len(b) for b in boxes) == 0:
        return np.zeros((0, 4)), np.zeros(0), np.zeros(0)
    if method == "nms":
        return ensemble_boxes.nms(boxes, scores, labels, iou_thr=iou_thr, weights=w)
    return ensemble_boxes.soft_nms(boxes, scores, labels, iou_thr=iou_thr, sigma=sigma,
                                   thresh=soft_nms_thr, weights=w)


def _check_args(n_models: int, method: str, weights: Sequence[float] | None,
                conf_type: str) -> list[float]:
    if n_models < 1:
        raise SaroptError("fusion needs at least one results list")
    if method not in METHODS:
        raise SaroptError(f"fusion method {method!r} is not one of {', '.join(METHODS)}")
    if conf_type not in CONF_TYPES:
        raise SaroptError(f"conf_type {conf_type!r} is not one of {', '.join(CONF_TYPES)}")
    w = [1.0] * n_models if weights is None else [float(x) for x in weights]
    if len(w) != n_models:
        raise SaroptError(f"{len(w)} weights given for {n_models} prediction files")
    if any(x <= 0 for x in w):
        raise SaroptError(f"weights must be positive, got {w}")
    return w


def fuse_coco_results(results_lists: Sequence[Sequence[dict[str, Any]]],
                      image_sizes: ImageSizes, method: str = "wbf",
                      weights: Sequence[float] | None = None, iou_thr: float = 0.55,
                      skip_box_thr: float = 0.0, conf_type: str = "box_and_model_avg",
                      sigma: float = 0.5, soft_nms_thr: float = 0.001,
                      progress: bool = False) -> list[dict[str, Any]]:
    """Fuse several models' COCO results image by image; returns one COCO results list.

    ``image_sizes`` maps every image id to ``(width, height)`` (see :func:`image_sizes_from_gt`);
    a prediction on an image not in it is an error. ``method`` is ``wbf``, ``nms`` or
    ``soft_nms``; ``weights`` one positive number per model; ``conf_type`` the WBF score mode;
    the other arguments as in :class:`FuseConfig`. Boxes come back in pixels; images without
    any prediction give nothing.

    Raises:
        SaroptError: no results list, an unknown method or ``conf_type``, or weights of the
            wrong count or not positive.
        DataError: a prediction on an image not in ``image_sizes``.
    """
    w = _check_args(len(results_lists), method, weights, conf_type)
    by_image: list[dict[int, list[dict[str, Any]]]] = []
    for k, results in enumerate(results_lists):
        groups: dict[int, list[dict[str, Any]]] = defaultdict(list)
        for r in results:
            if r["image_id"] not in image_sizes:
                raise DataError(f"model {k}: prediction on image_id {r['image_id']}, which is "
                                "not in the ground-truth images")
            groups[r["image_id"]].append(r)
        by_image.append(groups)
    image_ids = sorted(set().union(*[set(g) for g in by_image]))
    fused: list[dict[str, Any]] = []
    for image_id in _maybe_progress(image_ids, progress):
        arrays = [_normalised_arrays(g.get(image_id, []), image_sizes[image_id])
                  for g in by_image]
        b, s, lab = fuse_arrays([a[0] for a in arrays], [a[1] for a in arrays],
                                [a[2] for a in arrays], method, w, iou_thr, skip_box_thr,
                                conf_type, sigma, soft_nms_thr)
        fused.extend(_denormalise(b, s, lab, image_id, image_sizes[image_id]))
    return fused


def _maybe_progress(items: list[int], progress: bool) -> Any:
    if not progress:
        return items
    from tqdm import tqdm

    return tqdm(items, desc="fusing", unit="image")


def fuse_files(cfg: FuseConfig, progress: bool = True) -> tuple[Path, dict[str, Any]]:
    """Run ``cfg`` (prediction files + GT) and write the fused COCO results file atomically.

    Returns the written path and a summary (method, input and fused counts, weights, IoU).

    Raises:
        SaroptError: no prediction files, no ``gt``, bad fusion arguments, or ``cfg.out``
            that would overwrite an input or another command's output.
        DataError: unreadable inputs, or predictions on image ids not in ``gt``.
    """
    from saropt.utils.io import write_json_atomic
    from saropt.utils.outdir import check_out_file

    check_out_file(cfg.out, inputs=[*cfg.predictions, cfg.gt])

    if len(cfg.predictions) < 1:
        raise SaroptError("no prediction files given (positional PRED.json or predictions=[...])")
    if cfg.gt is None:
        raise SaroptError("the ground-truth COCO file is needed for image sizes (--gt GT.json)")
    sizes = image_sizes_from_gt(cfg.gt)
    lists = [load_coco_results(p) for p in cfg.predictions]
    for path, results in zip(cfg.predictions, lists):
        unknown = {r["image_id"] for r in results} - set(sizes)
        if unknown:
            raise DataError(f"{path}: predictions on image ids {sorted(unknown)[:5]} that are "
                            f"not in {cfg.gt}")
    fused = fuse_coco_results(lists, sizes, cfg.method, cfg.weights, cfg.iou_thr,
                              cfg.skip_box_thr, cfg.conf_type, cfg.sigma, cfg.soft_nms_thr,
                              progress=progress)
    out = write_json_atomic(cfg.out, fused)
    summary = {"out": str(out), "method": cfg.method, "n_inputs": [len(x) for x in lists],
               "n_fused": len(fused), "weights": cfg.weights or [1.0] * len(lists),
               "iou_thr": cfg.iou_thr, "skip_box_thr": cfg.skip_box_thr,
               "conf_type": cfg.conf_type if cfg.method == "wbf" else None}
    return out, summary
