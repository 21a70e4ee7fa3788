"""Ground truth and foreign results checked before any AP; the three AP definitions against
pycocotools and an independent VOC implementation on randomised inputs with the awkward cases
(annotation id 0, zero-area boxes, category ids from 0, more detections than max_dets)."""

from __future__ import annotations

import contextlib
import copy
import io
import json
import random

import numpy as np
import pytest

from saropt.detect.ap import evaluate_coco_results
from saropt.errors import DataError

# ----------------------------------------------------------------------------- references


def _ref_iou(d: list[float], g: list[float]) -> float:
    """Plain-Python IoU of two [x, y, w, h] boxes (0 without a positive-area overlap)."""
    iw = min(d[0] + d[2], g[0] + g[2]) - max(d[0], g[0])
    ih = min(d[1] + d[3], g[1] + g[3]) - max(d[1], g[1])
    if iw <= 0 or ih <= 0:
        return 0.0
    inter = iw * ih
    return inter / (d[2] * d[3] + g[2] * g[3] - inter)


def _ref_voc(gt: dict, dets: list[dict], max_dets: int) -> tuple[float, float] | None:
    """VOC devkit-style AP (11-point, all-point) averaged over categories with ground truth,
    written independently of saropt (loops as in the devkit's voc_eval.py / voc_ap)."""
    boxes = [a for a in gt["annotations"] if a["bbox"][2] > 0 and a["bbox"][3] > 0]
    aps11, apsall = [], []
    for cat in sorted({c["id"] for c in gt["categories"]}):
        objs = {}
        for a in boxes:
            if a["category_id"] == cat:
                objs.setdefault(a["image_id"], []).append([a["bbox"], bool(a.get("iscrowd")),
                                                          False])
        npos = sum(1 for v in objs.values() for o in v if not o[1])
        if npos == 0:
            continue
        mine = [d for d in dets if d["category_id"] == cat]
        per_img: dict[int, list[dict]] = {}
        for d in mine:
            per_img.setdefault(d["image_id"], []).append(d)
        mine = [d for d in mine if d in sorted(per_img[d["image_id"]],
                                               key=lambda x: -x["score"])[:max_dets]]
        mine = sorted(mine, key=lambda x: -x["score"])
        tp, fp = [], []
        for d in mine:
            cands = objs.get(d["image_id"], [])
            ovs = [_ref_iou(d["bbox"], o[0]) for o in cands]
            best = max(range(len(ovs)), key=lambda j: ovs[j]) if ovs else -1
            if best >= 0 and ovs[best] >= 0.5:
                if cands[best][1]:
                    continue  # on a difficult / crowd box: neither
                if not cands[best][2]:
                    cands[best][2] = True
                    tp.append(1), fp.append(0)
                else:
                    tp.append(0), fp.append(1)
            else:
                tp.append(0), fp.append(1)
        rec, prec, ctp, cfp = [], [], 0, 0
        for t, f in zip(tp, fp):
            ctp, cfp = ctp + t, cfp + f
            rec.append(ctp / npos)
            prec.append(ctp / (ctp + cfp))
        ap11 = 0.0
        for t in [i / 10 for i in range(11)]:
            ps = [p for r, p in zip(rec, prec) if r >= t]
            ap11 += (max(ps) if ps else 0.0) / 11
        mrec, mpre = [0.0, *rec, 1.0], [0.0, *prec, 0.0]
        for i in range(len(mpre) - 2, -1, -1):
            mpre[i] = max(mpre[i], mpre[i + 1])
        apall = sum((mrec[i + 1] - mrec[i]) * mpre[i + 1] for i in range(len(mrec) - 1)
                    if mrec[i + 1] != mrec[i])
        aps11.append(ap11)
        apsall.append(apall)
    return (float(np.mean(aps11)), float(np.mean(apsall))) if aps11 else None


