"""Optical ship detector (OSD) pretraining (paper 000): an optical detector starts the SAR one.

The optical detector is trained on aerial images (DOTA v1 "ship", horizontal boxes, tiles of
the large images); its weights initialise the SAR ship detector.

Two steps (``docs/fusion.md``):

1. ``saropt fuse osd-train osd/faster_rcnn_dota data.root=DOTA`` trains the optical detector
   through the detection training (``saropt.detect``), three input channels.
2. ``saropt detect train CONFIG model.init=detector:OSD.ckpt`` starts the SAR detector from it:
   the whole detector (backbone, neck, RPN / YOLO head) must load, or it is an error listing what
   is missing and unused (``model.init_partial=true`` lets heads of another class count keep
   their initial values, reported); the first convolution's RGB filters
   are summed into one-channel filters (``saropt.utils.weights.adapt_input_channels``: a grey
   image x gives the response the RGB filters give to (x, x, x)). ``saropt fuse osd-transfer``
   lists what matched without training.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

#: First convolution of each detector family's backbone (the one adapted RGB -> 1 channel).
FIRST_CONV = ("backbone.body.conv1.weight", "backbone.conv1.weight", "backbone.stem.conv.weight",
              "backbone.stem_0.conv.weight", "backbone.stem.0.conv.weight")


def component(key: str) -> str:
    """The detector part a state-dict key belongs to.

    ``backbone.body``, ``backbone.fpn`` (Faster R-CNN), else the key's first name: ``rpn``,
    ``roi_heads``, ``backbone``, ``neck``, ``head``, ...
    """
    parts = key.split(".")
    if parts[0] == "backbone" and len(parts) > 2 and parts[1] in ("body", "fpn"):
        return ".".join(parts[:2])
    return parts[0]


def summarise_transfer(report: Any) -> dict[str, Any]:
    """Counts per detector part of matched / adapted / missing / mismatched tensors.

    ``report`` is a :class:`saropt.utils.weights.LoadReport`; returns ``{part: {status: n}}``.
    """
    rows: dict[str, Counter] = {}
    for status in ("matched", "adapted", "missing"):
        for key in getattr(report, status):
            rows.setdefault(component(key), Counter())[status] += 1
    for key, _, _ in report.mismatched:
        rows.setdefault(component(key), Counter())["mismatched"] += 1
    return {part: {s: c.get(s, 0) for s in ("matched", "adapted", "missing", "mismatched")}
            for part, c in rows.items()}


def transfer_report(checkpoint: str | Path, detector: str = "faster_rcnn_r50_fpn",
                    in_chans: int = 1, **detector_kw: Any) -> dict[str, Any]:
    """Build ``detector`` for ``in_chans`` inputs from an OSD checkpoint; report what matched.

    Returns the counts per part (:func:`summarise_transfer`), the load report and a printable
    ``text`` table; ``detector_kw`` go to ``create_detector``.

    Raises:
        SaroptError: the checkpoint does not fit ``detector`` (missing or unused tensors).
    """
    from saropt.detect.models import create_detector
    from saropt.utils.table import format_table

    model, report = create_detector(detector, in_chans=in_chans,
                                    init=f"detector:{checkpoint}", **detector_kw)
    parts = summarise_transfer(report)
    n_model = len(model.state_dict())
    rows = [[p, c["matched"], c["adapted"], c["missing"], c["mismatched"]]
            for p, c in parts.items()]
    text = (f"OSD {checkpoint} -> {detector} ({in_chans} channel(s)): {report.summary()}; "
            f"the target has {n_model} tensors\n"
            + format_table(rows, ["part", "matched", "adapted", "missing", "mismatched"])
            + (f"\nadapted (RGB filters summed): {', '.join(report.adapted)}"
               if report.adapted else "")
            + (f"\ndropped on purpose (the target config's): {', '.join(report.dropped)}"
               if report.dropped else "")
            + ("\nshape mismatches: " + ", ".join(f"{k} {a}->{b}" for k, a, b in
                                                  report.mismatched)
               if report.mismatched else ""))
    return {"checkpoint": str(checkpoint), "detector": detector, "in_chans": in_chans,
            "n_target_tensors": n_model, "parts": parts, "report": report.to_dict(),
            "summary": report.summary(), "text": text}


def load_osd_config(config: str | Path, overrides: list[str] | None = None) -> Any:
    """An OSD config (a ``DetectConfig`` on optical images), checked to be optical.

    Raises:
        SaroptError: an invalid config, or ``model.in_chans`` other than 3.
    """
    from saropt.config import load_config
    from saropt.detect.module import DetectConfig
    from saropt.errors import SaroptError

    cfg = load_config(DetectConfig, config, overrides)
    if cfg.model.in_chans != 3:
        raise SaroptError(f"{config}: an optical ship detector takes RGB input "
                          f"(model.in_chans=3), got {cfg.model.in_chans}")
    return cfg


def train_osd(config: str | Path, overrides: list[str] | None = None) -> dict[str, Any]:
    """Train the optical ship detector through ``saropt.detect.train``; returns its result.

    The returned ``checkpoint`` (``last.ckpt``) is what ``model.init=detector:PATH`` takes.

    Raises:
        SaroptError: as :func:`load_osd_config` and the detection training.
    """
    from saropt.detect.train import train

    result = train(load_osd_config(config, overrides))
    return {**result, "checkpoint": result["last_checkpoint"]}
