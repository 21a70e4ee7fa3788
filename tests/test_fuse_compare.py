"""Complementarity numbers on a hand-made case with known false alarms on land."""

from __future__ import annotations

import argparse
import json
import math

import numpy as np
import pytest
from PIL import Image

from saropt.errors import DataError
from saropt.fuse import cli as fuse_cli
from saropt.fuse import fuse_coco_results, image_sizes_from_gt, load_coco_results
from saropt.fuse.compare import complementarity, land_sea_counts, load_land_masks, on_land


def _det(image_id, bbox, score):
    return {"image_id": image_id, "category_id": 1, "bbox": bbox, "score": score}


@pytest.fixture
def case(tmp_path):
    """Image 1 (inshore): land is x < 50. Ships at sea A, B; ship C with its centre on land.
    Image 2 (offshore, all sea): one ship D that both detectors find."""
    gt = {"images": [{"id": 1, "file_name": "harbour.png", "width": 100, "height": 100,
                      "scene": "inshore"},
                     {"id": 2, "file_name": "open_sea.png", "width": 100, "height": 100,
                      "scene": "offshore"}],
          "annotations": [{"id": i + 1, "image_id": im, "category_id": 1, "bbox": b,
                           "area": b[2] * b[3], "iscrowd": 0} for i, (im, b) in enumerate(
                              [(1, [60, 10, 10, 10]), (1, [70, 60, 10, 10]),
                               (1, [20, 20, 10, 10]), (2, [40, 40, 10, 10])])],
          "categories": [{"id": 1, "name": "ship"}]}
    osm = [_det(1, [60, 10, 10, 10], 0.9), _det(1, [20, 20, 10, 10], 0.8),  # A, C
           _det(1, [80, 80, 10, 10], 0.7),                                   # false alarm, sea
           _det(1, [5, 5, 10, 10], 0.3),                                     # land, below thr
           _det(2, [40, 40, 10, 10], 0.9)]
    osd = [_det(1, [61, 10, 10, 10], 0.9), _det(1, [70, 61, 10, 10], 0.8),  # A, B
           _det(1, [10, 60, 10, 10], 0.9), _det(1, [30, 80, 10, 10], 0.6),  # 2 on land
           _det(2, [41, 40, 10, 10], 0.8)]
    masks = tmp_path / "land_masks"
    masks.mkdir()
    land = np.zeros((100, 100), np.uint8)
    land[:, :50] = 255
    Image.fromarray(land).save(masks / "harbour.png")
    Image.fromarray(np.zeros((100, 100), np.uint8)).save(masks / "open_sea.png")
    paths = {}
    for name, obj in {"gt": gt, "osm": osm, "osd": osd}.items():
        paths[name] = tmp_path / f"{name}.json"
        paths[name].write_text(json.dumps(obj))
    return gt, osm, osd, masks, paths


def test_land_sea_counts_hand_made(case):
    gt, osm, osd, masks_dir, _ = case
    masks = load_land_masks(gt, masks_dir)
    c = land_sea_counts(gt, osm, masks, score_thr=0.5)
    assert (c["fa_land"], c["fa_sea"], c["gt_sea"], c["hit_sea"], c["gt_land"]) == (0, 1, 3, 2, 1)
    assert c["recall_sea"] == pytest.approx(2 / 3) and c["recall_land"] == 1.0
    c = land_sea_counts(gt, osd, masks, score_thr=0.5)
    assert (c["fa_land"], c["fa_sea"], c["hit_sea"], c["hit_land"]) == (2, 0, 3, 0)
    assert c["recall_sea"] == 1.0 and c["recall_land"] == 0.0
    # at a lower threshold the OSM detector's weak land detection becomes a land false alarm
    assert land_sea_counts(gt, osm, masks, score_thr=0.2)["fa_land"] == 1


def test_box_centre_rule():
    mask = np.zeros((10, 10), bool)
    mask[:, :5] = True
    boxes = np.array([[0, 0, 9.8, 2], [0, 0, 10.2, 2], [-5, -5, 3, 3], [8, 8, 10, 10]], float)
    assert on_land(boxes, mask).tolist() == [True, False, True, False]


