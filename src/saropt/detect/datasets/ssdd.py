"""SSDD (Li et al. 2017; official release Zhang et al., Remote Sens. 13(18):3690, 2021).

Layouts (``layout="auto"`` takes the first that ``root`` holds; ``root`` may also be the folder
holding ``voc_style/`` or ``coco_style/``, or ``BBox_SSDD/`` with them):

- ``voc``: ``JPEGImages/`` + ``Annotations/`` (VOC XML, one per image). The split is read from
  ``ImageSets/Main/{train,test}.txt`` when present, else from the release's
  ``JPEGImages_{train,test}/`` folders when present, else the official rule: an image whose
  number ends in 1 or 9 is a test image (1160 images numbered 1..1160 give 232 test and 928
  train, exactly paper 003's 928/232).
- ``voc_split``: the release's ``JPEGImages_{train,test}/`` + ``Annotations_{train,test}/``
  (a split given only as ``JPEGImages_<split>_{inshore,offshore}/`` + twins reads those).
- ``coco``: the release's ``coco_style``: ``images/{train,test}/`` +
  ``annotations/{train,test}.json``.

Inshore/offshore, for train and test images alike: the release's
``JPEGImages_{train,test}_{inshore,offshore}/`` folders (or their ``Annotations_*`` twins), the
``coco_style`` files ``annotations/{split}_{inshore,offshore}.json`` (or
``images/{split}_{scene}/``), ``ImageSets/Main/{split}_{inshore,offshore}.txt``, or an
``inshore_list`` file (image ids, one a line; the other images of the split are offshore).

Image ids are the number in the file name (``000123.jpg`` -> 123) in every layout, so results
written on one layout score on another; names without unique numbers are numbered in name order.
"""

from __future__ import annotations

import re
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
    read_id_list,
    select_listed,
    strip_image_suffix,
)
from saropt.detect.datasets.voc import parse_voc_xml
from saropt.errors import DataError

LAYOUTS = {
    "voc": "voc_style: JPEGImages/ + Annotations/ (+ ImageSets/Main/<split>.txt)",
    "voc_split": "voc_style: JPEGImages_{train,test}[_{inshore,offshore}]/ + Annotations_*/",
    "coco": "coco_style: images/<split>/ + annotations/<split>.json",
}
SCENES = ("inshore", "offshore")


def ssdd_is_test(stem: str) -> bool:
    """Whether an SSDD image is a test image by the official rule: its number ends in 1 or 9.

    Raises:
        DataError: ``stem`` holds no number.
    """
    digits = re.findall(r"\d+", stem)
    if not digits:
        raise DataError(f"SSDD image {stem!r} has no number; give ImageSets/Main/*.txt")
    return digits[-1][-1] in "19"


def find_layout(root: Path, layout: str = "auto") -> tuple[Path, str]:
    """``(folder, layout name)`` of the SSDD layout under ``root`` (see :data:`LAYOUTS`).

    Raises:
        DataError: ``layout`` unknown, or no such layout found (listing those looked for).
    """
    if layout not in ("auto", *LAYOUTS):
        raise DataError(f"SSDD layout must be auto, {', '.join(LAYOUTS)}; got {layout!r}")
    cands = [root, root / "voc_style", root / "coco_style", root / "BBox_SSDD" / "voc_style",
             root / "BBox_SSDD" / "coco_style"]
    for folder in cands:
        for name in LAYOUTS if layout == "auto" else (layout,):
            if _holds(folder, name):
                return folder, name
    looked = "; ".join(LAYOUTS.values()) if layout == "auto" else LAYOUTS[layout]
    raise DataError(f"{root}: no SSDD layout found (is this an SSDD root?); looked for {looked} "
                    "in it or in its voc_style/, coco_style/ or BBox_SSDD/ folder")


def _holds(folder: Path, layout: str) -> bool:
    if layout == "voc":
        return (folder / "JPEGImages").is_dir() and (folder / "Annotations").is_dir()
    if layout == "voc_split":
        return any(_split_folders(folder, s) for s in ("train", "test"))
    return (folder / "images").is_dir() and any((folder / "annotations").glob("*.json"))


