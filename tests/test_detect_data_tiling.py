"""Tiling properties: windows cover the scene, the visible-fraction rule, merging back."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from saropt.detect.tiling import (
    boxes_in_window,
    cut_tiles,
    merge_tile_predictions,
    tile_results_to_scene,
    tile_windows,
)

sizes = st.integers(1, 1500)
tiles = st.sampled_from([64, 128, 512])
overlaps = st.sampled_from([0.0, 0.25, 0.5])


def test_paper_tiling_of_air_sarship_scenes():
    wins = tile_windows(3000, 3000, 512, 0.5)  # AIR-SARShip-1.0
    assert len(wins) == 11 * 11 and wins[1] == (256, 0, 768, 512) and wins[-1][2:] == (3000,
                                                                                         3000)
    assert [w[0] for w in tile_windows(1000, 1000)[:3]] == [0, 256, 488]  # AIR-SARShip-2.0


@settings(max_examples=60, deadline=None, database=None)
@given(sizes, sizes, tiles, overlaps)
def test_windows_cover_the_image_and_stay_inside(w, h, tile, overlap):
    wins = tile_windows(w, h, tile, overlap)
    cover = np.zeros((min(h, 300), min(w, 300)), bool)
    for x0, y0, x1, y1 in wins:
        assert 0 <= x0 < x1 <= w and 0 <= y0 < y1 <= h
        assert x1 - x0 == min(tile, w) and y1 - y0 == min(tile, h)
        cover[y0:y1, x0:x1] = True
    assert cover.all()


boxes_st = st.lists(st.tuples(st.floats(-50, 600), st.floats(-50, 600), st.floats(1, 120),
                              st.floats(1, 120)), min_size=0, max_size=12)


@settings(max_examples=80, deadline=None, database=None)
@given(boxes_st, st.sampled_from([0.0, 0.3, 0.5, 0.9]))
def test_visible_fraction_rule(raw, min_visible):
    boxes = np.array([[x, y, x + w, y + h] for x, y, w, h in raw], np.float32).reshape(-1, 4)
    win = (100, 50, 356, 306)
    out, keep = boxes_in_window(boxes, win, min_visible)
    assert ((out >= 0) & (out[:, [2, 3, 2, 3]] <= 256)).all()
    for i, b in enumerate(boxes):
        ix = max(0.0, min(b[2], 356) - max(b[0], 100))
        iy = max(0.0, min(b[3], 306) - max(b[1], 50))
        frac = ix * iy / ((b[2] - b[0]) * (b[3] - b[1]))
        assert (i in keep) == (ix * iy > 0 and frac >= min_visible - 1e-4) or \
            abs(frac - min_visible) < 1e-3
    areas = (out[:, 2] - out[:, 0]) * (out[:, 3] - out[:, 1])
    assert (areas > 0).all()


@settings(max_examples=40, deadline=None, database=None)
@given(st.lists(st.tuples(st.integers(0, 940), st.integers(0, 940), st.integers(4, 60),
                          st.integers(4, 60)), min_size=1, max_size=8, unique_by=lambda t: t[:2]))
def test_gt_through_tiles_and_back_recovers_the_scene(raw):
    """Every box up to tile * overlap wide lies whole in some tile; a perfect detector's tile
    predictions merge back to exactly the scene's boxes."""
    boxes = np.array([[x, y, x + w, y + h] for x, y, w, h in raw], np.float32)
    iou = _max_pairwise_iou(boxes)
    image = np.zeros((1000, 1000), np.uint8)
    tiles = cut_tiles(image, boxes, np.ones(len(boxes), np.int64), tile=256, overlap=0.5,
                      min_visible=1.0)
    seen = set()
    for t in tiles:
        assert t.image.shape == (t.window[3] - t.window[1], t.window[2] - t.window[0])
        off = np.array([t.window[0], t.window[1]] * 2, np.float32)
        seen |= {tuple((b + off).tolist()) for b in t.boxes}
    assert seen == {tuple(b) for b in boxes.tolist()}
    merged, scores, labels = merge_tile_predictions(
        ((t.window, t.boxes, np.ones(len(t.boxes)), t.labels) for t in tiles), 0.5)
    if iou < 0.5:  # NMS keeps distinct ships apart
        got = sorted(tuple(round(v, 3) for v in b) for b in merged.tolist())
        assert got == sorted(tuple(b) for b in boxes.tolist())


def _max_pairwise_iou(boxes: np.ndarray) -> float:
    from torchvision.ops import box_iou

    m = box_iou(torch.from_numpy(boxes), torch.from_numpy(boxes)).numpy()
    np.fill_diagonal(m, 0)
    return float(m.max()) if m.size else 0.0


def test_merge_is_classwise_and_results_map_to_scenes():
    b = torch.tensor([[0.0, 0, 10, 10]])
    boxes, scores, labels = merge_tile_predictions(
        [((0, 0), b, [0.9], [1]), ((0, 0), b, [0.8], [2]), ((0, 0), b + 1, [0.7], [1])])
    assert labels.tolist() == [1, 2] and scores.tolist() == pytest.approx([0.9, 0.8])
    res = [{"image_id": 5, "bbox": [1, 1, 4, 4], "score": 0.9, "category_id": 1},
           {"image_id": 6, "bbox": [0, 1, 4, 4], "score": 0.8, "category_id": 1}]
    out = tile_results_to_scene(res, {5: (1, (100, 0, 612, 512)), 6: (1, (101, 0, 613, 512))})
    assert len(out) == 1 and out[0]["bbox"] == [101, 1, 4, 4] and out[0]["image_id"] == 1
