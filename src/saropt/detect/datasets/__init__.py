"""Ship detection datasets returning detection sample dicts (docs/ARCHITECTURE.md).

``image`` is CxHxW float32 in [0, 1]: C = 1 for SAR (grayscale stored as three equal channels
collapses to one), C = 3 for optical (DOTA). ``boxes`` float32 (N, 4) xyxy pixels, ``labels``
int64 (N,) with 1 = ship, ``image_id`` int, ``meta`` with ``file_name``, ``scene``
("inshore" | "offshore" | None), ``orig_size`` (H, W), ``window`` (tile in the source image or
None), ``ignore_boxes`` (difficult / crowd objects, ignored in evaluation).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from saropt.detect.datasets.base import DetectionDataset, Record, collate_detection
from saropt.detect.datasets.coco import HRSID, CocoShips
from saropt.detect.datasets.sizes import InputSize, paper_input_size
from saropt.detect.datasets.ssdd import SSDD
from saropt.errors import DataError

__all__ = ["DetectionDataset", "Record", "collate_detection", "CocoShips", "HRSID", "SSDD",
           "AIRSARShip", "DOTA", "InputSize", "paper_input_size", "build_dataset",
           "DATASET_NAMES"]

DATASET_NAMES = ("hrsid", "ssdd", "air-sarship-1.0", "air-sarship-2.0", "dota", "coco")


def __getattr__(name: str) -> Any:  # the rasterio-backed readers load on first use
    if name == "AIRSARShip":
        from saropt.detect.datasets.airsarship import AIRSARShip

        return AIRSARShip
    if name == "DOTA":
        from saropt.detect.datasets.dota import DOTA

        return DOTA
    raise AttributeError(name)


def build_dataset(name: str, root: str | Path, split: str = "test", **kwargs: Any
                  ) -> DetectionDataset:
    """A dataset reader by name, on the data under ``root``.

    Names (case and ``_`` / ``-`` free): hrsid, ssdd, air-sarship-1.0, air-sarship-2.0, dota,
    coco (coco needs ``ann_file`` and ``image_dir`` keyword arguments); ``kwargs`` go to the
    reader (``in_chans``, ...). ``split`` is ignored by dota and coco.

    Raises:
        DataError: an unknown name, an option or value the reader refuses, or data the reader
            cannot use.
        OutDirError: ``root`` is an unfinished saropt output (e.g. a killed
            ``saropt synth ships``).
    """
    from saropt.utils.outdir import require_complete

    key = name.lower().replace("_", "-").replace("airsarship", "air-sarship")
    require_complete(root)  # e.g. OUT/hrsid of a killed `saropt synth ships`
    try:
        return _build(key, name, root, split, kwargs)
    except (TypeError, ValueError) as err:  # an option the reader does not take, or a bad value
        raise DataError(f"dataset {name!r} options {kwargs}: {err}") from None


def _build(key: str, name: str, root: str | Path, split: str, kwargs: dict[str, Any]
           ) -> DetectionDataset:
    if key == "hrsid":
        return HRSID(root, split, **kwargs)
    if key == "ssdd":
        return SSDD(root, split, **kwargs)
    if key in ("air-sarship-1.0", "air-sarship-2.0"):
        from saropt.detect.datasets.airsarship import AIRSARShip

        return AIRSARShip(root, version=key.rsplit("-", 1)[1], split=split, **kwargs)
    if key == "dota":
        from saropt.detect.datasets.dota import DOTA

        return DOTA(root, **kwargs)
    if key == "coco":
        return CocoShips(root, **kwargs)
    raise DataError(f"unknown dataset {name!r}; known: {', '.join(DATASET_NAMES)}")
