"""DOTA v1 (Xia et al., CVPR 2018) optical images, for optical ship detectors (OSD pretraining).

Layout: ``root/images/*.png`` and ``root/labelTxt/*.txt``. A label file has optional header lines
``imagesource:...`` and ``gsd:...``, then one object a line: ``x1 y1 x2 y2 x3 y3 x4 y4 class
difficult``. Quadrilaterals become horizontal boxes (min/max of the corners) clipped to the image.
Only ``classes`` are kept (label = position in ``classes`` + 1). Difficult objects are ignore
regions (``meta["ignore_boxes"]``, ``iscrowd=1`` in ``to_coco``) unless ``include_difficult``;
``meta["difficult"]`` flags the kept ones. Large images can be cut into tiles (``tile``, e.g.
1024 with ``overlap`` 0.2 as the DOTA devkit's 1024/gap-200 split).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from saropt.detect.datasets.base import (
    DetectionDataset,
    Record,
    Transform,
    as_boxes,
    drop_degenerate,
    image_size,
    read_image,
)
from saropt.detect.tiling import boxes_in_window, tile_windows
from saropt.errors import DataError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp")


def parse_dota_txt(path: Path) -> list[tuple[np.ndarray, str, bool]]:
    """(quad as 4x2 array, class, difficult) per object line; errors name file and line."""
    out = []
    for n, line in enumerate(path.read_text().splitlines(), 1):
        parts = line.split()
        if not parts or line.startswith(("imagesource", "gsd")):
            continue
        try:
            quad = np.array([float(v) for v in parts[:8]], np.float32).reshape(4, 2)
            cls = parts[8]
            difficult = len(parts) > 9 and parts[9] == "1"
        except (ValueError, IndexError):
            raise DataError(f"{path}:{n}: expected 'x1 y1 ... x4 y4 class difficult', got "
                            f"{line!r}") from None
        out.append((quad, cls, difficult))
    return out


class DOTA(DetectionDataset):
    """DOTA v1 images (RGB, ``in_chans=3``) with horizontal boxes of ``classes``."""

    name = "dota"

    def __init__(self, root: str | Path, classes: Sequence[str] = ("ship",),
                 include_difficult: bool = False, tile: int | None = None,
                 overlap: float = 0.2, min_visible: float = 0.5, keep_empty: bool = True,
                 in_chans: int = 3, transforms: Transform | None = None) -> None:
        super().__init__(in_chans, transforms,
                         [{"id": i + 1, "name": c} for i, c in enumerate(classes)])
        self.root, self.classes = Path(root), tuple(classes)
        self.include_difficult = include_difficult
        self._cache: tuple[Path, np.ndarray] | None = None
        for path in self._images():
            self._add(path, tile, overlap, min_visible, keep_empty)

    def _images(self) -> list[Path]:
        folder = self.root / "images"
        if not folder.is_dir():
            raise DataError(f"{self.root}: no images/ folder; is this a DOTA root?")
        return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)

    def _objects(self, image: Path, width: int, height: int):
        txt = self.root / "labelTxt" / f"{image.stem}.txt"
        if not txt.is_file():
            raise DataError(f"DOTA image {image} has no label file {txt}")
        keep, hard, labels, hard_labels, flags = [], [], [], [], []
        for quad, cls, difficult in parse_dota_txt(txt):
            if cls not in self.classes:
                continue
            box = [quad[:, 0].min(), quad[:, 1].min(), quad[:, 0].max(), quad[:, 1].max()]
            box = np.clip(box, 0, [width, height, width, height])
            if difficult and not self.include_difficult:
                hard.append(box)
                hard_labels.append(self.classes.index(cls) + 1)
            else:
                keep.append(box)
                labels.append(self.classes.index(cls) + 1)
                flags.append(difficult)
        boxes, labels = as_boxes(keep), np.asarray(labels, np.int64)
        ok = (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])
        boxes, labels = drop_degenerate(boxes, labels, str(txt))
        return (boxes, labels, as_boxes(hard), np.asarray(hard_labels, np.int64),
                np.asarray(flags, bool)[ok])

    def _add(self, image: Path, tile: int | None, overlap: float, min_visible: float,
             keep_empty: bool) -> None:
        width, height = image_size(image)
        boxes, labels, hard, hard_labels, flags = self._objects(image, width, height)
        windows = ([(0, 0, width, height)] if tile is None
                   else tile_windows(width, height, tile, overlap))
        for win in windows:
            b, keep = boxes_in_window(boxes, win, min_visible)
            ign, ign_keep = boxes_in_window(hard, win, min_visible)
            if not len(keep) and not keep_empty:
                continue
            name = image.name if tile is None else f"{image.stem}_{win[0]}_{win[1]}.png"
            meta = {"scene": None, "difficult": flags[keep].tolist(), "source_file": image.name,
                    "x0": win[0], "y0": win[1]}
            self.records.append(Record(len(self.records) + 1, name, image, win[2] - win[0],
                                       win[3] - win[1], b, labels[keep], ign,
                                       None if tile is None else win, meta,
                                       hard_labels[ign_keep]))

    def load_image(self, rec: Record) -> np.ndarray:
        if self._cache is None or self._cache[0] != rec.path:
            self._cache = (rec.path, read_image(rec.path, self.in_chans))
        img = self._cache[1]
        if rec.window is None:
            return img
        x0, y0, x1, y1 = rec.window
        return img[y0:y1, x0:x1]
