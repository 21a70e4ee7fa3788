"""Fusion through ensemble-boxes: our per-image normalisation and un-normalisation around it."""
# ruff: noqa: E402

from __future__ import annotations

import os

# ensemble-boxes' NMS is numba-jitted; compiling it costs ~9 s per test session, the plain Python
# function it wraps computes the same thing (this only applies if nothing imported numba before)
os.environ.setdefault("NUMBA_DISABLE_JIT", "1")

import json
from pathlib import Path

import ensemble_boxes
import numpy as np
import pytest

from saropt.errors import DataError, SaroptError
from saropt.fuse import cli as fuse_cli
from saropt.fuse import fuse_coco_results, image_sizes_from_gt, load_coco_results
from saropt.fuse.fusion import per_image_inputs


def _world(seed: int = 0, n_images: int = 5, n_models: int = 3):
    """GT with images of different sizes and noisy predictions from ``n_models`` models."""
    rng = np.random.default_rng(seed)
    images, anns, preds = [], [], [[] for _ in range(n_models)]
    for i in range(n_images):
        w, h = int(rng.integers(200, 600)), int(rng.integers(150, 500))
        images.append({"id": i + 10, "file_name": f"img{i}.png", "width": w, "height": h})
        for _ in range(int(rng.integers(1, 6))):
            x, y = rng.uniform(0, w - 40), rng.uniform(0, h - 30)
            bw, bh = rng.uniform(8, 40), rng.uniform(6, 30)
            anns.append({"id": len(anns) + 1, "image_id": i + 10, "category_id": 1,
                         "bbox": [x, y, bw, bh], "area": bw * bh, "iscrowd": 0})
            for m in range(n_models):
                if rng.random() < 0.8:
                    j = rng.normal(0, 2, 4)
                    preds[m].append({"image_id": i + 10, "category_id": 1,
                                     "bbox": [x + j[0], y + j[1], bw + j[2], bh + j[3]],
                                     "score": float(rng.uniform(0.05, 1.0))})
        for m in range(n_models):  # a false alarm each, some crossing the border
            preds[m].append({"image_id": i + 10, "category_id": 1,
                             "bbox": [float(rng.uniform(-10, w)), float(rng.uniform(0, h)),
                                      20.0, 15.0], "score": float(rng.uniform(0, 0.6))})
    gt = {"images": images, "annotations": anns, "categories": [{"id": 1, "name": "ship"}]}
    return gt, preds


def _unnormalise(boxes, scores, labels, image_id, size):
    w, h = size
    return sorted((image_id, int(lab), round(float(s), 6), round(float(x1 * w), 4),
                   round(float(y1 * h), 4), round(float((x2 - x1) * w), 4),
                   round(float((y2 - y1) * h), 4))
                  for (x1, y1, x2, y2), s, lab in zip(boxes, scores, labels))


def _ours(results):
    return sorted((r["image_id"], r["category_id"], round(r["score"], 6),
                   *[round(v, 4) for v in r["bbox"]]) for r in results)


def _direct(preds, sizes, call):
    expected = []
    for image_id in sorted(sizes):
        b, s, lab = per_image_inputs(preds, sizes, image_id)
        if sum(len(x) for x in b) == 0:
            continue
        expected += _unnormalise(*call(b, s, lab), image_id, sizes[image_id])
    return sorted(expected)


@pytest.mark.parametrize("conf_type", ["avg", "box_and_model_avg", "absent_model_aware_avg"])
def test_wbf_equals_ensemble_boxes(conf_type):
    gt, preds = _world()
    sizes = image_sizes_from_gt(gt)
    w = [2.0, 1.0, 0.5]
    ours = fuse_coco_results(preds, sizes, "wbf", w, iou_thr=0.5, skip_box_thr=0.1,
                             conf_type=conf_type)
    expected = _direct(preds, sizes, lambda b, s, lab: ensemble_boxes.weighted_boxes_fusion(
        b, s, lab, weights=w, iou_thr=0.5, skip_box_thr=0.1, conf_type=conf_type))
    assert _ours(ours) == expected
    assert len(ours) > 0


def test_normalisation_is_per_image():
    gt, preds = _world(n_images=2)
    sizes = image_sizes_from_gt(gt)
    b, _, _ = per_image_inputs(preds, sizes, 10)
    r = next(p for p in preds[0] if p["image_id"] == 10 and p["bbox"][0] > 0)
    w, h = sizes[10]
    assert np.allclose(b[0][0], [r["bbox"][0] / w, r["bbox"][1] / h,
                                 (r["bbox"][0] + r["bbox"][2]) / w,
                                 (r["bbox"][1] + r["bbox"][3]) / h])
    assert all(x.min() >= 0 and x.max() <= 1 for x in b if len(x))


def test_nms_and_soft_nms_equal_ensemble_boxes():
    gt, preds = _world(seed=1)
    sizes = image_sizes_from_gt(gt)
    w = [1.0, 2.0, 1.0]
    ours = fuse_coco_results(preds, sizes, "nms", w, iou_thr=0.5)
    expected = _direct(preds, sizes, lambda b, s, lab: ensemble_boxes.nms(
        b, [x.copy() for x in s], lab, iou_thr=0.5, weights=w))
    assert _ours(ours) == expected
    ours = fuse_coco_results(preds, sizes, "soft_nms", w, iou_thr=0.5, sigma=0.3,
                             soft_nms_thr=0.01)
    expected = _direct(preds, sizes, lambda b, s, lab: ensemble_boxes.soft_nms(
        b, [x.copy() for x in s], lab, iou_thr=0.5, sigma=0.3, thresh=0.01, weights=w))
    assert _ours(ours) == expected


