"""AP@0.5 three ways: hand-computed cases, agreement with pycocotools, ground truth -> 1.0."""

from __future__ import annotations

import contextlib
import io
import json
import random

import numpy as np
import pytest

from saropt.detect.ap import (
    ap_voc07_11pt,
    ap_voc_all_point,
    evaluate_coco_results,
    gt_as_results,
)
from saropt.errors import DataError


def _gt(images: dict[int, list[list[float]]], crowd: dict[int, list[list[float]]] | None = None,
        meta: dict[int, dict] | None = None) -> dict:
    """COCO ground truth from {image_id: [[x, y, w, h], ...]}."""
    anns = []
    for img, boxes in images.items():
        anns += [{"image_id": img, "category_id": 1, "bbox": b, "area": b[2] * b[3],
                  "iscrowd": 0} for b in boxes]
    for img, boxes in (crowd or {}).items():
        anns += [{"image_id": img, "category_id": 1, "bbox": b, "area": b[2] * b[3],
                  "iscrowd": 1} for b in boxes]
    for i, a in enumerate(anns):
        a["id"] = i + 1
    return {"images": [{"id": i, "file_name": f"{i}.jpg", "width": 200, "height": 200,
                        **(meta or {}).get(i, {})} for i in images],
            "annotations": anns, "categories": [{"id": 1, "name": "ship"}]}


def _det(img: int, box: list[float], score: float) -> dict:
    return {"image_id": img, "category_id": 1, "bbox": box, "score": score}


# Hand-computed example: one image, 3 ships A, B, C; 4 detections
#   0.9 on A (TP), 0.8 on empty sea (FP), 0.7 on B (TP), 0.6 on empty sea (FP); C is missed.
#   recall    = 1/3, 1/3, 2/3, 2/3
#   precision = 1,   1/2, 2/3, 1/2
# VOC07 11-point: t = 0, .1, .2, .3 -> max precision at recall >= t = 1 (4 points);
#   t = .4, .5, .6 -> 2/3 (3 points); t = .7 ... 1 -> 0 (4 points): AP = (4 + 2) / 11 = 6/11.
# VOC all-point: envelope 1 on (0, 1/3], 2/3 on (1/3, 2/3]: AP = 1/3 + 2/9 = 5/9.
# COCO 101-point: thresholds 0.00..0.33 (34) -> 1, 0.34..0.66 (33) -> 2/3, 0.67..1.00 (34) -> 0:
#   AP = (34 + 33 * 2/3) / 101 = 56/101.
HAND_GT = _gt({1: [[10, 10, 20, 10], [60, 60, 20, 10], [120, 120, 20, 10]]})
HAND_DETS = [_det(1, [10, 10, 20, 10], 0.9), _det(1, [150, 20, 20, 10], 0.8),
             _det(1, [61, 60, 20, 10], 0.7), _det(1, [20, 150, 20, 10], 0.6)]


def test_hand_computed_three_definitions():
    r = evaluate_coco_results(HAND_GT, HAND_DETS)["all"]
    assert r["ap50"]["voc07_11pt"] == pytest.approx(6 / 11)
    assert r["ap50"]["voc_all_point"] == pytest.approx(5 / 9)
    assert r["ap50"]["coco_101pt"] == pytest.approx(56 / 101)
    assert r["n_gt"] == 3 and r["n_detections"] == 4


def test_ap_formulas_on_explicit_curves():
    rec, prec = np.array([1 / 3, 1 / 3, 2 / 3, 2 / 3]), np.array([1, 0.5, 2 / 3, 0.5])
    assert ap_voc07_11pt(rec, prec) == pytest.approx(6 / 11)
    assert ap_voc_all_point(rec, prec) == pytest.approx(5 / 9)
    # a perfect curve and an empty one
    assert ap_voc07_11pt(np.array([0.5, 1.0]), np.array([1.0, 1.0])) == 1.0
    assert ap_voc_all_point(np.array([]), np.array([])) == 0.0


def test_duplicate_detection_is_a_false_positive():
    # 1 ship, two detections on it: TP then FP -> recall 1 at precision 1 first: AP 1 everywhere
    gt = _gt({1: [[10, 10, 20, 10]]})
    r = evaluate_coco_results(gt, [_det(1, [10, 10, 20, 10], 0.9),
                                   _det(1, [11, 10, 20, 10], 0.8)])["all"]
    assert r["per_category"]["ship"]["false_positives"] == 1
    assert all(v == pytest.approx(1.0) for v in r["ap50"].values())
    # duplicate first (higher score on a shifted box that still matches, then the exact one)
    # still 1 TP + 1 FP, but now half the ships: 2 ships, only one found
    gt2 = _gt({1: [[10, 10, 20, 10], [100, 100, 20, 10]]})
    r2 = evaluate_coco_results(gt2, [_det(1, [10, 10, 20, 10], 0.9),
                                     _det(1, [10, 10, 20, 10], 0.8)])["all"]
    # recall 1/2 at precision 1: VOC07 = 6/11 (t=0..0.5), all-point 1/2, COCO 51/101
    assert r2["ap50"]["voc07_11pt"] == pytest.approx(6 / 11)
    assert r2["ap50"]["voc_all_point"] == pytest.approx(0.5)
    assert r2["ap50"]["coco_101pt"] == pytest.approx(51 / 101)


