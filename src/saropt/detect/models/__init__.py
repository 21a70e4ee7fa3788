"""Ship detectors by name, with their backbone initialised from nothing, ImageNet, a BNN SAR
encoder (OSM) or another detector (OSD).

>>> model, report = create_detector("faster_rcnn_r18_fpn", in_chans=1, init="random")

Every detector takes a list of ``CxHxW`` float images in [0, 1] and, in train mode with targets
(``{"boxes": xyxy, "labels": 1 = ship}``), returns a dict of losses; in eval mode it returns
``[{"boxes", "scores", "labels"}]`` in input-image pixels (torchvision's detection interface).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from torch import Tensor, nn

from saropt.errors import SaroptError
from saropt.utils.weights import LoadReport, load_state_dict_report, read_weights

#: ImageNet RGB statistics; a one-channel input uses their mean (grey through RGB filters).
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
INIT_KINDS = ("random", "imagenet", "bnn", "detector")


@dataclass(frozen=True)
class DetectorSpec:
    """A registered detector: its family, backbone architecture and default keyword arguments."""

    family: str  # "faster_rcnn" | "yolov3"
    backbone: str  # torchvision ResNet name (Faster R-CNN) or timm model name (YOLOv3)
    description: str
    out_indices: tuple[int, ...] = ()
    defaults: dict[str, Any] = field(default_factory=dict)


REGISTRY: dict[str, DetectorSpec] = {
    "faster_rcnn_r50_fpn": DetectorSpec(
        "faster_rcnn", "resnet50", "Faster R-CNN, ResNet50-FPN (paper 003)"),
    "faster_rcnn_r18_fpn": DetectorSpec(
        "faster_rcnn", "resnet18", "Faster R-CNN, ResNet18-FPN (CPU scale)",
        defaults={"fpn_channels": 128, "representation_size": 512,
                  "rpn_pre_nms_top_n_train": 1000, "rpn_post_nms_top_n_train": 300,
                  "rpn_pre_nms_top_n_test": 500, "rpn_post_nms_top_n_test": 200,
                  "box_batch_size_per_image": 128}),
    "yolov3_darknet53": DetectorSpec(
        "yolov3", "darknet53", "YOLOv3, Darknet53 (paper 003)", (3, 4, 5)),
    "yolov3_r18": DetectorSpec(
        "yolov3", "resnet18", "YOLOv3, ResNet18 + quarter-width neck (CPU scale)", (2, 3, 4),
        {"width": 0.25}),
}


def list_detectors() -> list[str]:
    return sorted(REGISTRY)


def parse_init(init: str) -> tuple[str, Path | None]:
    """``"random"`` or ``"<kind>:<path>"`` with kind imagenet, bnn or detector."""
    if init == "random":
        return "random", None
    kind, sep, path = init.partition(":")
    if not sep or kind not in INIT_KINDS[1:] or not path:
        raise SaroptError(f"init {init!r} is not one of: random, imagenet:PATH, bnn:PATH, "
                          "detector:PATH")
    p = Path(path).expanduser()
    if not p.is_file():
        raise SaroptError(f"init {init!r}: weights file {p} does not exist")
    return kind, p


def _stats_for(in_chans: int, mean: Any, std: Any) -> tuple[list[float], list[float]]:
    """Per-channel normalisation for ``in_chans`` from stats given for 1 or 3 channels."""
    mean, std = [float(v) for v in mean], [float(v) for v in std]
    if len(mean) != in_chans:
        mean = [sum(mean) / len(mean)] * in_chans
        std = [sum(std) / len(std)] * in_chans
    return mean, std


def _arch_name(name: str) -> str:
    """``timm/resnet18.a1_in1k`` -> ``resnet18``."""
    return name.split("/")[-1].split(".")[0]


def create_detector(name: str, in_chans: int = 1, init: str = "random", num_classes: int = 2,
                    **kw: Any) -> tuple[nn.Module, LoadReport | None]:
    """Build a registered detector and initialise it; returns the model and what was loaded.

    ``init``: ``random``; ``imagenet:PATH`` (a torchvision/timm classification checkpoint of the
    backbone architecture); ``bnn:PATH`` (a ``saropt bnn export`` SAR encoder, OSM: its sidecar's
    mean/std become the detector's normalisation); ``detector:PATH`` (a detector checkpoint,
    OSD: every tensor whose name and shape match, first conv adapted across channels).
    First-conv weights of 3-channel sources are summed for one-channel input (reported as
    ``adapted``). Keyword arguments go to the family's builder (``min_size``, ``anchor_sizes``,
    ``frozen_bn``, ``trainable_layers``, ``input_size``, ``train_sizes``, ``anchors``, ...).
    """
    if name not in REGISTRY:
        raise SaroptError(f"unknown detector {name!r}; registered: {', '.join(list_detectors())}")
    if in_chans < 1:
        raise SaroptError(f"in_chans must be >= 1, got {in_chans}")
    spec = REGISTRY[name]
    kind, path = parse_init(init)
    state, meta = read_weights(path) if path else ({}, {})
    if kind == "bnn" and meta.get("architecture") and \
            _arch_name(str(meta["architecture"])) != spec.backbone:
        raise SaroptError(f"{path}: encoder architecture {meta['architecture']!r} does not fit "
                          f"{name} (backbone {spec.backbone})")
    stats = (meta["mean"], meta["std"]) if kind == "bnn" and "mean" in meta and "std" in meta \
        else (IMAGENET_MEAN, IMAGENET_STD)
    mean, std = _stats_for(in_chans, *stats)
    kw = {**spec.defaults, "image_mean": mean, "image_std": std, **kw}
    model = _build(spec, in_chans, num_classes, kind, kw)
    report = _load(model, spec, kind, state, path) if path else None
    return model, report


def option_names(name: str) -> set[str]:
    """The ``model.options`` keys detector ``name`` accepts (its builder's keywords)."""
    import inspect

    if name not in REGISTRY:
        raise SaroptError(f"unknown detector {name!r}; registered: {', '.join(list_detectors())}")
    fixed = {"self", "backbone", "num_classes", "arch", "in_chans", "image_mean", "image_std",
             "kwargs", "rcnn_kw"}
    if REGISTRY[name].family == "faster_rcnn":
        from torchvision.models.detection import FasterRCNN

        from saropt.detect.models.faster_rcnn import build_faster_rcnn

        params = {*inspect.signature(build_faster_rcnn).parameters,
                  *inspect.signature(FasterRCNN.__init__).parameters}
    else:
        from saropt.detect.models.yolov3 import YOLOv3

        params = set(inspect.signature(YOLOv3.__init__).parameters)
    return params - fixed


def check_options(name: str, options: dict[str, Any]) -> None:
    """Refuse unknown ``model.options`` keys before any work (torchvision's ``FasterRCNN``
    would ignore them silently)."""
    unknown = sorted(set(options) - option_names(name))
    if unknown:
        raise SaroptError(f"model.options: unknown key(s) {unknown} for {name} (known: "
                          f"{', '.join(sorted(option_names(name)))})")


def _build(spec: DetectorSpec, in_chans: int, num_classes: int, kind: str,
           kw: dict[str, Any]) -> nn.Module:
    try:
        if spec.family == "faster_rcnn":
            from saropt.detect.models.faster_rcnn import build_faster_rcnn

            pretrained = kind in ("imagenet", "bnn")
            kw.setdefault("frozen_bn", pretrained)
            kw.setdefault("trainable_layers", 3 if pretrained else 5)
            return build_faster_rcnn(spec.backbone, in_chans, num_classes, **kw)
        import timm

        from saropt.detect.models.yolov3 import COCO_ANCHORS, YOLOv3

        if kw.get("anchors") == "coco":
            kw["anchors"] = COCO_ANCHORS
        elif isinstance(kw.get("anchors"), str):
            raise SaroptError(f"anchors {kw['anchors']!r}: give 'coco', 9 [w, h] pairs, or "
                              "'kmeans' in a training config (computed from the training boxes)")
        backbone = timm.create_model(spec.backbone, pretrained=False, features_only=True,
                                     out_indices=spec.out_indices, in_chans=in_chans)
        return YOLOv3(backbone, num_classes, **kw)
    except (TypeError, ValueError) as err:  # an unknown keyword or a bad value (model.options)
        raise SaroptError(f"bad option (model.options) for {spec.family}: {err}") from None


def get_normalization(model: nn.Module) -> tuple[list[float], list[float]]:
    """The per-channel ``(mean, std)`` a detector applies to its [0, 1] input images."""
    if hasattr(model, "transform"):  # torchvision detectors
        return [float(v) for v in model.transform.image_mean], \
            [float(v) for v in model.transform.image_std]
    return model.image_mean.flatten().tolist(), model.image_std.flatten().tolist()


def _timm_to_features_key(key: str) -> str:
    """timm classification keys -> ``features_only`` keys (``stages.0.`` -> ``stages_0.``)."""
    return re.sub(r"^(stages|blocks|layers)\.(\d+)\.", r"\1_\2.", key)


def backbone_prefix(model: nn.Module) -> str:
    """Where the classification backbone's tensors live inside a detector's state dict."""
    return "backbone.body." if hasattr(model, "rpn") else "backbone."


def _load(model: nn.Module, spec: DetectorSpec, kind: str, state: dict[str, Tensor],
          path: Path) -> LoadReport:
    if kind == "detector":
        if all(k.startswith("model.") for k in state):  # a saropt Lightning checkpoint
            state = {k[len("model."):]: v for k, v in state.items()}
        report = load_state_dict_report(model, state)
    else:
        if spec.family == "yolov3":
            state = {_timm_to_features_key(k): v for k, v in state.items()}
        report = load_state_dict_report(model, state, dst_prefix=backbone_prefix(model))
    if not report.matched and not report.adapted:
        keys = ", ".join(list(state)[:4])
        raise SaroptError(f"{path}: no tensor fits {spec.description} (source keys start {keys}"
                          f"; {report.summary()})")
    return report
