"""Faster R-CNN (torchvision) on a ResNet-FPN backbone with a native ``in_chans`` first conv.

Paper 003 section 4 uses Faster R-CNN (Ren et al. 2015) with a ResNet50 backbone, trained with
SGD for 14 epochs (section 4.2.2); the detector itself is torchvision's
``torchvision.models.detection.FasterRCNN``.

The backbone is torchvision's ResNet with its first conv rebuilt for ``in_chans`` inputs (one
channel for SAR) and wrapped by torchvision's ``BackboneWithFPN``.
Normalisation (``image_mean`` / ``image_std``) has one value per input channel.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from torch import Tensor, nn
from torchvision.models import resnet
from torchvision.models.detection import FasterRCNN
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection.backbone_utils import BackboneWithFPN
from torchvision.models.detection.faster_rcnn import FastRCNNPredictor, TwoMLPHead
from torchvision.models.detection.rpn import RPNHead
from torchvision.ops.misc import FrozenBatchNorm2d

from saropt.utils.weights import rename_to_children, with_prefix

#: torchvision's default RPN anchor sizes (one size per FPN level).
DEFAULT_ANCHOR_SIZES: tuple[int, ...] = (32, 64, 128, 256, 512)
_LAYERS = ("layer4", "layer3", "layer2", "layer1", "conv1")
#: Where the classification backbone's tensors live in this detector's state dict.
BACKBONE_KEY = "backbone.body."


def resnet_fpn(arch: str, in_chans: int, frozen_bn: bool, trainable_layers: int,
               out_channels: int = 256) -> BackboneWithFPN:
    """A ResNet body (first conv for ``in_chans``) + FPN on C2-C5 + max-pool P6.

    ``frozen_bn`` uses :class:`FrozenBatchNorm2d` (torchvision's choice with a pretrained body),
    otherwise trainable ``BatchNorm2d`` (needed from scratch). The first
    ``5 - trainable_layers`` stages (conv1, layer1, ...) are frozen.

    Raises:
        ValueError: ``trainable_layers`` outside 0..5.
    """
    if not 0 <= trainable_layers <= 5:
        raise ValueError(f"trainable_layers must be in 0..5, got {trainable_layers}")
    norm = FrozenBatchNorm2d if frozen_bn else nn.BatchNorm2d
    body = getattr(resnet, arch)(weights=None, norm_layer=norm)
    if in_chans != 3:
        body.conv1 = nn.Conv2d(in_chans, 64, kernel_size=7, stride=2, padding=3, bias=False)
        nn.init.kaiming_normal_(body.conv1.weight, mode="fan_out", nonlinearity="relu")
    train = list(_LAYERS[:trainable_layers]) + (["bn1"] if trainable_layers == 5 else [])
    for name, p in body.named_parameters():
        if not any(name.startswith(t) for t in train):
            p.requires_grad_(False)
    c5 = body.fc.in_features
    return BackboneWithFPN(body, {"layer1": "0", "layer2": "1", "layer3": "2", "layer4": "3"},
                           [c5 // 8, c5 // 4, c5 // 2, c5], out_channels)


def build_faster_rcnn(arch: str, in_chans: int, num_classes: int, image_mean: Sequence[float],
                      image_std: Sequence[float], frozen_bn: bool = False,
                      trainable_layers: int = 5, min_size: int = 800, max_size: int = 1333,
                      anchor_sizes: Sequence[int] = DEFAULT_ANCHOR_SIZES,
                      aspect_ratios: Sequence[float] = (0.5, 1.0, 2.0),
                      score_thresh: float = 0.05, nms_iou: float = 0.5,
                      detections_per_img: int = 100, fpn_channels: int = 256,
                      representation_size: int = 1024, **rcnn_kw: int | float) -> FasterRCNN:
    """Torchvision ``FasterRCNN`` on :func:`resnet_fpn` ``arch``, input normalised per channel.

    Images are resized so the short side is ``min_size`` px (long side at most ``max_size``) and
    predictions come back in input pixels. ``anchor_sizes`` (px, one per FPN level P2-P6) and
    ``aspect_ratios`` (h / w) are shared by all levels; ``fpn_channels`` and
    ``representation_size`` (box-head MLP width) default to torchvision's 256 / 1024;
    ``score_thresh``, ``nms_iou`` and ``detections_per_img`` are the box head's test-time
    filters; ``rcnn_kw`` go to ``FasterRCNN`` (``rpn_post_nms_top_n_test``, ...).

    Raises:
        ValueError: not 5 anchor sizes, or ``image_mean`` / ``image_std`` without one value
            per input channel.
        TypeError: a keyword ``FasterRCNN`` does not take.
    """
    _check_rcnn_kw(rcnn_kw)
    if len(anchor_sizes) != 5:
        raise ValueError(f"anchor_sizes needs one size per FPN level (5), got {anchor_sizes}")
    if len(image_mean) != in_chans or len(image_std) != in_chans:
        raise ValueError(f"image_mean/std need {in_chans} values, got {image_mean}/{image_std}")
    ratios = tuple(float(r) for r in aspect_ratios)
    anchors = AnchorGenerator(tuple((int(s),) for s in anchor_sizes), (ratios,) * 5)
    box_head = TwoMLPHead(fpn_channels * 7 * 7, representation_size)
    rpn_head = RPNHead(fpn_channels, len(ratios))
    return FasterRCNN(
        resnet_fpn(arch, in_chans, frozen_bn, trainable_layers, fpn_channels), num_classes=None,
        box_head=box_head, box_predictor=FastRCNNPredictor(representation_size, num_classes),
        min_size=min_size, max_size=max_size, image_mean=list(image_mean),
        image_std=list(image_std), rpn_anchor_generator=anchors, rpn_head=rpn_head,
        box_score_thresh=score_thresh,
        box_nms_thresh=nms_iou, box_detections_per_img=detections_per_img, **rcnn_kw)


def _check_rcnn_kw(rcnn_kw: dict[str, object]) -> None:
    """Torchvision's ``FasterRCNN(**kwargs)`` ignores unknown keywords; refuse them here."""
    import inspect

    known = set(inspect.signature(FasterRCNN.__init__).parameters) - {"self", "kwargs"}
    unknown = sorted(set(rcnn_kw) - known)
    if unknown:
        raise TypeError(f"unknown option(s) {unknown} (builder options: min_size, max_size, "
                        "anchor_sizes, aspect_ratios, score_thresh, nms_iou, detections_per_img, "
                        "fpn_channels, representation_size, frozen_bn, trainable_layers, and "
                        "torchvision FasterRCNN's rpn_*/box_* arguments)")


def build(arch: str, out_indices: Sequence[int], in_chans: int, num_classes: int,
          pretrained: bool, **kw: Any) -> FasterRCNN:
    """:func:`build_faster_rcnn` with torchvision's defaults for a pretrained or random body.

    A pretrained body gets frozen BN and conv1 + layer1 frozen (torchvision's choice), a random
    one trainable BN and all layers, unless ``frozen_bn`` / ``trainable_layers`` are given.
    ``out_indices`` is unused: the FPN always takes C2-C5.
    """
    kw.setdefault("frozen_bn", pretrained)
    kw.setdefault("trainable_layers", 3 if pretrained else 5)
    return build_faster_rcnn(arch, in_chans, num_classes, **kw)


def checkpoint_filter_fn(state: dict[str, Tensor], model: FasterRCNN,
                         kind: str) -> tuple[dict[str, Tensor], list[str]]:
    """A checkpoint under this detector's names, and the source keys dropped on purpose.

    ``imagenet`` / ``bnn``: a ResNet classification backbone (torchvision and timm ResNet names
    agree: ``conv1.weight``, ``layer1.0.bn1.weight``, ...) goes under ``backbone.body.``; the
    classifier ``fc.*`` is dropped. ``detector``: a Faster R-CNN state dict, as is.
    """
    if kind == "detector":
        return state, []
    body, dropped = rename_to_children(state, model.backbone.body, drop=("fc.",))
    return with_prefix(body, BACKBONE_KEY), dropped