class SSDD(DetectionDataset):
    """SSDD ships (VOC XML or the release's COCO JSON); layouts and splits in the module docstring.

    ``split`` is ``train``, ``test`` or ``all``; difficult objects are ignore regions unless
    ``include_difficult``; SAR images read with ``in_chans`` channels. Paper 003 section 4.1:
    1160 images, 928 train and 232 test.

    Raises:
        DataError: a bad ``split`` or ``layout``, no SSDD layout under ``root``, a split with
            no image, or an image without its annotation.
    """

    name = "ssdd"

    def __init__(self, root: str | Path, split: str = "train", in_chans: int = 1,
                 transforms: Transform | None = None, inshore_list: str | Path | None = None,
                 include_difficult: bool = False, layout: str = "auto") -> None:
        super().__init__(in_chans, transforms)
        if split not in ("train", "test", "all"):
            raise DataError(f"SSDD split must be train, test or all, got {split!r}")
        self.split, self.include_difficult = split, include_difficult
        self.root, self.layout = find_layout(Path(root), layout)
        self.splits = ("train", "test") if split == "all" else (split,)
        if self.layout == "coco":
            self.records = self._coco_records()
        else:
            self.records = [self._record(img, xml) for img, xml in self._pairs()]
        if not self.records:
            raise DataError(f"{self.root}: the SSDD {split} split ({LAYOUTS[self.layout]}) "
                            "holds no image")
        scenes = self._scenes(inshore_list, [strip_image_suffix(r.file_name)
                                             for r in self.records])
        for rec in self.records:
            rec.meta["scene"] = scenes.get(strip_image_suffix(rec.file_name))
        _number_by_name(self.records, self._all_names())

    def _all_names(self) -> list[str]:
        """The image file names of every split of the root (image ids are numbered on them)."""
        from saropt.detect.datasets.coco import load_coco_json

        if self.layout == "voc":
            return [p.name for p in _images_in(self.root / "JPEGImages")]
        if self.layout == "voc_split":
            return [p.name for s in ("train", "test") for images, _ in
                    _split_folders(self.root, s) for p in _images_in(images)]
        files = [self.root / "annotations" / f"{s}.json" for s in ("train", "test")]
        return [Path(str(img["file_name"]).replace("\\", "/")).name for f in files
                if f.is_file() for img in load_coco_json(f)["images"]]

    # ----------------------------------------------------------------- VOC layouts
    def _pairs(self) -> list[tuple[Path, Path]]:
        """(image, xml) paths of the split, in name order."""
        root = self.root
        if self.layout == "voc_split":
            return [(p, _first_file([xmls, root / f"Annotations_{s}", root / "Annotations"],
                                    f"{p.stem}.xml"))
                    for s in self.splits
                    for images, xmls in _split_folders(root, s, required=True)
                    for p in _images_in(images)]
        images = _images_in(root / "JPEGImages")
        if self.split != "all":
            images = self._split_images(images)
        return [(p, root / "Annotations" / f"{p.stem}.xml") for p in images]

    def _split_images(self, images: list[Path]) -> list[Path]:
        listed = self.root / "ImageSets" / "Main" / f"{self.split}.txt"
        key = lambda p: strip_image_suffix(p.name)  # noqa: E731
        if listed.is_file():
            return select_listed(images, key, read_id_list(listed), listed)
        folders = _split_folders(self.root, self.split)
        if folders:
            ids = [key(p) for folder, _ in folders for p in _images_in(folder)]
            return select_listed(images, key, ids, folders[0][0])
        want_test = self.split == "test"
        return [p for p in images if ssdd_is_test(p.stem) == want_test]

    def _record(self, img: Path, xml: Path) -> Record:
        if not xml.is_file():
            raise DataError(f"SSDD image {img} has no annotation {xml}")
        ann = parse_voc_xml(xml)
        width, height = ann.width, ann.height
        if not width or not height:
            width, height = image_size(img)
        keep = [o for o in ann.objects if self.include_difficult or not o.difficult]
        hard = [o for o in ann.objects if o.difficult and not self.include_difficult]
        boxes = as_boxes([o.box for o in keep])
        labels = np.ones(len(boxes), np.int64)
        boxes, labels = drop_degenerate(boxes, labels, str(xml))
        meta = {"scene": None, "difficult": [o.difficult for o in keep]}
        return Record(-1, img.name, img, int(width), int(height), boxes, labels,
                      as_boxes([o.box for o in hard]), meta=meta)

    # ----------------------------------------------------------------- COCO layout
    def _coco_records(self) -> list[Record]:
        from saropt.detect.datasets.coco import load_coco_json, records_from_coco

        records = []
        for s in self.splits:
            ann = self.root / "annotations" / f"{s}.json"
            if not ann.is_file():
                raise DataError(f"SSDD coco_style: {ann} does not exist")
            data = load_coco_json(ann)
            if len(data["categories"]) != 1:
                raise DataError(f"{ann}: SSDD has one category (ship), the file has "
                                f"{len(data['categories'])}")
            records += records_from_coco(data, self.root / "images" / s, ann)
        for rec in records:
            rec.meta["difficult"] = [False] * len(rec.boxes)
            rec.file_name = Path(rec.file_name).name
        return sorted(records, key=lambda r: r.file_name)

    # ----------------------------------------------------------------- scenes
    def _scenes(self, inshore_list: str | Path | None, ids: list[str]) -> dict[str, str]:
        """Image id -> 'inshore'/'offshore' where the dataset says; empty when it does not."""
        from saropt.detect.datasets.coco import load_coco_json

        out: dict[str, str] = {}
        main = self.root / "ImageSets" / "Main"
        for split in ("train", "test"):
            for scene in SCENES:
                tag = f"{split}_{scene}"
                for folder in (self.root / f"JPEGImages_{tag}", self.root / "images" / tag):
                    if folder.is_dir():
                        out.update({strip_image_suffix(p.name): scene
                                    for p in _images_in(folder)})
                xmls = self.root / f"Annotations_{tag}"
                if xmls.is_dir():
                    out.update({p.stem: scene for p in xmls.glob("*.xml")})
                if (main / f"{tag}.txt").is_file():
                    out.update({s: scene for s in read_id_list(main / f"{tag}.txt")})
                js = self.root / "annotations" / f"{tag}.json"
                if js.is_file():
                    out.update({strip_image_suffix(Path(str(i["file_name"])).name): scene
                                for i in load_coco_json(js)["images"]})
        if inshore_list is not None:
            inshore = set(read_id_list(Path(inshore_list)))
            out.update({s: "inshore" if s in inshore else "offshore" for s in ids})
        return out


