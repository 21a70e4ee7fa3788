"""The common reader: records (one per image or tile) -> detection sample dicts.

A sample is ``{"image": CxHxW float32 in [0, 1], "boxes": float32 (N, 4) xyxy, "labels": int64
(N,), "image_id": int, "meta": {...}}`` (docs/ARCHITECTURE.md). Objects flagged difficult/crowd
that are not training targets travel in ``meta["ignore_boxes"]`` and become ``iscrowd=1``
annotations in :meth:`DetectionDataset.to_coco`, so evaluation ignores detections on them.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import torch
from torch.utils.data import Dataset

from saropt.errors import DataError
from saropt.utils.io import read_text_file

log = logging.getLogger(__name__)

Sample = dict[str, Any]
Transform = Callable[[Sample], Sample]
T = TypeVar("T")
SHIP_CATEGORIES: list[dict[str, Any]] = [{"id": 1, "name": "ship"}]


@dataclass
class Record:
    """One image (or one tile of a scene) and its objects, in that image's pixel coordinates."""

    image_id: int
    file_name: str
    path: Path
    width: int
    height: int
    boxes: np.ndarray  # (N, 4) float32 xyxy
    labels: np.ndarray  # (N,) int64, 1-based
    ignore_boxes: np.ndarray = field(default_factory=lambda: np.zeros((0, 4), np.float32))
    window: tuple[int, int, int, int] | None = None  # (x0, y0, x1, y1) in the source image
    meta: dict[str, Any] = field(default_factory=dict)
    ignore_labels: np.ndarray | None = None  # labels of ignore_boxes (None: all ships, 1)


IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff")


def strip_image_suffix(name: str) -> str:
    """``name`` without a known image suffix (``.jpg``, ``.png``, ``.tif``, ..., any case).

    Only :data:`IMAGE_SUFFIXES` are stripped: ids with dots such as ``SARShip-1.0-3`` stay whole.
    """
    stem, dot, ext = name.rpartition(".")
    return stem if dot and stem and "." + ext.lower() in IMAGE_SUFFIXES else name


def read_id_list(path: Path) -> list[str]:
    """Image ids listed in a split file, one a line; blank lines are skipped.

    Each id is the line's first word; a path keeps its last part and a known image suffix is
    stripped, nothing else (``SARShip-1.0-3`` is an id).

    Raises:
        DataError: the file does not exist or cannot be read.
    """
    if not path.is_file():
        raise DataError(f"list file {path} does not exist")
    try:
        lines = read_text_file(path).splitlines()
    except OSError as err:
        raise DataError(f"list file {path}: cannot read ({err})") from None
    return [strip_image_suffix(line.split()[0].replace("\\", "/").rsplit("/", 1)[-1])
            for line in lines if line.strip()]


def select_listed(items: Sequence[T], key: Callable[[T], str], listed: list[str],
                  list_path: Path) -> list[T]:
    """The ``items`` whose id (``key``) is in ``listed``, in ``items`` order.

    Listed ids without an item are logged with their count.

    Raises:
        DataError: no item selected (naming ``list_path`` and the ids looked for).
    """
    wanted = set(listed)
    chosen = [it for it in items if key(it) in wanted]
    if not chosen:
        shown = ", ".join(listed[:5]) + (f", ... ({len(listed)} in all)" if len(listed) > 5
                                         else "")
        raise DataError(f"split list {list_path} selects no image: none of the ids it lists "
                        f"({shown or 'none'}) is an image found under the root")
    missing = wanted - {key(it) for it in chosen}
    if missing:
        log.warning("split list %s: %d listed id(s) have no image, e.g. %s", list_path,
                    len(missing), sorted(missing)[0])
    return chosen


def as_boxes(values: Sequence[Sequence[float]] | np.ndarray) -> np.ndarray:
    """Boxes as a float32 ``(N, 4)`` array (``(0, 4)`` for none); coordinates unchanged."""
    return np.asarray(values, dtype=np.float32).reshape(-1, 4)


def drop_degenerate(boxes: np.ndarray, labels: np.ndarray, source: str) -> tuple[np.ndarray,
                                                                                  np.ndarray]:
    """Remove xyxy boxes ``(N, 4)`` with no area and their labels ``(N,)``, logging how many.

    torchvision's detectors reject boxes with ``x2 <= x1`` or ``y2 <= y1``; ``source`` names the
    file in the log line.
    """
    ok = (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])
    if not ok.all():
        log.warning("%s: dropped %d box(es) with zero width or height", source, int((~ok).sum()))
    return boxes[ok], labels[ok]