@pytest.mark.parametrize("conf_type", ["box_and_model_avg", "absent_model_aware_avg", "max"])
def test_fused_scores_stay_in_unit_interval_with_unequal_weights(conf_type):
    # two boxes from the heavy model in one cluster: 'avg' overflows here, the others do not
    sizes = {1: (100.0, 100.0)}
    heavy = [{"image_id": 1, "category_id": 1, "bbox": [10, 10, 20, 20], "score": 1.0},
             {"image_id": 1, "category_id": 1, "bbox": [11, 10, 20, 20], "score": 0.99}]
    light = [{"image_id": 1, "category_id": 1, "bbox": [10, 11, 20, 20], "score": 0.9}]
    avg = fuse_coco_results([heavy, light], sizes, "wbf", [3.0, 1.0], conf_type="avg")
    assert max(r["score"] for r in avg) > 1.0  # why the default is not 'avg'
    fused = fuse_coco_results([heavy, light], sizes, "wbf", [3.0, 1.0], conf_type=conf_type)
    assert all(0.0 <= r["score"] <= 1.0 for r in fused)
    gt, preds = _world(seed=2)
    fused = fuse_coco_results(preds, image_sizes_from_gt(gt), "wbf", [5.0, 1.0, 0.2],
                              conf_type=conf_type)
    assert all(0.0 <= r["score"] <= 1.0 for r in fused)


def test_bad_inputs_are_clear_errors(tmp_path):
    sizes = {1: (10.0, 10.0)}
    with pytest.raises(SaroptError, match="2 weights given for 1"):
        fuse_coco_results([[]], sizes, weights=[1, 2])
    with pytest.raises(SaroptError, match="method"):
        fuse_coco_results([[]], sizes, method="vote")
    with pytest.raises(DataError, match="image_id 7"):
        fuse_coco_results([[{"image_id": 7, "category_id": 1, "bbox": [0, 0, 1, 1],
                             "score": 1.0}]], sizes)
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps([{"image_id": 1, "bbox": [0, 0, 1], "score": 1}]))
    with pytest.raises(DataError, match=f"{bad}: entry 0 has bbox"):
        load_coco_results(bad)
    bad.write_text("{not json")
    with pytest.raises(DataError, match=f"{bad}: not valid JSON"):
        load_coco_results(bad)


def main(argv: list[str]) -> int:
    """``saropt`` with only the fuse group (the other groups are not under test here)."""
    import argparse

    from saropt import cli

    parser = argparse.ArgumentParser(prog="saropt")
    fuse_cli.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(cli.expand_short_forms(argv))
    try:
        return int(args.func(args) or 0)
    except SaroptError as err:
        print(f"saropt: error: {err}")
        return 2
    finally:
        assert cli.main  # the real entry point routes the fuse group the same way


def _write_world(tmp_path: Path, seed: int = 0):
    gt, preds = _world(seed=seed, n_models=2)
    (tmp_path / "gt.json").write_text(json.dumps(gt))
    paths = []
    for m, p in enumerate(preds):
        paths.append(tmp_path / f"p{m}.json")
        paths[-1].write_text(json.dumps(p))
    return gt, preds, paths


def test_cli_fuse_short_form_config_form_and_eval(tmp_path, capsys):
    gt, preds, paths = _write_world(tmp_path)
    out = tmp_path / "fused.json"
    rc = main(["fuse", *map(str, paths), "--gt", str(tmp_path / "gt.json"), "--weights", "2",
               "1", "--out", str(out), "--json"])
    assert rc == 0
    fused = json.loads(out.read_text())
    assert _ours(fused) == _ours(fuse_coco_results(preds, image_sizes_from_gt(gt), "wbf",
                                                   [2, 1]))
    out2 = tmp_path / "nms.json"
    rc = main(["fuse", "fuse/nms", *map(str, paths), f"gt={tmp_path / 'gt.json'}",
               f"out={out2}", "iou_thr=0.4", "--json"])
    assert rc == 0
    assert '"method": "nms"' in capsys.readouterr().out
    assert _ours(json.loads(out2.read_text())) == _ours(
        fuse_coco_results(preds, image_sizes_from_gt(gt), "nms", [1, 1], iou_thr=0.4))
    assert main(["fuse", str(paths[0]), "--gt", str(tmp_path / "missing.json")]) == 2


def test_fused_file_scores_in_detect_eval(tmp_path):
    from saropt.detect import ap
    from saropt.detect.evaluate import run_eval

    gt, preds, paths = _write_world(tmp_path, seed=3)
    fused = fuse_coco_results(preds, image_sizes_from_gt(gt), "wbf", [1, 1])
    for results in (*preds, fused):
        ap50 = ap.evaluate_coco_results(gt, results)["all"]["ap50"]
        assert set(ap50) == {"voc07_11pt", "voc_all_point", "coco_101pt"}
        assert all(0.3 < v <= 1.0 for v in ap50.values()), ap50
    # the file `saropt fuse` writes is what `saropt detect eval` scores
    out = tmp_path / "fused.json"
    assert main(["fuse", *map(str, paths), "--gt", str(tmp_path / "gt.json"), "--out",
                 str(out)]) == 0
    res = run_eval(pred=out, out=tmp_path / "eval", gt=tmp_path / "gt.json", n_gallery=0)
    assert res["all"]["ap50"] == pytest.approx(ap.evaluate_coco_results(gt, fused)["all"]["ap50"])
    assert (tmp_path / "eval" / "metrics.json").is_file()