def test_crowd_or_difficult_boxes_are_ignored():
    # one normal ship found, a difficult ship detected (ignored, not FP), nothing else
    gt = _gt({1: [[10, 10, 20, 10]]}, crowd={1: [[100, 100, 20, 10]]})
    dets = [_det(1, [100, 100, 20, 10], 0.95), _det(1, [10, 10, 20, 10], 0.9)]
    r = evaluate_coco_results(gt, dets)["all"]
    assert r["n_gt"] == 1 and r["n_ignored"] == 1
    assert all(v == pytest.approx(1.0) for v in r["ap50"].values())


def test_ground_truth_as_prediction_scores_one():
    rng = random.Random(1)
    gt = _gt({i: [[rng.uniform(0, 150), rng.uniform(0, 150), rng.uniform(5, 40),
                   rng.uniform(5, 40)] for _ in range(rng.randint(0, 5))] for i in range(20)})
    r = evaluate_coco_results(gt, gt_as_results(gt))["all"]
    assert r["ap50"] == {"voc07_11pt": 1.0, "voc_all_point": 1.0, "coco_101pt": 1.0}


def _pycocotools_ap50(gt: dict, dets: list[dict]) -> float:
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    with contextlib.redirect_stdout(io.StringIO()):
        coco = COCO()
        coco.dataset = json.loads(json.dumps(gt))
        coco.createIndex()
        ev = COCOeval(coco, coco.loadRes(json.loads(json.dumps(dets))), "bbox")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return float(ev.stats[1])  # AP at IoU=.50, area all, maxDets 100


@pytest.mark.parametrize("seed", range(6))
def test_coco_ap_equals_pycocotools_on_perturbed_predictions(seed):
    rng = random.Random(seed)
    gt = _gt({i: [[rng.uniform(0, 160), rng.uniform(0, 160), rng.uniform(4, 40),
                   rng.uniform(4, 40)] for _ in range(rng.randint(0, 6))] for i in range(15)})
    dets = []
    for a in gt["annotations"]:
        if rng.random() < 0.8:  # found, box jittered by up to 40% of its size
            x, y, w, h = a["bbox"]
            j = lambda v: v * rng.uniform(-0.4, 0.4)  # noqa: E731
            dets.append(_det(a["image_id"], [x + j(w), y + j(h), w * rng.uniform(0.7, 1.3),
                                             h * rng.uniform(0.7, 1.3)], rng.random()))
    for _ in range(rng.randint(0, 25)):  # false alarms
        dets.append(_det(rng.randrange(15), [rng.uniform(0, 180), rng.uniform(0, 180),
                                             rng.uniform(4, 30), rng.uniform(4, 30)],
                         rng.random()))
    ours = evaluate_coco_results(gt, dets)["all"]["ap50"]
    assert ours["coco_101pt"] == pytest.approx(_pycocotools_ap50(gt, dets), abs=1e-12)
    # the three definitions differ only by interpolation on the same matches (loosely close)
    assert abs(ours["voc_all_point"] - ours["coco_101pt"]) < 0.05


def test_subsets_by_meta_key():
    gt = _gt({1: [[10, 10, 20, 10]], 2: [[10, 10, 20, 10]]},
             meta={1: {"scene": "inshore"}, 2: {"scene": "offshore"}})
    r = evaluate_coco_results(gt, [_det(1, [10, 10, 20, 10], 0.9)], subsets="scene")
    assert r["subsets"]["scene=inshore"]["ap50"]["voc_all_point"] == pytest.approx(1.0)
    assert r["subsets"]["scene=offshore"]["ap50"]["coco_101pt"] == pytest.approx(0.0)
    assert r["all"]["ap50"]["voc_all_point"] == pytest.approx(0.5)
    assert set(r["curves"]) == {"all", "scene=inshore", "scene=offshore"}


def test_no_predictions_and_no_ground_truth():
    assert evaluate_coco_results(HAND_GT, [])["all"]["ap50"]["coco_101pt"] == 0.0
    empty = _gt({1: []})
    r = evaluate_coco_results(empty, [_det(1, [0, 0, 5, 5], 0.5)])["all"]
    assert r["ap50"]["voc_all_point"] is None and r["ap50"]["coco_101pt"] is None


def test_bad_predictions_name_the_problem(tmp_path):
    with pytest.raises(DataError, match="does not have: 99"):
        evaluate_coco_results(HAND_GT, [_det(99, [0, 0, 5, 5], 0.5)])
    bad = tmp_path / "p.json"
    bad.write_text("{not json")
    with pytest.raises(DataError, match="p.json"):
        evaluate_coco_results(HAND_GT, bad)
    with pytest.raises(DataError, match="does not exist"):
        evaluate_coco_results(tmp_path / "missing.json", [])