def read_image(path: Path, in_chans: int, window: tuple[int, int, int, int] | None = None
               ) -> np.ndarray:
    """An 8-bit image as ``(H, W)`` (``in_chans=1``) or ``(H, W, 3)`` uint8, cropped to ``window``.

    ``window`` is ``(x0, y0, x1, y1)`` in the file's pixels (Pillow's ``crop``; a window beyond
    the image is padded with zeros).

    Grayscale stored as three equal channels (HRSID, SSDD JPEGs) collapses to one channel
    exactly (Pillow's ``L`` of equal R=G=B is that value). 16-bit and float grayscale images
    (Pillow modes I;16, I, F) are stretched to 8 bits between their 0.5 and 99.5 percentiles,
    the AIR-SARShip rule (:mod:`saropt.detect.datasets.airsarship`); Pillow's own conversion
    would clip them to white.

    Raises:
        DataError: the file cannot be opened or decoded by Pillow.
    """
    from PIL import Image

    old = Image.MAX_IMAGE_PIXELS
    Image.MAX_IMAGE_PIXELS = None  # DOTA scenes reach 20000x20000
    try:
        with Image.open(path) as img:
            if img.mode.startswith(("I", "F")):
                img = _stretch_to_8bit(img)
            img = img.convert("L" if in_chans == 1 else "RGB")
            if window is not None:
                img = img.crop(window)
            return np.array(img)
    except (OSError, ValueError) as err:
        raise DataError(f"{path}: cannot read image ({err})") from None
    finally:
        Image.MAX_IMAGE_PIXELS = old


def _stretch_to_8bit(img: Any) -> Any:
    """A 16-bit or float grayscale Pillow image as an 8-bit ``L`` image (percentile stretch)."""
    from PIL import Image

    from saropt.detect.datasets.airsarship import scale_to_uint8

    arr = np.asarray(img)
    finite = arr[np.isfinite(arr)] if arr.dtype.kind == "f" else arr
    lo, hi = np.percentile(finite, (0.5, 99.5)) if finite.size else (0.0, 1.0)
    return Image.fromarray(scale_to_uint8(np.nan_to_num(arr, nan=lo), lo, hi))


def image_size(path: Path) -> tuple[int, int]:
    """``(width, height)`` in pixels from the file header, without decoding the pixels.

    Raises:
        DataError: Pillow cannot open the file.
    """
    from PIL import Image

    old = Image.MAX_IMAGE_PIXELS
    Image.MAX_IMAGE_PIXELS = None
    try:
        with Image.open(path) as img:
            return img.size
    except (OSError, ValueError) as err:
        raise DataError(f"{path}: cannot read image ({err})") from None
    finally:
        Image.MAX_IMAGE_PIXELS = old


def to_tensor(array: np.ndarray) -> torch.Tensor:
    """A uint8 ``(H, W)`` or ``(H, W, C)`` array as a float32 ``(C, H, W)`` tensor in [0, 1]."""
    t = torch.from_numpy(np.ascontiguousarray(array))
    t = t.unsqueeze(0) if t.ndim == 2 else t.permute(2, 0, 1)
    return t.float().div_(255.0)


