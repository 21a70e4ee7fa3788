"""Ship detectors by name (paper 003 section 4: Faster R-CNN ResNet50, YOLOv3 Darknet53).

The backbone is initialised from nothing, ImageNet, a BNN SAR encoder (OSM, paper 003
section 2.2) or another detector (OSD, paper 000).

>>> model, report = create_detector("faster_rcnn_r18_fpn", in_chans=1, init="random")

Every detector takes a list of ``CxHxW`` float images in [0, 1] and, in train mode with targets
(``{"boxes": xyxy, "labels": 1 = ship}``), returns a dict of losses; in eval mode it returns
``[{"boxes", "scores", "labels"}]`` in input-image pixels (torchvision's detection interface).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from torch import Tensor, nn

from saropt.detect.models import faster_rcnn, yolov3
from saropt.errors import SaroptError
from saropt.utils.weights import LoadReport, read_weights, transfer_weights

#: ImageNet RGB statistics; a one-channel input uses their mean (grey through RGB filters).
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
INIT_KINDS = ("random", "imagenet", "bnn", "detector")


@dataclass(frozen=True)
class DetectorSpec:
    """A registered detector: family, backbone, default keyword arguments and family functions.

    The family's ``build`` (``(arch, out_indices, in_chans, num_classes, pretrained, **kw)``),
    ``checkpoint_filter_fn`` (``(state, model, kind) -> (state under the detector's names,
    source keys dropped on purpose)``), ``backbone_key`` (the backbone's state-dict prefix) and
    ``config_buffers`` (buffers the config sets), each defined next to the model.
    """

    family: str  # "faster_rcnn" | "yolov3"
    backbone: str  # torchvision ResNet name (Faster R-CNN) or timm model name (YOLOv3)
    description: str
    out_indices: tuple[int, ...] = ()
    defaults: dict[str, Any] = field(default_factory=dict)
    build: Callable[..., nn.Module] = field(default=faster_rcnn.build, repr=False)
    checkpoint_filter_fn: Callable[..., tuple[dict[str, Tensor], list[str]]] = field(
        default=faster_rcnn.checkpoint_filter_fn, repr=False)
    backbone_key: str = faster_rcnn.BACKBONE_KEY
    config_buffers: tuple[str, ...] = ()  # set by the config, never taken from a source


_YOLO = {"build": yolov3.build, "checkpoint_filter_fn": yolov3.checkpoint_filter_fn,
         "backbone_key": yolov3.BACKBONE_KEY, "config_buffers": yolov3.CONFIG_BUFFERS}

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
        "yolov3", "darknet53", "YOLOv3, Darknet53 (paper 003)", (3, 4, 5), **_YOLO),
    "yolov3_r18": DetectorSpec(
        "yolov3", "resnet18", "YOLOv3, ResNet18 + quarter-width neck (CPU scale)", (2, 3, 4),
        {"width": 0.25}, **_YOLO),
}


def list_detectors() -> list[str]:
    """The registered detector names, sorted (``faster_rcnn_r50_fpn``, ``yolov3_r18``, ...)."""
    return sorted(REGISTRY)


def parse_init(init: str) -> tuple[str, Path | None]:
    """Split an init string, ``"random"`` or ``"<kind>:<path>"``, into ``(kind, path or None)``.

    ``kind`` is imagenet, bnn or detector; ``~`` in the path is expanded.

    Raises:
        SaroptError: another form or kind, or a weights file that does not exist.
    """
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
                    partial_init: bool = False,
                    **kw: Any) -> tuple[nn.Module, LoadReport | None]:
    """Build a registered detector and initialise it; returns the model and what was loaded.

    ``init``: ``random``; ``imagenet:PATH`` (a torchvision/timm classification checkpoint of the
    backbone architecture); ``bnn:PATH`` (a ``saropt bnn export`` SAR encoder, OSM: its sidecar's
    mean/std become the detector's normalisation); ``detector:PATH`` (a detector checkpoint of
    the same architecture, OSD: the whole detector, first conv adapted across channels).
    First-conv weights of 3-channel sources are summed for one-channel input (reported as
    ``adapted``). Every backbone tensor must come from the file and every tensor of the file must
    be used (the classifier, the BNN code head and a detector's input statistics and anchors are
    dropped on purpose and reported), otherwise :class:`SaroptError` lists what is missing and
    unused. ``partial_init=True`` (``detector:`` only) still needs the whole backbone but lets
    the neck and heads keep their initial values where the source lacks or reshapes them (a
    detector trained for another number of classes); the report lists them. Keyword arguments
    go to the family's builder (``min_size``, ``anchor_sizes``, ``frozen_bn``,
    ``trainable_layers``, ``input_size``, ``train_sizes``, ``anchors``, ...).

    ``num_classes`` counts the background (2 for ships only). The model takes a list of
    ``(C, H, W)`` float images in [0, 1] (see the module docstring).

    Raises:
        SaroptError: an unknown detector, ``in_chans`` < 1, a bad ``init``, ``partial_init``
            without ``detector:``, a BNN encoder of another architecture, a bad option, or
            weights that do not fit (missing or unused tensors, listed).
    """
    if name not in REGISTRY:
        raise SaroptError(f"unknown detector {name!r}; registered: {', '.join(list_detectors())}")
    if in_chans < 1:
        raise SaroptError(f"in_chans must be >= 1, got {in_chans}")
    spec = REGISTRY[name]
    kind, path = parse_init(init)
    if partial_init and kind != "detector":
        raise SaroptError(f"partial_init applies to detector:PATH inits only, not {init!r}: "
                          "a backbone init always loads the whole backbone")
    state, meta = read_weights(path) if path else ({}, {})
    if kind == "bnn" and meta.get("architecture") and \
            _arch_name(str(meta["architecture"])) != spec.backbone:
        raise SaroptError(f"{path}: encoder architecture {meta['architecture']!r} does not fit "
                          f"{name} (backbone {spec.backbone})")
    stats = (meta["mean"], meta["std"]) if kind == "bnn" and "mean" in meta and "std" in meta \
        else (IMAGENET_MEAN, IMAGENET_STD)
    mean, std = _stats_for(in_chans, *stats)
    kw = {**spec.defaults, "image_mean": mean, "image_std": std, **kw}
    try:
        model = spec.build(spec.backbone, spec.out_indices, in_chans, num_classes,
                           kind in ("imagenet", "bnn"), **kw)
    except (TypeError, ValueError) as err:  # an unknown keyword or a bad value (model.options)
        raise SaroptError(f"bad option (model.options) for {spec.family}: {err}") from None
    report = load_init(model, spec, kind, state, path, partial_init) if path else None
    return model, report


def option_names(name: str) -> set[str]:
    """The ``model.options`` keys detector ``name`` accepts (its builder's keywords).

    Raises:
        SaroptError: an unknown detector.
    """
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
    """Refuse unknown ``model.options`` keys before any work.

    Torchvision's ``FasterRCNN`` would ignore them silently.

    Raises:
        SaroptError: a key :func:`option_names` does not list, or an unknown detector.
    """
    unknown = sorted(set(options) - option_names(name))
    if unknown:
        raise SaroptError(f"model.options: unknown key(s) {unknown} for {name} (known: "
                          f"{', '.join(sorted(option_names(name)))})")


def get_normalization(model: nn.Module) -> tuple[list[float], list[float]]:
    """The per-channel ``(mean, std)`` a detector applies to its [0, 1] input images."""
    if hasattr(model, "transform"):  # torchvision detectors
        return [float(v) for v in model.transform.image_mean], \
            [float(v) for v in model.transform.image_std]
    return model.image_mean.flatten().tolist(), model.image_std.flatten().tolist()


def load_init(model: nn.Module, spec: DetectorSpec, kind: str, state: dict[str, Tensor],
              path: Path | str, partial: bool = False) -> LoadReport:
    """Put an init file's tensors into ``model``; returns the report of what went where.

    ``state`` (an ``imagenet``, ``bnn`` or ``detector`` file's tensors; a saropt Lightning
    checkpoint's ``model.`` prefix is removed) goes through the spec's
    ``checkpoint_filter_fn`` and the checked loader
    (:func:`saropt.utils.weights.transfer_weights`): the whole backbone is required, and for
    ``detector`` without ``partial`` the whole model.

    Raises:
        SaroptError: tensors missing or unused (naming ``path`` and the tensors).
    """
    dropped: list[str] = []
    if kind == "bnn":
        from saropt.bnn.export import encoder_backbone_state

        state, dropped = encoder_backbone_state(state)
    elif kind == "detector" and state and all(k.startswith("model.") for k in state):
        state = {k[len("model."):]: v for k, v in state.items()}  # a saropt Lightning checkpoint
    state, more = spec.checkpoint_filter_fn(state, model, kind)
    whole = kind == "detector" and not partial
    hint = ("give a detector checkpoint of the same architecture, or model.init_partial=true "
            "to keep the neck and heads the source lacks" if kind == "detector" else
            f"give a {spec.backbone} classification checkpoint" if kind == "imagenet" else
            f"give a {spec.backbone} encoder from `saropt bnn export`")
    return transfer_weights(model, state, required=("",) if whole else (spec.backbone_key,),
                            optional=spec.config_buffers, partial=partial,
                            dropped=dropped + more, hint=hint,
                            source=f"{kind}:{path} -> {spec.description}")
