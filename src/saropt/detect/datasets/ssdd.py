"""SSDD (Li et al. 2017; official release Zhang et al., Remote Sens. 13(18):3690, 2021).

Layouts accepted under ``root``:

1. ``JPEGImages/`` + ``Annotations/`` (VOC XML, one per image). The split is read from
   ``ImageSets/Main/{train,test}.txt`` when present, else the official rule: an image whose
   number ends in 1 or 9 is a test image (1160 images numbered 1..1160 give 232 test and 928
   train, exactly paper 003's 928/232).
2. The official release's ``JPEGImages_{train,test}/`` + ``Annotations_{train,test}/``; its
   ``JPEGImages_test_inshore/`` and ``JPEGImages_test_offshore/`` give the scene of test images.

Inshore/offshore: from those folders, or ``ImageSets/Main/test_{inshore,offshore}.txt``, or an
``inshore_list`` file (image stems, one a line; the other images of the split are offshore).
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from saropt.detect.datasets.base import (
    DetectionDataset,
    Record,
    Transform,
    as_boxes,
    drop_degenerate,
    image_size,
)
from saropt.detect.datasets.voc import parse_voc_xml
from saropt.errors import DataError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff")


def ssdd_is_test(stem: str) -> bool:
    """The official SSDD rule: the image number's last digit is 1 or 9."""
    digits = re.findall(r"\d+", stem)
    if not digits:
        raise DataError(f"SSDD image {stem!r} has no number; give ImageSets/Main/*.txt")
    return digits[-1][-1] in "19"


def read_list(path: Path) -> list[str]:
    if not path.is_file():
        raise DataError(f"list file {path} does not exist")
    return [Path(line.split()[0]).stem for line in path.read_text().splitlines()
            if line.strip()]


class SSDD(DetectionDataset):
    """SSDD ships (VOC XML); ``split`` is ``train``, ``test`` or ``all``; difficult objects are
    ignore regions unless ``include_difficult``."""

    name = "ssdd"

    def __init__(self, root: str | Path, split: str = "train", in_chans: int = 1,
                 transforms: Transform | None = None, inshore_list: str | Path | None = None,
                 include_difficult: bool = False) -> None:
        super().__init__(in_chans, transforms)
        if split not in ("train", "test", "all"):
            raise DataError(f"SSDD split must be train, test or all, got {split!r}")
        self.root, self.split = Path(root), split
        self.include_difficult = include_difficult
        pairs = self._pairs()
        scenes = self._scenes(inshore_list, [p[0].stem for p in pairs])
        self.records = [self._record(img, xml, scenes) for img, xml in pairs]
        if len({r.image_id for r in self.records}) != len(self.records):
            for i, rec in enumerate(self.records):  # numbers not unique: number in name order
                rec.image_id = i + 1

    def _pairs(self) -> list[tuple[Path, Path]]:
        """(image, xml) paths of the split, in name order."""
        root = self.root
        if (root / "JPEGImages").is_dir():
            images = _images_in(root / "JPEGImages")
            stems = self._split_stems([p.stem for p in images])
            return [(p, root / "Annotations" / f"{p.stem}.xml") for p in images
                    if p.stem in stems]
        if (root / "JPEGImages_train").is_dir() or (root / "JPEGImages_test").is_dir():
            splits = ("train", "test") if self.split == "all" else (self.split,)
            return [(p, root / f"Annotations_{s}" / f"{p.stem}.xml") for s in splits
                    for p in _images_in(root / f"JPEGImages_{s}")]
        raise DataError(f"{root}: no JPEGImages/ (or JPEGImages_train|test/) folder; "
                        "is this an SSDD root?")

    def _split_stems(self, stems: list[str]) -> set[str]:
        if self.split == "all":
            return set(stems)
        listed = self.root / "ImageSets" / "Main" / f"{self.split}.txt"
        if listed.is_file():
            return set(read_list(listed))
        want_test = self.split == "test"
        return {s for s in stems if ssdd_is_test(s) == want_test}

    def _scenes(self, inshore_list: str | Path | None, stems: list[str]) -> dict[str, str]:
        """Stem -> 'inshore'/'offshore' where the dataset says; empty when it does not."""
        out: dict[str, str] = {}
        main = self.root / "ImageSets" / "Main"
        for scene in ("inshore", "offshore"):
            folder = self.root / f"JPEGImages_test_{scene}"
            if folder.is_dir():
                out.update({p.stem: scene for p in _images_in(folder)})
            if (main / f"test_{scene}.txt").is_file():
                out.update({s: scene for s in read_list(main / f"test_{scene}.txt")})
        if inshore_list is not None:
            inshore = set(read_list(Path(inshore_list)))
            out.update({s: "inshore" if s in inshore else "offshore" for s in stems})
        return out

    def _record(self, img: Path, xml: Path, scenes: dict[str, str]) -> Record:
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
        digits = re.findall(r"\d+", img.stem)
        image_id = int(digits[-1]) if digits else -1
        meta = {"scene": scenes.get(img.stem), "difficult": [o.difficult for o in keep]}
        return Record(image_id, img.name, img, int(width), int(height), boxes, labels,
                      as_boxes([o.box for o in hard]), meta=meta)


def _images_in(folder: Path) -> list[Path]:
    if not folder.is_dir():
        raise DataError(f"image folder {folder} does not exist")
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