def _number_by_name(records: list[Record], all_names: list[str]) -> None:
    """Set each record's image id to the last number in its file name.

    When those are not unique among all the root's images (``all_names``, every split), ids
    are 1.. in the name order of all of them, so an image has the same id in every split.
    """
    keys = sorted({strip_image_suffix(n) for n in all_names}
                  | {strip_image_suffix(r.file_name) for r in records})
    nums = [re.findall(r"\d+", k) for k in keys]
    numbers = [int(d[-1]) if d else -1 for d in nums]
    if -1 in numbers or len(set(numbers)) != len(numbers):
        numbers = list(range(1, len(keys) + 1))
    id_of = dict(zip(keys, numbers))
    for rec in records:
        rec.image_id = id_of[strip_image_suffix(rec.file_name)]


def _split_folders(root: Path, split: str, required: bool = False) -> list[tuple[Path, Path]]:
    """(image folder, XML folder) pairs holding a split in the release's voc_style.

    ``JPEGImages_<split>/`` + ``Annotations_<split>/``, else (copies that give only the scene
    folders) ``JPEGImages_<split>_{inshore,offshore}/`` + their ``Annotations_*`` twins.
    """
    whole = root / f"JPEGImages_{split}"
    if whole.is_dir():
        return [(whole, root / f"Annotations_{split}")]
    found = [(root / f"JPEGImages_{split}_{sc}", root / f"Annotations_{split}_{sc}")
             for sc in SCENES if (root / f"JPEGImages_{split}_{sc}").is_dir()]
    if not found and required:
        raise DataError(f"{root}: no {split} images: neither JPEGImages_{split}/ nor "
                        f"JPEGImages_{split}_inshore/ / JPEGImages_{split}_offshore/ exists")
    return found


def _first_file(folders: list[Path], name: str) -> Path:
    """``folder/name`` in the first folder holding it (the first folder when none does)."""
    return next((f / name for f in folders if (f / name).is_file()), folders[0] / name)


def _images_in(folder: Path) -> list[Path]:
    if not folder.is_dir():
        raise DataError(f"image folder {folder} does not exist")
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES
                  and not p.name.startswith("."))
