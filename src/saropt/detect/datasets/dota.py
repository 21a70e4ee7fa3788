"""DOTA v1 (Xia et al., CVPR 2018) optical images, for optical ship detectors (OSD pretraining).

Layouts: ``root/images/`` (images at any depth, e.g. the release's ``images/part1/``) with one
label folder: ``labelTxt/`` (v1.0 flat), ``labelTxt-v1.0/labelTxt/``,
``labelTxt-v1.5/DOTA-v1.5_train[_hbb]/`` or ``labelTxt-v2.0/DOTA-v2.0_train[_hbb]/`` (found when
it is the only one, else named with ``labels=``). A label file (v1.0, v1.5, v2.0 alike) has
optional header lines ``imagesource:...`` and ``gsd:...`` (``gsd:null`` allowed), then one object
a line: ``x1 y1 x2 y2 x3 y3 x4 y4 class difficult``; ``meta["gsd"]`` holds the ground sample
distance (None when unknown). Quadrilaterals become horizontal boxes (min/max of the corners)
clipped to the image. Only ``classes`` are kept (label = position in ``classes`` + 1).
Difficult objects are ignore regions (``meta["ignore_boxes"]``, ``iscrowd=1`` in ``to_coco``)
unless ``include_difficult``; ``meta["difficult"]`` flags the kept ones. Large images can be cut
into tiles (``tile``, e.g. 1024 with ``overlap`` 0.2 as the DOTA devkit's 1024/gap-200 split).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from saropt.detect.datasets.base import (
    IMAGE_SUFFIXES,
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
from saropt.utils.io import read_text_file

LAYOUTS = ("images/ (any depth) with one label folder: labelTxt/ (v1.0 flat), "
           "labelTxt-v1.0/labelTxt/, labelTxt-v1.5/DOTA-v1.5_<split>[_hbb]/ or "
           "labelTxt-v2.0/DOTA-v2.0_<split>[_hbb]/")


def parse_dota_txt(path: Path) -> list[tuple[np.ndarray, str, bool]]:
    """``(quad, class, difficult)`` per object line: ``quad`` the ``(4, 2)`` float32 corners in px.

    Reads DOTA v1.0, v1.5 and v2.0 label files: header lines ``imagesource:...`` and
    ``gsd:...`` (also quoted, ``'gsd':0.13``, or ``gsd:null``) present or absent, CRLF or LF
    line ends, a UTF-8 BOM, the ``difficult`` flag present or absent (absent: 0).

    Raises:
        DataError: the file cannot be read, or an object line is not ``x1 y1 ... x4 y4 class
            [difficult]`` (naming file and line).
    """
    return [obj for obj in _dota_lines(path) if isinstance(obj, tuple)]


def dota_header(path: Path) -> dict[str, str | float | None]:
    """The header of a DOTA label file: ``{"imagesource": str, "gsd": float | None}``.

    Keys are present only when the file has them; ``gsd`` is the ground sample distance in
    metres/pixel as DOTA writes it (``gsd:null`` gives None).

    Raises:
        DataError: as :func:`parse_dota_txt`.
    """
    head: dict[str, str | float | None] = {}
    for item in _dota_lines(path):
        if isinstance(item, dict):
            head.update(item)
    return head


def _dota_lines(path: Path) -> list:
    try:
        lines = read_text_file(path).splitlines()
    except OSError as err:
        raise DataError(f"{path}: cannot read DOTA label file ({err})") from None
    out: list = []
    for n, line in enumerate(lines, 1):
        parts = line.split()
        if not parts:
            continue
        if ":" in parts[0] and not _is_number(parts[0]):
            key, _, value = line.strip().partition(":")
            key, value = key.strip().strip("'\""), value.strip().strip("'\"")
            if key == "gsd":
                out.append({"gsd": float(value) if _is_number(value) else None})
            else:
                out.append({key: value})
            continue
        try:
            quad = np.array([float(v) for v in parts[:8]], np.float32).reshape(4, 2)
            cls = parts[8]
            difficult = len(parts) > 9 and parts[9] not in ("0", "0.0")
        except (ValueError, IndexError):
            raise DataError(f"{path}:{n}: expected 'x1 y1 ... x4 y4 class difficult', got "
                            f"{line!r}") from None
        out.append((quad, cls, difficult))
    return out


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def find_label_dir(root: Path) -> Path:
    """The one DOTA label folder under ``root``, up to three levels down.

    A label folder is a ``labelTxt*``, ``DOTA-v*``, ``trainset_reclabel*`` or
    ``valset_reclabel*`` folder holding ``*.txt``.

    Raises:
        DataError: none found, or several (naming them; choose with ``labels=``).
    """
    cands = []
    for depth in ("*", "*/*", "*/*/*"):
        for d in sorted(root.glob(depth)):
            if d.is_dir() and d.name.startswith(("labelTxt", "DOTA-v", "trainset_reclabel",
                                                 "valset_reclabel")) \
                    and any(d.glob("*.txt")):
                cands.append(d)
    if len(cands) == 1:
        return cands[0]
    if not cands:
        raise DataError(f"{root}: no DOTA label folder; layouts looked for: {LAYOUTS}")
    names = ", ".join(str(c.relative_to(root)) for c in cands)
    raise DataError(f"{root}: several DOTA label folders ({names}); choose one with "
                    "--option labels=<folder>")


class DOTA(DetectionDataset):
    """DOTA v1 images (RGB, ``in_chans=3``) with horizontal boxes of ``classes``.

    Layouts, label format and difficult objects in the module docstring. Records are whole
    images (``tile=None``) or ``tile`` px tiles overlapping by ``overlap`` (a fraction) with
    boxes kept where ``min_visible`` of their area lies in the tile; ``keep_empty=False``
    leaves out images or tiles without a target. ``labels`` names the label folder relative
    to ``root`` when there are several. ``meta["gsd"]`` is metres/pixel or None.

    Raises:
        DataError: no root, no ``images/``, no (or several) label folders, an image without
            its label file, or a malformed label line.
    """

    name = "dota"

    def __init__(self, root: str | Path, classes: Sequence[str] = ("ship",),
                 include_difficult: bool = False, tile: int | None = None,
                 overlap: float = 0.2, min_visible: float = 0.5, keep_empty: bool = True,
                 in_chans: int = 3, transforms: Transform | None = None,
                 labels: str | Path | None = None) -> None:
        super().__init__(in_chans, transforms,
                         [{"id": i + 1, "name": c} for i, c in enumerate(classes)])
        self.root, self.classes = Path(root), tuple(classes)
        if not self.root.is_dir():
            raise DataError(f"DOTA root {self.root} does not exist")
        self.label_dir = self.root / labels if labels is not None else find_label_dir(self.root)
        if not self.label_dir.is_dir():
            raise DataError(f"DOTA label folder {self.label_dir} does not exist")
        self.include_difficult = include_difficult
        self._cache: tuple[Path, np.ndarray] | None = None
        for path in self._images():
            self._add(path, tile, overlap, min_visible, keep_empty)

    def _images(self) -> list[Path]:
        folder = self.root / "images"
        if not folder.is_dir():
            raise DataError(f"{self.root}: no images/ folder; DOTA layouts looked for: "
                            f"{LAYOUTS}")
        found = sorted((p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES
                        and not p.name.startswith(".")), key=lambda p: p.name)
        if not found:
            raise DataError(f"{folder}: no images ({', '.join(IMAGE_SUFFIXES)})")
        return found

    def _objects(self, image: Path, width: int, height: int):
        txt = self.label_dir / f"{image.stem}.txt"
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
        gsd = dota_header(self.label_dir / f"{image.stem}.txt").get("gsd")
        windows = ([(0, 0, width, height)] if tile is None
                   else tile_windows(width, height, tile, overlap))
        for win in windows:
            b, keep = boxes_in_window(boxes, win, min_visible)
            ign, ign_keep = boxes_in_window(hard, win, min_visible)
            if not len(keep) and not keep_empty:
                continue
            name = image.name if tile is None else f"{image.stem}_{win[0]}_{win[1]}.png"
            meta = {"scene": None, "difficult": flags[keep].tolist(), "source_file": image.name,
                    "gsd": gsd,
                    "x0": win[0], "y0": win[1]}
            self.records.append(Record(len(self.records) + 1, name, image, win[2] - win[0],
                                       win[3] - win[1], b, labels[keep], ign,
                                       None if tile is None else win, meta,
                                       hard_labels[ign_keep]))

    def load_image(self, rec: Record) -> np.ndarray:
        """The record's image or tile as uint8 ``(H, W, 3)`` (or ``(H, W)``, ``in_chans=1``).

        The last whole image read is cached, so the tiles of one image decode it once.
        """
        if self._cache is None or self._cache[0] != rec.path:
            self._cache = (rec.path, read_image(rec.path, self.in_chans))
        img = self._cache[1]
        if rec.window is None:
            return img
        x0, y0, x1, y1 = rec.window
        return img[y0:y1, x0:x1]
