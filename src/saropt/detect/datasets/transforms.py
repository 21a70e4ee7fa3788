"""Joint transforms of a detection sample (image and boxes together): ``sample -> sample``.

Training-time flips happen on the batch, in :func:`saropt.detect.module.hflip` (``data.hflip``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from saropt.data.transforms import Compose  # noqa: F401  (one Compose for every sample dict)
from saropt.detect.datasets.base import Sample
from saropt.detect.datasets.sizes import InputSize


class Resize:
    """Resize a sample's image ``(C, H, W)`` and its boxes to an :class:`InputSize`.

    ``keep_ratio`` scales so that the long side fits the larger and the short side the smaller
    of ``width``, ``height`` (mmdetection's ``(1000, 600)``), else stretches to exactly
    ``width`` x ``height`` (bilinear). Boxes and ``meta["ignore_boxes"]`` scale with the image;
    ``meta["scale"]`` = (sx, sy), new over old pixels.
    """

    def __init__(self, size: InputSize) -> None:
        self.size = size

    def out_hw(self, h: int, w: int) -> tuple[int, int]:
        """The output ``(height, width)`` in pixels for an ``h`` x ``w`` input."""
        if not self.size.keep_ratio:
            return self.size.height, self.size.width
        long_side, short_side = max(self.size), min(self.size[:2])
        s = min(long_side / max(h, w), short_side / min(h, w))
        return max(1, round(h * s)), max(1, round(w * s))

    def __call__(self, sample: Sample) -> Sample:
        """The resized sample (a new dict; the input is not changed)."""
        img = sample["image"]
        h, w = img.shape[-2:]
        nh, nw = self.out_hw(h, w)
        sx, sy = nw / w, nh / h
        img = F.interpolate(img[None], size=(nh, nw), mode="bilinear", align_corners=False)[0]
        scale = torch.tensor([sx, sy, sx, sy], dtype=torch.float32)
        meta = {**sample["meta"], "scale": (sx, sy)}
        if "ignore_boxes" in meta:
            meta["ignore_boxes"] = meta["ignore_boxes"] * scale
        return {**sample, "image": img.clamp_(0, 1), "boxes": sample["boxes"] * scale,
                "meta": meta}