def _pycocotools(gt: dict, dets: list[dict], max_dets: int) -> float:
    """pycocotools AP50 (area all, ``max_dets``) on ``gt`` as given."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    with contextlib.redirect_stdout(io.StringIO()):
        coco = COCO()
        coco.dataset = json.loads(json.dumps(gt))
        coco.createIndex()
        ev = COCOeval(coco, coco.loadRes(json.loads(json.dumps(dets))), "bbox")
        ev.params.iouThrs = np.array([0.5])
        ev.params.maxDets = [max_dets]
        ev.params.areaRng, ev.params.areaRngLbl = [[0.0, 1e10]], ["all"]
        ev.evaluate()
        ev.accumulate()
    p = ev.eval["precision"][0, :, :, 0, 0]
    per_cat = [p[:, k][p[:, k] > -1].mean() for k in range(p.shape[1]) if (p[:, k] > -1).any()]
    return float(np.mean(per_cat))


def _random_case(seed: int) -> tuple[dict, list[dict]]:
    """GT with annotation ids from 0, categories 0 and 1, some zero-area boxes; detections:
    jittered GT, duplicates, false alarms, zero-area boxes, distinct scores."""
    rng = random.Random(seed)
    images, anns = [], []
    for i in range(1, 13):
        images.append({"id": i, "file_name": f"img_{i}.png", "width": 200, "height": 200})
        for _ in range(rng.randint(0, 6)):
            w, h = rng.uniform(4, 40), rng.uniform(4, 40)
            if rng.random() < 0.1:
                w = 0.0  # a degenerate box, as converted files have
            anns.append({"id": len(anns), "image_id": i, "category_id": rng.choice([0, 1]),
                         "bbox": [rng.uniform(0, 160), rng.uniform(0, 160), w, h],
                         "iscrowd": 0})
    gt = {"images": images, "annotations": anns,
          "categories": [{"id": 0, "name": "ship"}, {"id": 1, "name": "boat"}]}
    dets = []
    for a in anns:
        for _ in range(rng.choice([0, 1, 1, 1, 2])):  # missed, found, found twice
            x, y, w, h = a["bbox"]
            dets.append({"image_id": a["image_id"], "category_id": a["category_id"],
                         "bbox": [x + rng.uniform(-4, 4), y + rng.uniform(-4, 4),
                                  w * rng.uniform(0.8, 1.2), h * rng.uniform(0.8, 1.2)],
                         "score": rng.random()})
    for _ in range(rng.randint(5, 40)):
        zero = rng.random() < 0.1
        dets.append({"image_id": rng.randint(1, 12), "category_id": rng.choice([0, 1]),
                     "bbox": [rng.uniform(0, 180), rng.uniform(0, 180),
                              0.0 if zero else rng.uniform(4, 30), rng.uniform(4, 30)],
                     "score": rng.random()})
    return gt, dets


def _clean(gt: dict) -> dict:
    """The same ground truth written cleanly: ids from 1, no zero-area boxes, areas set."""
    gt = copy.deepcopy(gt)
    anns = [a for a in gt["annotations"] if a["bbox"][2] > 0 and a["bbox"][3] > 0]
    for k, a in enumerate(anns):
        a["id"], a["area"] = k + 1, a["bbox"][2] * a["bbox"][3]
    gt["annotations"] = anns
    return gt


@pytest.mark.parametrize("seed", range(8))
@pytest.mark.parametrize("max_dets", [3, 100])
def test_three_definitions_against_references_on_awkward_inputs(seed, max_dets):
    gt, dets = _random_case(seed)
    ours = evaluate_coco_results(gt, dets, max_dets=max_dets)
    ap = ours["all"]["ap50"]
    voc11, vocall = _ref_voc(gt, dets, max_dets)
    assert ap["voc07_11pt"] == pytest.approx(voc11, abs=1e-12)
    assert ap["voc_all_point"] == pytest.approx(vocall, abs=1e-12)
    assert ap["coco_101pt"] == pytest.approx(_pycocotools(_clean(gt), dets, max_dets), abs=1e-12)
    # the written-as-is file gives the same numbers as the clean one
    assert evaluate_coco_results(_clean(gt), dets, max_dets=max_dets)["all"]["ap50"] == ap
    n_zero = sum(1 for a in gt["annotations"] if a["bbox"][2] == 0)
    assert ours["input_checks"]["dropped_empty_gt_boxes"] == n_zero


def test_annotation_id_0_and_category_0_score_one():
    gt = {"images": [{"id": 1, "file_name": "a.jpg", "width": 100, "height": 100},
                     {"id": 2, "file_name": "b.jpg", "width": 100, "height": 100}],
          "annotations": [{"id": 0, "image_id": 1, "category_id": 0, "bbox": [10, 10, 20, 10]},
                          {"id": 1, "image_id": 1, "category_id": 0, "bbox": [50, 50, 20, 10]},
                          {"id": 2, "image_id": 2, "category_id": 0, "bbox": [5, 60, 10, 20]}],
          "categories": [{"id": 0, "name": "ship"}]}
    dets = [{"image_id": a["image_id"], "category_id": 0, "bbox": a["bbox"], "score": s}
            for a, s in zip(gt["annotations"], (0.9, 0.8, 0.7))]
    raw = copy.deepcopy(gt)
    for a in raw["annotations"]:
        a.update(iscrowd=0, area=a["bbox"][2] * a["bbox"][3])
    assert _pycocotools(raw, dets, 100) < 0.9  # what pycocotools alone gives: id 0 unmatched
    ap = evaluate_coco_results(gt, dets)["all"]["ap50"]
    assert ap == {"voc07_11pt": 1.0, "voc_all_point": 1.0, "coco_101pt": 1.0}


def test_zero_area_detection_on_zero_area_box_is_no_hit():
    gt = {"images": [{"id": 1, "file_name": "a.jpg", "width": 100, "height": 100}],
          "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [10, 10, 20, 10]},
                          {"id": 2, "image_id": 1, "category_id": 1, "bbox": [40, 40, 0, 10]}],
          "categories": [{"id": 1, "name": "ship"}]}
    dets = [{"image_id": 1, "category_id": 1, "bbox": [40, 40, 0, 10], "score": 0.9},
            {"image_id": 1, "category_id": 1, "bbox": [10, 10, 20, 10], "score": 0.8}]
    r = evaluate_coco_results(gt, dets)["all"]
    assert r["n_gt"] == 1
    assert r["per_category"]["ship"]["false_positives"] == 1  # the zero-area detection
    assert r["ap50"]["voc_all_point"] == pytest.approx(0.5)
    assert r["ap50"]["coco_101pt"] == pytest.approx(0.5)


def test_repeated_image_ids_are_refused_by_name():
    gt = {"images": [{"id": 3, "file_name": "a.jpg", "width": 9, "height": 9},
                     {"id": 3, "file_name": "b.jpg", "width": 9, "height": 9}],
          "annotations": [], "categories": [{"id": 1, "name": "ship"}]}
    with pytest.raises(DataError, match="repeated image ids 3"):
        evaluate_coco_results(gt, [])


GT2 = {"images": [{"id": 7, "file_name": "JPEGImages/000007.jpg", "width": 100, "height": 100},
                  {"id": 8, "file_name": "000008.jpg", "width": 100, "height": 100}],
       "annotations": [{"id": 1, "image_id": 7, "category_id": 1, "bbox": [10, 10, 20, 10]},
                       {"id": 2, "image_id": 8, "category_id": 1, "bbox": [10, 10, 20, 10]}],
       "categories": [{"id": 1, "name": "ship"}]}


def test_string_image_ids_match_file_names():
    dets = [{"image_id": "000007", "category_id": 1, "bbox": [10, 10, 20, 10], "score": 0.9},
            {"image_id": "000008.jpg", "category_id": 1, "bbox": [10, 10, 20, 10], "score": 0.8}]
    assert evaluate_coco_results(GT2, dets)["all"]["ap50"]["coco_101pt"] == 1.0
    ambiguous = copy.deepcopy(GT2)
    ambiguous["images"][1]["file_name"] = "other/000007.png"
    with pytest.raises(DataError, match="'000007' names 2 ground-truth images"):
        evaluate_coco_results(ambiguous, dets[:1])
    with pytest.raises(DataError, match="'nope' is no ground-truth image"):
        evaluate_coco_results(GT2, [{**dets[0], "image_id": "nope"}])


@pytest.mark.parametrize("bad, match", [
    ({"score": float("nan")}, "score nan is not a finite confidence"),
    ({"score": -0.2}, "score -0.2 is not a finite confidence"),
    ({"bbox": [1, 2, float("nan"), 4]}, "not four finite numbers"),
    ({"bbox": [1, 2, -3, 4]}, "w, h >= 0"),
    ({"image_id": 99}, "1 detection.s. on image ids the ground truth does not have: 99"),
])
def test_bad_detections_are_one_line_errors(bad, match):
    det = {"image_id": 7, "category_id": 1, "bbox": [10, 10, 20, 10], "score": 0.9, **bad}
    with pytest.raises(DataError, match=match) as err:
        evaluate_coco_results(GT2, [det])
    assert "\n" not in str(err.value)


def test_results_as_coco_style_dict_and_category_names():
    dets = {"annotations": [{"image_id": 7, "category_id": "ship", "bbox": [10, 10, 20, 10],
                             "score": 0.9}]}
    r = evaluate_coco_results(GT2, dets)["all"]
    assert r["per_category"]["ship"]["true_positives"] == 1
    with pytest.raises(DataError, match="category_id 'boat' is neither"):
        evaluate_coco_results(GT2, [{**dets["annotations"][0], "category_id": "boat"}])
    with pytest.raises(DataError, match="image_id nan is neither"):
        evaluate_coco_results(GT2, [{**dets["annotations"][0], "image_id": float("nan")}])


def test_coco_reader_refuses_repeated_image_ids(tmp_path):
    from saropt.detect.datasets import CocoShips

    doc = copy.deepcopy(GT2)
    doc["images"][1]["id"] = 7
    (tmp_path / "gt.json").write_text(json.dumps(doc))
    with pytest.raises(DataError, match="gt.json: repeated image ids 7"):
        CocoShips(tmp_path, "gt.json")
