"""Detectors that see scene tiles, each at the pixel scale it was trained at.

A ``saropt detect train`` checkpoint (:class:`CheckpointDetector`), or any object with the
:class:`SceneDetector` interface (tests use a deterministic blob detector).

A detector trained on ``c`` px chips that its model resized to ``m`` px sees the world at pixel
scale ``s = m / c``. A scene tile of any size ``N`` is resized by that same ``s`` (for
torchvision detectors by setting ``GeneralizedRCNNTransform.min_size``/``max_size`` for the
run; for YOLOv3 by its ``input_size``), so a larger tile is never shrunk to the training input
size. Old checkpoints without a record get scale 1 and a warning.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any

import numpy as np

from saropt.detect.scene.radiometry import DEFAULT_RADIOMETRY, Radiometry, training_radiometry
from saropt.errors import SaroptError

log = logging.getLogger(__name__)

#: smallest model input side (pixels after the pixel-scale resize) a tile may have: below it
#: the FPN's coarsest level (stride 64) has no cell
MIN_MODEL_INPUT = 64
DEFAULT_OVERLAP = 0.25

Detections = tuple[np.ndarray, np.ndarray, np.ndarray]  # boxes (N, 4) xyxy, scores, labels


def model_input_size(model: Any) -> tuple[float, float] | None:
    """``(min_size, max_size)`` px a detector resizes its input to, or None when it has none.

    torchvision detectors: ``transform.min_size[-1]`` and ``max_size``; YOLOv3: its square
    ``input_size`` twice.
    """
    if hasattr(model, "transform"):
        return float(model.transform.min_size[-1]), float(model.transform.max_size)
    if hasattr(model, "input_size"):
        return float(model.input_size), float(model.input_size)
    return None


def pixel_scale(model: Any, height: int, width: int) -> float:
    """The resize factor (model px per image px) a model applies to a ``height`` x ``width`` image.

    1 for a model that does not resize.
    """
    size = model_input_size(model)
    if size is None:
        return 1.0
    if hasattr(model, "transform"):
        return min(size[0] / min(height, width), size[1] / max(height, width))
    return size[0] / max(height, width)


def training_scene_record(cfg: Any, model: Any, image_size: tuple[int, int] | None
                          ) -> dict[str, Any]:
    """What ``saropt detect train`` records in a checkpoint for scenes (hyper-parameter ``scene``).

    Radiometry (None when unknown), typical training image size ``[h, w]`` px and the model's
    pixel scale on it, and the training tile overlap if the dataset options give one.
    """
    rad = training_radiometry(cfg.data)
    rec: dict[str, Any] = {"radiometry": rad.model_dump(mode="json") if rad else None,
                           "train_image_size": list(image_size) if image_size else None,
                           "pixel_scale": (pixel_scale(model, *image_size) if image_size
                                           else None)}
    if "overlap" in cfg.data.options:
        rec["overlap"] = float(cfg.data.options["overlap"])
    return rec


def file_sha256(path: Path) -> str:
    """Hex SHA-256 of a file's bytes (``hashlib.file_digest``, 256 KiB reads; ~0.1 s per 50 MB)."""
    import hashlib

    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


class SceneDetector:
    """The interface :func:`saropt.detect.scene.run.run_scene` uses.

    Subclasses set the attributes (``tile`` side in scene px, ``overlap`` fraction, ``scale``
    model px per scene px, ``radiometry``, ``fingerprint`` for resume) and implement
    :meth:`detect`.
    """

    name: str = "detector"
    radiometry: Radiometry = DEFAULT_RADIOMETRY
    tile: int = 512  # default tile side (scene pixels)
    overlap: float = DEFAULT_OVERLAP
    scale: float = 1.0  # model pixels per scene pixel
    notes: list[str]
    fingerprint: str = ""

    def min_tile(self) -> int:
        """The smallest tile side in scene px whose model input reaches :data:`MIN_MODEL_INPUT`."""
        return int(math.ceil(MIN_MODEL_INPUT / self.scale))

    def prepare(self, tile_h: int, tile_w: int) -> None:
        """Called once per run with the (constant) tile shape before :meth:`detect`."""

    def detect(self, tiles: list[np.ndarray]) -> list[Detections]:
        """uint8 ``(H, W)`` tiles -> per tile ``(boxes (N, 4) xyxy tile px, scores, labels)``."""
        raise NotImplementedError


