"""COCO-JSON ship datasets: any COCO file (:class:`CocoShips`) and HRSID (:class:`HRSID`).

COCO ``bbox`` is ``[x, y, w, h]`` in pixels; boxes become ``xyxy = [x, y, x + w, y + h]``.
Annotations with ``iscrowd=1`` are ignore regions (``meta["ignore_boxes"]``). Category ids map to
contiguous 1-based labels in id order (ship-only files: label 1 = category 1). An image entry may
carry ``"scene": "inshore" | "offshore"``; other scalar keys of the entry go into ``meta`` too.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from saropt.detect.datasets.base import (
    IMAGE_SUFFIXES,
    DetectionDataset,
    Record,
    Transform,
    as_boxes,
    drop_degenerate,
    strip_image_suffix,
)
from saropt.errors import DataError
from saropt.utils.io import read_json

_FLAG_WORDS = {"0": 0, "false": 0, "no": 0, "": 0, "1": 1, "true": 1, "yes": 1}


def coco_flag(value: Any, what: str) -> int:
    """A COCO 0/1 flag (``iscrowd``, ``ignore``) as written by any tool, as the int 0 or 1.

    Takes missing/None (0), a bool, a finite number (non-zero is 1) or a string (``"0"``,
    ``"false"``, ``"no"``, ``""`` are 0; ``"1"``, ``"true"``, ``"yes"`` and non-zero numbers
    are 1; not Python's truth of a non-empty string).

    Raises:
        DataError: anything else (a NaN, a word, a list), naming ``what``.
    """
    if value is None or isinstance(value, (bool, int, float)):
        if isinstance(value, float) and not np.isfinite(value):
            raise DataError(f"{what}: flag {value!r} is not 0 or 1")
        return int(bool(value))
    if isinstance(value, str):
        word = value.strip().lower()
        if word in _FLAG_WORDS:
            return _FLAG_WORDS[word]
        try:
            return int(float(word) != 0)
        except ValueError:
            pass
    raise DataError(f"{what}: flag {value!r} is not 0 or 1")


def load_coco_json(path: str | Path) -> dict[str, Any]:
    """A COCO dict with ``images``, ``annotations``, ``categories`` (default: ship, id 1).

    Only the top-level lists are checked here; :func:`saropt.detect.ap.normalise_gt` checks
    the entries for scoring.

    Raises:
        DataError: the file cannot be read as JSON or lacks the ``images`` or
            ``annotations`` list; the message names the file.
    """
    path = Path(path)
    data = read_json(path, "COCO annotation")
    for key in ("images", "annotations"):
        if not isinstance(data, dict) or not isinstance(data.get(key), list):
            raise DataError(f"{path}: not a COCO ground-truth file (no '{key}' list)")
    data.setdefault("categories", [{"id": 1, "name": "ship"}])
    return data


class CocoShips(DetectionDataset):
    """Images in ``root/image_dir`` described by the COCO file ``root/ann_file``.

    Category ids become labels 1..K in id order; ``iscrowd`` / ``ignore`` annotations are
    ignore regions (see the module docstring).

    Raises:
        DataError: the file is not COCO ground truth, has bad entries, or lists no image.
    """

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
        self.records = records_from_coco(data, self.image_dir, self.ann_path)
        if not self.records:
            raise DataError(f"{self.ann_path}: lists no image (an empty split?)")

    @property
    def coco_gt(self) -> Path:
        """The original COCO file (``to_coco()`` regenerates an equivalent dict)."""
        return self.ann_path


def records_from_coco(data: dict[str, Any], image_dir: Path, source: Path) -> list[Record]:
    """One record per image entry of a COCO dict: boxes ``(N, 4)`` xyxy pixels, labels 1..K.

    Crowd/ignore annotations become ignore boxes; boxes without area are dropped (logged);
    scalar keys of an image entry go into ``meta``. ``source`` names the file in errors.

    Raises:
        DataError: repeated image ids, an image entry without id, file_name, width, height,
            or an annotation without an image id, a ``[x, y, w, h]`` bbox or a known category.
    """
    label_of = {int(c["id"]): i + 1 for i, c in
                enumerate(sorted(data["categories"], key=lambda c: c["id"]))}
    by_image: dict[int, list[dict]] = {}
    for ann in data["annotations"]:
        try:
            by_image.setdefault(int(ann["image_id"]), []).append(ann)
        except (KeyError, TypeError, ValueError):
            raise DataError(f"{source}: annotation without a valid image_id: {ann}") from None
    counts = Counter(img.get("id") for img in data["images"] if isinstance(img, dict))
    repeated = sorted(str(i) for i, n in counts.items() if n > 1)
    if repeated:
        raise DataError(f"{source}: repeated image ids {', '.join(repeated[:5])}; every image "
                        "needs its own id")
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
        records.append(Record(image_id, file_name, _image_path(image_dir, file_name), width,
                              height, boxes, labels, ignore, meta=meta,
                              ignore_labels=ign_labels))
    return records


def _image_path(image_dir: Path, file_name: str) -> Path:
    """Where an entry's image is: ``image_dir/file_name`` or the first candidate that exists.

    Files whose names carry a folder (``test/000001.jpg`` or ``JPEGImages/a.jpg``) are also
    looked for by base name in ``image_dir`` and as the name under ``image_dir``'s parent; the
    first candidate when none exists (the error comes when the image is read).
    """
    name = file_name.replace("\\", "/")
    cands = [image_dir / name, image_dir / name.rsplit("/", 1)[-1], image_dir.parent / name]
    return next((c for c in cands if c.is_file()), cands[0])


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
        what = f"{source}: annotation {ann.get('id')}"
        if coco_flag(ann.get("iscrowd"), what) or coco_flag(ann.get("ignore"), what):
            ignore.append([x, y, x + w, y + h])
            ign_labels.append(label_of[cat])
        else:
            boxes.append([x, y, x + w, y + h])
            labels.append(label_of[cat])
    return (as_boxes(boxes), np.asarray(labels, np.int64), as_boxes(ignore),
            np.asarray(ign_labels, np.int64))


HRSID_LAYOUT = ("HRSID_JPG/ or HRSID_png/ (or the folder itself) holding JPEGImages/ (or "
                "images/, PNGImages/) and annotations/{train,test,train_test}2017.json")


class HRSID(CocoShips):
    """HRSID (Wei et al., IEEE Access 2020): 800 x 800 SAR chips with COCO annotation files.

    Grayscale stored as 3 equal channels, read as one channel (``in_chans=1``). Paper 003
    section 4.1: 5604 images, train and test at 13 : 7.

    ``root`` is the release's ``HRSID_JPG/`` or ``HRSID_png/`` (or the folder holding one):
    ``JPEGImages/`` (or ``images/``, ``PNGImages/``) and ``annotations/{split}2017.json``
    (``all`` reads ``train_test2017.json``). The scene of each image comes from
    ``inshore_offshore/{inshore,offshore}.json`` or ``annotations/*inshore*.json`` /
    ``*offshore*.json``, unless its entry carries ``scene``. A file name whose image is stored
    under another suffix (``.jpg`` listed, ``.png`` stored) is found by its stem.

    Raises:
        DataError: ``split`` not train, test or all, or no HRSID layout under ``root``.
    """

    name = "hrsid"

    def __init__(self, root: str | Path, split: str = "train", in_chans: int = 1,
                 transforms: Transform | None = None) -> None:
        if split not in ("train", "test", "all"):
            raise DataError(f"HRSID split must be 'train', 'test' or 'all', got {split!r}")
        root = _hrsid_root(Path(root))
        ann = Path("annotations") / f"{'train_test' if split == 'all' else split}2017.json"
        image_dir = next((d for d in ("JPEGImages", "images", "PNGImages")
                          if (root / d).is_dir()), "JPEGImages")
        super().__init__(root, ann, image_dir, in_chans, transforms)
        self.split = split
        self._scenes_from_files([root / "inshore_offshore", root / "annotations"])
        self._resolve_suffixes()

    def _scenes_from_files(self, folders: list[Path]) -> None:
        """Give images the scene of the ``*inshore*.json`` / ``*offshore*.json`` listing them.

        Files are looked for in ``folders``; an entry that already carries a scene keeps it.
        """
        scene_of: dict[str, str] = {}
        for folder in folders:
            for scene in ("offshore", "inshore"):  # a name with both words counts as inshore
                for path in sorted(folder.glob(f"*{scene}*.json")):
                    scene_of.update({strip_image_suffix(Path(str(img["file_name"])).name): scene
                                     for img in load_coco_json(path)["images"]})
        for rec in self.records:
            key = strip_image_suffix(Path(rec.file_name).name)
            if rec.meta.get("scene") is None and key in scene_of:
                rec.meta["scene"] = scene_of[key]

    def _resolve_suffixes(self) -> None:
        stored = None
        for rec in self.records:
            if rec.path.is_file():
                continue
            if stored is None:
                stored = {strip_image_suffix(p.name): p for p in self.image_dir.iterdir()
                          if p.suffix.lower() in IMAGE_SUFFIXES} if self.image_dir.is_dir() else {}
            rec.path = stored.get(strip_image_suffix(rec.path.name), rec.path)


def _hrsid_root(root: Path) -> Path:
    for cand in (root, root / "HRSID_JPG", root / "HRSID_png", root / "HRSID_PNG"):
        if (cand / "annotations").is_dir():
            return cand
    raise DataError(f"{root}: no HRSID layout found; looked for {HRSID_LAYOUT}")
