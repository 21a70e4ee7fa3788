"""Network input sizes per dataset and detector, from paper 003 section 4.1, in one place.

"For Faster R-CNN, we directly input each image of AIR-SARShip-1.0, AIR-SARShip-2.0, and HRSID
into the network and resize images in SSDD to 1000 x 600 pixels. As for YOLOv3, all the images
are resized to 416 x 416 pixels."

``1000 x 600`` is read as the mmdetection-style scale (long side <= 1000, short side <= 600,
aspect ratio kept), the usual meaning of that pair for Faster R-CNN; 416 x 416 is a plain resize
(YOLOv3 multi-scale training varies it during training; 416 is the test size).
"""

from __future__ import annotations

from typing import NamedTuple

from saropt.errors import SaroptError


class InputSize(NamedTuple):
    """A network input size in pixels; ``keep_ratio`` reads it as a (long, short) side bound."""

    width: int
    height: int
    keep_ratio: bool


DATASETS = ("ssdd", "hrsid", "air-sarship-1.0", "air-sarship-2.0")
DETECTORS = ("faster_rcnn", "yolov3")

_TABLE: dict[tuple[str, str], InputSize | None] = {
    ("ssdd", "faster_rcnn"): InputSize(1000, 600, True),
    ("hrsid", "faster_rcnn"): None,  # 800 x 800 chips as they are
    ("air-sarship-1.0", "faster_rcnn"): None,  # 512 x 512 tiles as they are
    ("air-sarship-2.0", "faster_rcnn"): None,
    **{(d, "yolov3"): InputSize(416, 416, False) for d in DATASETS},
}


def _norm(name: str) -> str:
    return name.lower().replace("_", "-").replace("airsarship", "air-sarship")


def paper_input_size(dataset: str, detector: str) -> InputSize | None:
    """Paper 003 section 4.1's input size for ``dataset`` and ``detector``; None means "as is".

    Raises:
        SaroptError: a dataset or detector the table does not hold (see :data:`DATASETS`,
            :data:`DETECTORS`).
    """
    key = (_norm(dataset), detector.lower().replace("-", "_").replace(" ", "_"))
    if key not in _TABLE:
        raise SaroptError(f"no paper input size for dataset {dataset!r} and detector "
                          f"{detector!r} (datasets {DATASETS}, detectors {DETECTORS})")
    return _TABLE[key]