class CheckpointDetector(SceneDetector):
    """A ``saropt detect train`` checkpoint (Faster R-CNN or YOLOv3) on scene tiles.

    Radiometry, pixel scale, tile size and overlap come from the checkpoint's scene record
    (:func:`training_scene_record`); what is missing is assumed and said in ``notes``.
    ``score_thresh`` overrides the model's test-time score threshold.

    Raises:
        SaroptError: an unreadable checkpoint, or an optical detector (``in_chans`` != 1).
    """

    def __init__(self, checkpoint: str | Path, device: str = "cpu",
                 score_thresh: float | None = None) -> None:
        import torch

        from saropt.detect.predict import _set_score_thresh, load_detector_hp

        path = Path(checkpoint)
        self.model, self.cfg, hp = load_detector_hp(path, device)
        self.device = torch.device(device)
        if score_thresh is not None:
            _set_score_thresh(self.model, score_thresh)
        if self.cfg.model.in_chans != 1:
            raise SaroptError(f"{path}: an optical detector ({self.cfg.model.in_chans} input "
                              "channels); scenes need a SAR detector (in_chans 1)")
        # the content, not size and mtime: a checkpoint replaced by `cp -p` or a restored
        # backup keeps both, and its tiles must not be reused on resume
        self.fingerprint = (f"{path.resolve()}:sha256={file_sha256(path)}:"
                            f"score_thresh={score_thresh}")
        self.name = path.parent.parent.name if path.parent.name == "checkpoints" else path.stem
        self.notes = []
        rec = hp.get("scene") or {}
        rad = rec.get("radiometry")
        if rad is not None:
            self.radiometry = Radiometry.model_validate(rad)
        else:
            known = training_radiometry(self.cfg.data)
            self.radiometry = known or DEFAULT_RADIOMETRY
            if known is None:
                self.notes.append(f"{path}: the checkpoint does not record how its 8-bit "
                                  "training images were made; using the default 0.5/99.5 "
                                  "percentile linear stretch (set data.radiometry when "
                                  "training)")
        size = rec.get("train_image_size")
        if rec.get("pixel_scale") and size:
            self.scale, self.tile = float(rec["pixel_scale"]), int(max(size))
        else:
            in_size = model_input_size(self.model)
            self.scale, self.tile = 1.0, int(in_size[0]) if in_size else 512
            self.notes.append(f"{path}: the checkpoint does not record its training image size; "
                              f"assuming pixel scale 1 and {self.tile} px tiles")
        opts = self.cfg.data.options
        self.overlap = float(rec.get("overlap", opts.get("overlap", DEFAULT_OVERLAP)))

    def prepare(self, tile_h: int, tile_w: int) -> None:
        """Set the model's resize so a tile is scaled by :attr:`scale` (YOLOv3: multiple of 32)."""
        m = self.model
        if hasattr(m, "transform"):
            m.transform.min_size = (self.scale * min(tile_h, tile_w),)
            m.transform.max_size = self.scale * max(tile_h, tile_w)
        elif hasattr(m, "input_size"):
            m.input_size = max(32, int(round(self.scale * max(tile_h, tile_w) / 32)) * 32)

    def square(self) -> bool:
        """YOLOv3 resizes to a square: non-square tiles are padded."""
        return not hasattr(self.model, "transform")

    def detect(self, tiles: list[np.ndarray]) -> list[Detections]:
        """One batch of uint8 ``(H, W)`` tiles through the model; boxes in tile pixels."""
        import torch

        batch = [torch.from_numpy(np.ascontiguousarray(t)).to(self.device, torch.float32)
                 .div_(255.0)[None] for t in tiles]
        with torch.inference_mode():
            outs = self.model(batch)
        return [(o["boxes"].cpu().numpy().astype(np.float32),
                 o["scores"].cpu().numpy().astype(np.float32),
                 o["labels"].cpu().numpy().astype(np.int64)) for o in outs]
