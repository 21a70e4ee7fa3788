"""Joint transforms on pair samples: the same geometric change for the SAR and the optical image.

Each transform is a callable ``sample -> sample`` acting on the image keys (``sar``, ``opt``;
CxHxW tensors) and passing every other key through. Randomness comes from ``torch``'s generator,
which DataLoader seeds per worker, so runs are reproducible under ``lightning.seed_everything``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn.functional as F

Sample = dict[str, Any]
IMAGE_KEYS = ("sar", "opt")


def _images(sample: Sample) -> list[str]:
    return [k for k in IMAGE_KEYS if k in sample]


class Compose:
    """Apply transforms in order (as ``torchvision.transforms.Compose``, on sample dicts)."""

    def __init__(self, transforms: Sequence[Callable[[Sample], Sample]]) -> None:
        self.transforms = list(transforms)

    def __call__(self, sample: Sample) -> Sample:
        """Return ``sample`` after every transform, first to last."""
        for t in self.transforms:
            sample = t(sample)
        return sample

    def __repr__(self) -> str:
        return f"Compose({self.transforms!r})"


class _RandomFlip:
    """Mirror both images along tensor dimension ``dim`` with probability ``p``."""

    dim = -1

    def __init__(self, p: float = 0.5) -> None:
        self.p = p

    def __call__(self, sample: Sample) -> Sample:
        if torch.rand(()) < self.p:
            sample = {**sample, **{k: sample[k].flip(self.dim) for k in _images(sample)}}
        return sample

    def __repr__(self) -> str:
        return f"{type(self).__name__}(p={self.p})"


class RandomHorizontalFlip(_RandomFlip):
    """Mirror both images left-right with probability ``p``."""

    dim = -1


class RandomVerticalFlip(_RandomFlip):
    """Mirror both images top-bottom with probability ``p``."""

    dim = -2


class RandomRot90:
    """Rotate both images by the same random multiple of 90 degrees (square patches).

    ``k`` is uniform over {0, 1, 2, 3}; ``torch.rot90`` over the last two dimensions, so a
    non-square ``(C, H, W)`` image would come out ``(C, W, H)`` for odd ``k``.
    """

    def __call__(self, sample: Sample) -> Sample:
        """Return ``sample`` with ``sar`` and ``opt`` turned by one shared random ``k * 90``°."""
        k = int(torch.randint(0, 4, ()))
        if k:
            sample = {**sample, **{n: torch.rot90(sample[n], k, (-2, -1)) for n in _images(sample)}}
        return sample

    def __repr__(self) -> str:
        return "RandomRot90()"


class Resize:
    """Resize both images to ``size x size`` px (antialiased bilinear by default).

    Meant e.g. for CPU runs at small sizes. The geometric change is identical for the pair
    because both share one grid. Uses ``torch.nn.functional.interpolate`` on ``(C, H, W)``
    images; ``mode`` is one of its modes (antialiasing applies to bilinear and bicubic only).
    uint8 images are rounded back to uint8 0..255, float images clamped to [0, 1].
    """

    def __init__(self, size: int, mode: str = "bilinear", antialias: bool = True) -> None:
        self.size, self.mode, self.antialias = int(size), mode, antialias

    def __call__(self, sample: Sample) -> Sample:
        """Return a copy of ``sample`` with ``sar`` and ``opt`` at ``(C, size, size)``."""
        out = dict(sample)
        for k in _images(sample):
            img = sample[k]
            if img.shape[-2:] == (self.size, self.size):
                continue
            aa = self.antialias and self.mode in ("bilinear", "bicubic")
            res = F.interpolate(img[None].float(), size=(self.size, self.size), mode=self.mode,
                                antialias=aa, **_align(self.mode))[0]
            out[k] = (res.round_().clamp_(0, 255).to(torch.uint8) if img.dtype == torch.uint8
                      else res.clamp_(0, 1))
        return out

    def __repr__(self) -> str:
        return f"Resize({self.size}, mode={self.mode!r})"


def _align(mode: str) -> dict[str, bool]:
    return {"align_corners": False} if mode in ("bilinear", "bicubic") else {}


def augmentations(flips: bool = True, rot90: bool = True,
                  size: int | None = None) -> Compose:
    """A common training pipeline: optional resize, joint random flips and 90-degree turns.

    Not from the papers (003 section 4.2.1 names no augmentation for BNN training); a common
    choice for co-registered patch pairs, as the geometric changes keep the pair aligned.

    Args:
        flips: add :class:`RandomHorizontalFlip` and :class:`RandomVerticalFlip` (p = 0.5 each).
        rot90: add :class:`RandomRot90`.
        size: if given, a :class:`Resize` to ``size x size`` px first.

    Returns:
        The :class:`Compose` of the chosen transforms, in that order.
    """
    ts: list[Callable[[Sample], Sample]] = []
    if size is not None:
        ts.append(Resize(size))
    if flips:
        ts += [RandomHorizontalFlip(), RandomVerticalFlip()]
    if rot90:
        ts.append(RandomRot90())
    return Compose(ts)