def test_complementarity_ap_per_scene_and_fusion(case):
    gt, osm, osd, masks, paths = case
    res = complementarity(paths["gt"], [paths["osm"], paths["osd"]], ["OSM", "OSD"], masks,
                          score_thr=0.5, fusion={"method": "wbf"})
    assert list(res["detectors"]) == ["OSM", "OSD", "fused (WBF)"]
    assert res["subsets"] == {"inshore": 1, "offshore": 1}
    for d in res["detectors"].values():
        assert set(d["ap"]) == {"all", "inshore", "offshore"}
        assert set(d["ap"]["all"]) == {"voc07_11pt", "voc_all_point", "coco_101pt"}
        assert d["ap"]["offshore"]["voc_all_point"] == pytest.approx(1.0)
    # OSM: 3 of 4 ships (with one sea false alarm ranked after them) -> VOC all-point 0.75
    assert res["detectors"]["OSM"]["ap"]["all"]["voc_all_point"] == pytest.approx(0.75)
    fused = res["detectors"]["fused (WBF)"]
    # B is seen by OSD alone: its fused score is 0.8 * 1/2 (box_and_model_avg), below 0.5 ...
    assert fused["land_sea"]["recall_sea"] == pytest.approx(2 / 3)
    assert fused["land_sea"]["fa_land"] == 0  # ... as are OSD's land false alarms (0.45, 0.3)
    # ... but the fused list still holds it: at 0.35 the fusion finds every sea ship
    lists = [load_coco_results(paths["osm"]), load_coco_results(paths["osd"])]
    fused_results = fuse_coco_results(lists, image_sizes_from_gt(gt))
    c = land_sea_counts(gt, fused_results, load_land_masks(gt, masks), score_thr=0.35)
    assert c["recall_sea"] == 1.0 and c["fa_land"] == 1
    assert fused["ap"]["all"]["voc_all_point"] > res["detectors"]["OSD"]["ap"]["all"][
        "voc_all_point"]


def test_compare_cli_writes_table_and_figure(case, tmp_path, capsys):
    _, _, _, masks, paths = case
    parser = argparse.ArgumentParser()
    fuse_cli.register(parser.add_subparsers())
    out = tmp_path / "cmp"
    args = parser.parse_args(["fuse", "compare", str(paths["osm"]), str(paths["osd"]),
                              "--gt", str(paths["gt"]), "--names", "OSM", "OSD",
                              "--land-masks", str(masks), "--out", str(out)])
    assert args.func(args) == 0
    text = capsys.readouterr().out
    assert "FA land @0.5" in text and "fused (wbf)" in text
    saved = json.loads((out / "compare.json").read_text())
    assert saved["detectors"]["OSD"]["land_sea"]["fa_land"] == 2
    assert (out / "compare.png").stat().st_size > 1000
    assert (out / "compare.md").read_text().startswith("| detector")


def test_missing_mask_names_file(case, tmp_path):
    gt, _, _, masks, _ = case
    (masks / "open_sea.png").unlink()
    with pytest.raises(DataError, match="open_sea.png"):
        load_land_masks(gt, masks)
    assert math.isnan(land_sea_counts(gt, [], {}, 0.5)["recall_sea"])


def test_gt_without_image_sizes_names_file(tmp_path):
    gt = tmp_path / "gt.json"
    gt.write_text(json.dumps({"images": [{"id": 1, "file_name": "a.png", "width": 4}],
                              "annotations": []}))
    with pytest.raises(DataError, match=r"gt\.json: images\[0\] needs id, width and height"):
        complementarity(gt, [])
    with pytest.raises(DataError, match=r"ground truth: .*'images' list"):
        image_sizes_from_gt({"annotations": []})
    assert image_sizes_from_gt({"images": [{"id": 3, "width": 4, "height": 2}]}) == {3: (4.0, 2.0)}
