"""COCO-JSON ship datasets: any COCO file (:class:`CocoShips`) and HRSID (:class:`HRSID`).

COCO ``bbox`` is ``[x, y, w, h]`` in pixels; boxes become ``xyxy = [x, y, x + w, y + h]``.
Annotations with ``iscrowd=1`` are ignore regions (``meta["ignore_boxes"]``). Category ids map to
contiguous 1-based labels in id order (ship-only files: label 1 = category 1). An image entry may
carry ``"scene": "inshore" | "offshore"``; other scalar keys of the entry go into ``meta`` too.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from saropt.detect.datasets.base import (
    DetectionDataset,
    Record,
    Transform,
    as_boxes,
    drop_degenerate,
)
from saropt.errors import DataError
from saropt.utils.io import read_json


def load_coco_json(path: str | Path) -> dict[str, Any]:
    """A COCO dict with ``images``, ``annotations``, ``categories``; errors name the file."""
    path = Path(path)
    data = read_json(path, "COCO annotation")
    for key in ("images", "annotations"):
        if not isinstance(data, dict) or not isinstance(data.get(key), list):
            raise DataError(f"{path}: not a COCO ground-truth file (no '{key}' list)")
    data.setdefault("categories", [{"id": 1, "name": "ship"}])
    return data


class CocoShips(DetectionDataset):
    """Images in ``root/image_dir`` described by the COCO file ``root/ann_file``."""

    name = "coco"

    def __init__(self, root: str | Path, ann_file: str | Path, image_dir: str | Path = "",
                 in_chans: int = 1, transforms: Transform | None = None) -> None:
        root = Path(root)
        self.ann_path = root / ann_file
        data = load_coco_json(self.ann_path)
        cats = sorted(data["categories"], key=lambda c: c["id"])
        super().__init__(in_chans, transforms,
                         [{"id": int(c["id"]), "name": str(c.get("name", c["id"]))}
                          for c in cats])
        self.image_dir = root / image_dir
        self.records = _records_from_coco(data, self.image_dir, self.ann_path)

    @property
    def coco_gt(self) -> Path:
        """The original COCO file (``to_coco()`` regenerates an equivalent dict)."""
        return self.ann_path


def _records_from_coco(data: dict[str, Any], image_dir: Path, source: Path) -> list[Record]:
    label_of = {int(c["id"]): i + 1 for i, c in
                enumerate(sorted(data["categories"], key=lambda c: c["id"]))}
    by_image: dict[int, list[dict]] = {}
    for ann in data["annotations"]:
        try:
            by_image.setdefault(int(ann["image_id"]), []).append(ann)
        except (KeyError, TypeError, ValueError):
            raise DataError(f"{source}: annotation without a valid image_id: {ann}") from None
    records = []
    for img in data["images"]:
        try:
            image_id, file_name = int(img["id"]), str(img["file_name"])
            width, height = int(img["width"]), int(img["height"])
        except (KeyError, TypeError, ValueError):
            raise DataError(f"{source}: image entry needs id, file_name, width, height: "
                            f"{img}") from None
        boxes, labels, ignore, ign_labels = _split_annotations(by_image.get(image_id, []),
                                                               label_of, source)
        boxes, labels = drop_degenerate(boxes, labels, f"{source} image {file_name}")
        meta = {k: v for k, v in img.items()
                if k not in ("id", "file_name", "width", "height")
                and (v is None or isinstance(v, (str, int, float, bool)))}
        meta.setdefault("scene", None)
        records.append(Record(image_id, file_name, image_dir / file_name, width, height,
                              boxes, labels, ignore, meta=meta, ignore_labels=ign_labels))
    return records


def _split_annotations(anns: list[dict], label_of: dict[int, int], source: Path
                       ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    boxes, labels, ignore, ign_labels = [], [], [], []
    for ann in anns:
        bbox = ann.get("bbox")
        if not isinstance(bbox, list) or len(bbox) != 4:
            raise DataError(f"{source}: annotation {ann.get('id')} has no [x, y, w, h] bbox")
        x, y, w, h = (float(v) for v in bbox)
        cat = int(ann.get("category_id", 1))
        if cat not in label_of:
            raise DataError(f"{source}: annotation {ann.get('id')} has unknown category {cat}")
        if ann.get("iscrowd", 0) or ann.get("ignore", 0):
            ignore.append([x, y, x + w, y + h])
            ign_labels.append(label_of[cat])
        else:
            boxes.append([x, y, x + w, y + h])
            labels.append(label_of[cat])
    return (as_boxes(boxes), np.asarray(labels, np.int64), as_boxes(ignore),
            np.asarray(ign_labels, np.int64))


class HRSID(CocoShips):
    """HRSID (Wei et al., IEEE Access 2020): ``root/JPEGImages/`` 800x800 chips and
    ``root/annotations/{train2017,test2017}.json``; SAR, grayscale stored as 3 equal channels,
    read as one channel."""

    name = "hrsid"

    def __init__(self, root: str | Path, split: str = "train", in_chans: int = 1,
                 transforms: Transform | None = None) -> None:
        if split not in ("train", "test"):
            raise DataError(f"HRSID split must be 'train' or 'test', got {split!r}")
        super().__init__(root, Path("annotations") / f"{split}2017.json", "JPEGImages",
                         in_chans, transforms)
        self.split = split
        self._scenes_from_files(Path(root) / "annotations")

    def _scenes_from_files(self, folder: Path) -> None:
        """Images listed in ``annotations/*inshore*.json`` / ``*offshore*.json`` (when such
        files exist) get that scene, unless their entry already carries one."""
        scene_of: dict[str, str] = {}
        for scene in ("offshore", "inshore"):  # a name with both words counts as inshore
            for path in sorted(folder.glob(f"*{scene}*.json")):
                scene_of.update({img["file_name"]: scene
                                 for img in load_coco_json(path)["images"]})
        for rec in self.records:
            if rec.meta.get("scene") is None and rec.file_name in scene_of:
                rec.meta["scene"] = scene_of[rec.file_name]
