"""Large scenes into overlapping tiles, and tile predictions back into scene coordinates.

Paper 003 section 4.1: AIR-SARShip-1.0 (~3000 x 3000) and AIR-SARShip-2.0 (1000 x 1000) scenes are
cut into 512 x 512 tiles with 0.5 overlap. Tiles start every ``stride = round(tile * (1 -
overlap))`` pixels; the last tile of a row/column is moved back to end at the border (no padding,
no tile sticks out); a scene smaller than ``tile`` is one tile of its own size.

A box cut by a tile border is kept in that tile when at least ``min_visible`` of its area lies
inside the tile (default 0.5), clipped to the tile; otherwise it is dropped from that tile (the
neighbouring tiles, overlapping by half, usually hold it whole). Tile predictions are shifted by
the tile offset and merged with class-wise NMS (``torchvision.ops.batched_nms``).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # torch loads on first merge: tiling a scene does not need it
    import torch

Window = tuple[int, int, int, int]  # x0, y0, x1, y1 (x1/y1 exclusive)


def tile_starts(length: int, tile: int, stride: int) -> list[int]:
    """Start offsets along one axis: 0, stride, ... and a last one ending at ``length``."""
    if length <= tile:
        return [0]
    starts = list(range(0, length - tile + 1, stride))
    if starts[-1] != length - tile:
        starts.append(length - tile)
    return starts


def tile_windows(width: int, height: int, tile: int = 512, overlap: float = 0.5
                 ) -> list[Window]:
    """Row-major tile windows ``(x0, y0, x1, y1)`` in px covering a ``width`` x ``height`` image.

    Tiles are ``tile`` px a side, start every ``round(tile * (1 - overlap))`` px, and the last
    of each row and column ends at the border (see the module docstring).

    Raises:
        ValueError: ``tile`` <= 0 or ``overlap`` outside [0, 1).
    """
    if tile <= 0 or not 0.0 <= overlap < 1.0:
        raise ValueError(f"need tile > 0 and 0 <= overlap < 1, got {tile}, {overlap}")
    stride = max(1, int(round(tile * (1.0 - overlap))))
    return [(x, y, min(x + tile, width), min(y + tile, height))
            for y in tile_starts(height, tile, stride) for x in tile_starts(width, tile, stride)]


def box_area(boxes: np.ndarray) -> np.ndarray:
    """``(N,)`` areas in square pixels of xyxy boxes ``(N, 4)``; inverted sides count as 0."""
    return np.clip(boxes[:, 2] - boxes[:, 0], 0, None) * np.clip(boxes[:, 3] - boxes[:, 1], 0,
                                                                  None)


def boxes_in_window(boxes: np.ndarray, window: Window, min_visible: float = 0.5
                    ) -> tuple[np.ndarray, np.ndarray]:
    """The boxes ``(N, 4)`` kept in ``window``, clipped and shifted to tile px, and their indices.

    A box is kept when its visible area is > 0 and at least ``min_visible`` of its own area.
    Returns float32 ``(M, 4)`` boxes and the ``(M,)`` indices into ``boxes``.
    """
    boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
    x0, y0, x1, y1 = window
    clipped = np.stack([np.clip(boxes[:, 0], x0, x1), np.clip(boxes[:, 1], y0, y1),
                        np.clip(boxes[:, 2], x0, x1), np.clip(boxes[:, 3], y0, y1)], axis=1)
    visible, full = box_area(clipped), box_area(boxes)
    frac = np.divide(visible, full, out=np.zeros_like(visible), where=full > 0)
    keep = np.nonzero((visible > 0) & (frac >= min_visible - 1e-6))[0]
    shifted = clipped[keep] - np.array([x0, y0, x0, y0], np.float32)
    return shifted.astype(np.float32), keep


@dataclass
class Tile:
    """One tile of :func:`cut_tiles`: its window, pixels, boxes ``(N, 4)`` xyxy tile px, labels."""

    window: Window
    image: np.ndarray
    boxes: np.ndarray
    labels: np.ndarray


def cut_tiles(image: np.ndarray, boxes: np.ndarray, labels: np.ndarray, tile: int = 512,
              overlap: float = 0.5, min_visible: float = 0.5, keep_empty: bool = True
              ) -> list[Tile]:
    """Cut an ``(H, W)`` or ``(H, W, C)`` image and its xyxy px boxes into tiles.

    Windows from :func:`tile_windows`, boxes from :func:`boxes_in_window`; ``keep_empty=False``
    leaves out tiles without a box. Tile images are views of ``image``.
    """
    h, w = image.shape[:2]
    out = []
    for win in tile_windows(w, h, tile, overlap):
        b, keep = boxes_in_window(boxes, win, min_visible)
        if len(keep) or keep_empty:
            out.append(Tile(win, image[win[1]:win[3], win[0]:win[2]], b,
                            np.asarray(labels)[keep]))
    return out


def merge_tile_predictions(
    tiles: Iterable[tuple[Sequence[int], torch.Tensor | np.ndarray, torch.Tensor | np.ndarray,
                          torch.Tensor | np.ndarray]],
    iou_threshold: float = 0.5,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Tile predictions merged into scene ``(boxes (N, 4) xyxy px, scores (N,), labels (N,))``.

    Each tile gives ``(window or (x0, y0), boxes, scores, labels)`` in tile pixels; boxes are
    shifted by the tile offset, then class-wise NMS at ``iou_threshold``
    (``torchvision.ops.batched_nms``); the result is in descending score order.
    """
    import torch
    from torchvision.ops import batched_nms

    all_b, all_s, all_l = [], [], []
    for win, boxes, scores, labels in tiles:
        b = torch.as_tensor(np.asarray(boxes), dtype=torch.float32).reshape(-1, 4)
        off = torch.tensor([win[0], win[1], win[0], win[1]], dtype=torch.float32)
        all_b.append(b + off)
        all_s.append(torch.as_tensor(np.asarray(scores), dtype=torch.float32).reshape(-1))
        all_l.append(torch.as_tensor(np.asarray(labels), dtype=torch.int64).reshape(-1))
    if not all_b:
        return torch.zeros((0, 4)), torch.zeros(0), torch.zeros(0, dtype=torch.int64)
    boxes, scores, labels = torch.cat(all_b), torch.cat(all_s), torch.cat(all_l)
    keep = batched_nms(boxes, scores, labels, iou_threshold)
    return boxes[keep], scores[keep], labels[keep]


def tile_results_to_scene(results: list[dict], tile_to_scene: dict[int, tuple[int, Window]],
                          iou_threshold: float = 0.5) -> list[dict]:
    """COCO results on tiles as COCO results on scenes (:func:`merge_tile_predictions` per scene).

    ``tile_to_scene`` maps a tile's ``image_id`` to ``(scene image_id, window)`` (see
    ``AIRSARShip.tile_to_scene()``); a result on a tile it lacks raises ``KeyError``.
    """
    groups: dict[int, list] = {}
    for r in results:
        scene_id, win = tile_to_scene[int(r["image_id"])]
        x, y, w, h = r["bbox"]
        groups.setdefault(scene_id, []).append((win, [x, y, x + w, y + h], r["score"],
                                                int(r.get("category_id", 1))))
    out = []
    for scene_id, rows in groups.items():
        boxes, scores, labels = merge_tile_predictions(
            ((win, [b], [s], [c]) for win, b, s, c in rows), iou_threshold)
        for b, s, c in zip(boxes.tolist(), scores.tolist(), labels.tolist()):
            out.append({"image_id": scene_id, "category_id": c,
                        "bbox": [b[0], b[1], b[2] - b[0], b[3] - b[1]], "score": s})
    return out
