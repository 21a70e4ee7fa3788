"""Scene tiles: the grid, the seam rule, block files for resume, merging across tiles.

**Grid**: :func:`saropt.detect.tiling.tile_windows` (stride ``round(tile * (1 - overlap))``,
the last tile of a row or column moved back to end at the border), so every tile has the same
shape. **Seam rule**: a box within ``margin`` pixels of an *interior* edge of its tile (an
edge that is not the scene border) may be a ship cut by the tile; it is dropped when some tile
of the grid holds the box whole (inside it and at least ``margin`` from that tile's interior
edges), since that tile reports the ship uncut. A box no tile holds whole (a ship longer than
the overlap) is kept. **Merge**: the remaining boxes of all tiles, in scene pixels, are merged
by class-wise NMS (``torchvision.ops.batched_nms``) or WBF (``ensemble-boxes``, the same call
as ``saropt fuse``, one model).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from saropt.detect.tiling import Window, tile_starts

EMPTY = np.zeros((0, 6), np.float32)  # x1, y1, x2, y2, score, label


class Grid:
    """The tile windows of a ``width`` x ``height`` scene (row-major) and the seam rule.

    Tiles are ``tile`` px a side (the scene's size where it is smaller), overlapping by
    ``overlap`` (a fraction); see the module docstring.

    Raises:
        ValueError: ``tile`` <= 0 or ``overlap`` outside [0, 1).
    """

    def __init__(self, width: int, height: int, tile: int, overlap: float) -> None:
        if tile <= 0 or not 0.0 <= overlap < 1.0:
            raise ValueError(f"need tile > 0 and 0 <= overlap < 1, got {tile}, {overlap}")
        self.width, self.height, self.tile, self.overlap = width, height, tile, overlap
        self.stride = max(1, int(round(tile * (1.0 - overlap))))
        self.xs = np.array(tile_starts(width, tile, self.stride))
        self.ys = np.array(tile_starts(height, tile, self.stride))
        self.tw, self.th = min(tile, width), min(tile, height)

    def __len__(self) -> int:
        return len(self.xs) * len(self.ys)

    def window(self, k: int) -> Window:
        """Tile ``k``'s window ``(x0, y0, x1, y1)`` in scene pixels (row-major index)."""
        y, x = divmod(k, len(self.xs))
        x0, y0 = int(self.xs[x]), int(self.ys[y])
        return x0, y0, x0 + self.tw, y0 + self.th

    def _held_whole(self, lo: np.ndarray, hi: np.ndarray, starts: np.ndarray, size: int,
                    length: int, margin: float) -> np.ndarray:
        """Per box: does some start hold ``[lo, hi]`` whole along this axis?"""
        s = starts[None, :]
        inner_lo = np.where(s == 0, s, s + margin)
        inner_hi = np.where(s + size >= length, s + size, s + size - margin)
        return ((lo[:, None] >= inner_lo) & (hi[:, None] <= inner_hi)).any(axis=1)

    def seam_keep(self, boxes: np.ndarray, window: Window, margin: float) -> np.ndarray:
        """``(N,)`` boolean keep mask of the seam rule for ``boxes`` ``(N, 4)`` found in ``window``.

        Boxes are xyxy in scene pixels; ``margin`` in pixels (the module docstring's rule).
        """
        x0, y0, x1, y1 = window
        b = np.asarray(boxes, np.float64).reshape(-1, 4)
        cut = np.zeros(len(b), bool)
        if x0 > 0:
            cut |= b[:, 0] < x0 + margin
        if y0 > 0:
            cut |= b[:, 1] < y0 + margin
        if x1 < self.width:
            cut |= b[:, 2] > x1 - margin
        if y1 < self.height:
            cut |= b[:, 3] > y1 - margin
        if not cut.any():
            return ~cut
        whole = (self._held_whole(b[:, 0], b[:, 2], self.xs, self.tw, self.width, margin)
                 & self._held_whole(b[:, 1], b[:, 3], self.ys, self.th, self.height, margin))
        return ~(cut & whole)


def to_scene(dets: tuple[np.ndarray, np.ndarray, np.ndarray], window: Window,
             valid: Window | None = None) -> np.ndarray:
    """Tile detections as ``(N, 6)`` float32 ``x1, y1, x2, y2, score, label`` in scene pixels.

    ``dets`` is ``(boxes (N, 4) xyxy tile px, scores (N,), labels (N,))``; boxes are shifted by
    the window's offset, clipped to ``valid`` (the window's part inside the scene, default the
    window), and boxes left without area are dropped.
    """
    boxes, scores, labels = dets
    if len(boxes) == 0:
        return EMPTY
    x0, y0 = window[0], window[1]
    vx0, vy0, vx1, vy1 = valid or window
    b = np.asarray(boxes, np.float32).reshape(-1, 4) + np.array([x0, y0, x0, y0], np.float32)
    b[:, 0::2] = b[:, 0::2].clip(vx0, vx1)
    b[:, 1::2] = b[:, 1::2].clip(vy0, vy1)
    out = np.concatenate([b, np.asarray(scores, np.float32).reshape(-1, 1),
                          np.asarray(labels, np.float32).reshape(-1, 1)], axis=1)
    return out[(out[:, 2] > out[:, 0]) & (out[:, 3] > out[:, 1])]


def merge(rows: np.ndarray, method: str, iou_thr: float, size: tuple[int, int]) -> np.ndarray:
    """Merge one model's ``(N, 6)`` scene detections across tiles; rows sorted by score.

    ``method`` ``"nms"``: class-wise NMS at ``iou_thr`` (``torchvision.ops.batched_nms``);
    otherwise WBF (:func:`fuse_rows`, one model, ``conf_type="avg"``). ``size`` is the scene
    ``(width, height)`` in px.
    """
    if len(rows) == 0:
        return EMPTY
    if method == "nms":
        import torch
        from torchvision.ops import batched_nms

        t = torch.from_numpy(rows.astype(np.float32))
        keep = batched_nms(t[:, :4], t[:, 4], t[:, 5].long(), iou_thr).numpy()
        out = rows[keep]
    else:
        out = fuse_rows([rows], [1.0], "wbf", iou_thr, size, conf_type="avg")
    return out[np.argsort(-out[:, 4], kind="stable")]


def fuse_rows(per_model: Sequence[np.ndarray], weights: Sequence[float], method: str,
              iou_thr: float, size: tuple[int, int], conf_type: str = "box_and_model_avg"
              ) -> np.ndarray:
    """Several models' ``(N, 6)`` scene detections fused into one ``(M, 6)``, sorted by score.

    Through :func:`saropt.fuse.fusion.fuse_arrays` (the ``saropt fuse`` implementation on
    ``ensemble-boxes``), boxes normalised by the scene ``size`` (width, height) in px and
    scaled back; ``method`` and ``conf_type`` as ``saropt fuse`` takes them; no score floor.
    """
    from saropt.fuse.fusion import fuse_arrays

    w, h = size
    scale = np.array([w, h, w, h], np.float64)
    boxes = [(r[:, :4] / scale).clip(0, 1) for r in per_model]
    scores = [r[:, 4].astype(np.float64) for r in per_model]
    labels = [r[:, 5].astype(np.float64) for r in per_model]
    b, s, lab = fuse_arrays(boxes, scores, labels, method, weights, iou_thr, 0.0, conf_type,
                            0.5, 0.001)
    if len(b) == 0:
        return EMPTY
    out = np.concatenate([np.asarray(b) * scale, np.asarray(s)[:, None],
                          np.asarray(lab)[:, None]], axis=1).astype(np.float32)
    return out[np.argsort(-out[:, 4], kind="stable")]


# ------------------------------------------------------------------ block files (resume)


def block_path(folder: Path, k: int) -> Path:
    """The resume file of block ``k``: ``folder/block_NNNNNN.json``."""
    return folder / f"block_{k:06d}.json"


def write_block(folder: Path, k: int, tiles: tuple[int, int], per_model: list[np.ndarray],
                n_nodata: int, n_raw: list[int]) -> None:
    """Write block ``k``'s per-model ``(N, 6)`` detections (3 decimals) and counts atomically.

    ``tiles`` is the block's tile indices ``(first, last)``, last exclusive; ``n_nodata`` its
    tiles skipped as no data; ``n_raw`` each model's detection count before the seam rule.
    """
    from saropt.utils.io import write_json_atomic

    write_json_atomic(block_path(folder, k), {
        "block": k, "tiles": list(tiles), "nodata_tiles": n_nodata, "raw": n_raw,
        "detections": [np.round(r.astype(np.float64), 3).tolist() for r in per_model]},
        indent=None)


def read_block(folder: Path, k: int) -> dict[str, Any]:
    """A block file as :func:`write_block` wrote it, detections as float32 ``(N, 6)`` arrays."""
    import json

    data = json.loads(block_path(folder, k).read_text())
    data["detections"] = [np.asarray(r, np.float32).reshape(-1, 6) for r in data["detections"]]
    return data