class DetectionDataset(Dataset):
    """Base reader of a ship detection dataset: one :class:`Record` per image or tile.

    Subclasses fill ``self.records``; samples (see the module docstring: ``image`` ``(C, H, W)``
    float32 in [0, 1], ``boxes`` ``(N, 4)`` xyxy pixels, ``labels`` ``(N,)`` 1-based), COCO
    ground truth and plots are shared. ``transforms`` is a joint callable ``sample -> sample``
    (see ``transforms.py``).

    Args:
        in_chans: 1 (SAR, grey) or 3 (optical RGB): the channels images are read with.
        transforms: applied to each sample, or None.
        categories: COCO categories, label ``k`` being ``categories[k - 1]``; default ship only.

    Raises:
        DataError: ``in_chans`` is not 1 or 3.
    """

    name = "detection"

    def __init__(self, in_chans: int = 1, transforms: Transform | None = None,
                 categories: list[dict[str, Any]] | None = None) -> None:
        if in_chans not in (1, 3):
            raise DataError(f"in_chans must be 1 (SAR) or 3 (optical), got {in_chans}")
        self.in_chans = in_chans
        self.transforms = transforms
        self.categories = categories or list(SHIP_CATEGORIES)
        self.records: list[Record] = []

    def __len__(self) -> int:
        return len(self.records)

    def load_image(self, rec: Record) -> np.ndarray:
        """The record's pixels (its ``window`` only) as uint8 ``(H, W)`` or ``(H, W, 3)``."""
        return read_image(rec.path, self.in_chans, rec.window)

    def __getitem__(self, index: int) -> Sample:
        rec = self.records[index]
        image = to_tensor(self.load_image(rec))
        sample = {
            "image": image,
            "boxes": torch.from_numpy(rec.boxes.astype(np.float32)).reshape(-1, 4),
            "labels": torch.from_numpy(rec.labels.astype(np.int64)).reshape(-1),
            "image_id": int(rec.image_id),
            "meta": {"file_name": rec.file_name, "scene": rec.meta.get("scene"),
                     "orig_size": (rec.height, rec.width), "window": rec.window,
                     "ignore_boxes": torch.from_numpy(rec.ignore_boxes.astype(np.float32)),
                     **{k: v for k, v in rec.meta.items() if k != "scene"}},
        }
        return self.transforms(sample) if self.transforms else sample

    def category_id(self, label: int) -> int:
        """The COCO category id of a 1-based label."""
        return int(self.categories[label - 1]["id"])

    def to_coco(self) -> dict[str, Any]:
        """Ground truth as a COCO dict (one image per record; ignored objects ``iscrowd=1``)."""
        images, anns = [], []
        for rec in self.records:
            entry = {"id": int(rec.image_id), "file_name": rec.file_name,
                     "width": int(rec.width), "height": int(rec.height)}
            entry.update({k: v for k, v in rec.meta.items() if _jsonable(v)})
            images.append(entry)
            for box, label in zip(rec.boxes, rec.labels):
                anns.append(_coco_ann(len(anns) + 1, rec.image_id, box,
                                      self.category_id(int(label)), 0))
            ign_labels = (rec.ignore_labels if rec.ignore_labels is not None
                          else np.ones(len(rec.ignore_boxes), np.int64))
            for box, label in zip(rec.ignore_boxes, ign_labels):
                anns.append(_coco_ann(len(anns) + 1, rec.image_id, box,
                                      self.category_id(int(label)), 1))
        return {"images": images, "annotations": anns, "categories": self.categories}

    def write_coco(self, path: str | Path) -> Path:
        """Write :meth:`to_coco` to ``path`` atomically; returns the path."""
        from saropt.utils.io import write_json_atomic

        return write_json_atomic(path, self.to_coco())

    def record_by_id(self, image_id: int) -> Record:
        """The record with this ``image_id`` (``KeyError`` when there is none)."""
        if not hasattr(self, "_by_id"):
            self._by_id = {r.image_id: r for r in self.records}
        return self._by_id[image_id]

    def plot(self, sample: Sample, predictions: dict[str, Any] | None = None,
             score_thr: float = 0.5) -> Any:
        """A matplotlib figure of one sample with its ground truth and optional predictions.

        Ground truth green; predictions (``boxes`` ``(N, 4)`` xyxy pixels, ``scores``
        ``(N,)``) with score >= ``score_thr`` blue when correct, red when a false alarm; missed
        ships circled yellow (see :mod:`saropt.detect.viz`).
        """
        from saropt.detect.viz import plot_sample

        return plot_sample(sample, predictions, score_thr=score_thr)


def _jsonable(v: Any) -> bool:
    return v is None or isinstance(v, (str, int, float, bool))


def _coco_ann(ann_id: int, image_id: int, box: np.ndarray, cat: int, crowd: int) -> dict:
    x1, y1, x2, y2 = (float(v) for v in box)
    w, h = x2 - x1, y2 - y1
    return {"id": ann_id, "image_id": int(image_id), "category_id": cat,
            "bbox": [x1, y1, w, h], "area": w * h, "iscrowd": crowd}


def collate_detection(batch: list[Sample]) -> tuple[list[torch.Tensor], list[dict[str, Any]]]:
    """Lists of images and targets as torchvision detection models take them.

    For ``model(images, targets)``: images ``(C, H, W)`` of any sizes, targets ``{"boxes"
    (N, 4) xyxy pixels, "labels" (N,), "image_id", "meta"}``; a DataLoader ``collate_fn``.
    """
    images = [s["image"] for s in batch]
    targets = [{"boxes": s["boxes"], "labels": s["labels"], "image_id": s["image_id"],
                "meta": s["meta"]} for s in batch]
    return images, targets
