"""YOLOv3 (Redmon & Farhadi, 2018) on a timm backbone: neck, three-scale head, loss, decoding.

Paper 003 section 4 uses YOLOv3 with a Darknet53 backbone, inputs resized to 416 x 416 with
multi-scale training, SGD for 240 epochs (section 4.2.2). Where the parts live:
:class:`YoloNeck` (top-down neck), :class:`YoloHead` (the 1x1 prediction convs),
:func:`build_targets` and :meth:`YOLOv3.loss` (assignment and loss), :func:`decode_level` and
:meth:`YOLOv3.postprocess` (boxes out).

Layout of one level's raw output, ``(B, A, H, W, 5 + K)``: ``tx, ty, tw, th, objectness, class
logits``. A box is ``cx = (sigmoid(tx) + j) * stride``, ``w = anchor_w * exp(tw)`` (paper eq. 1).
Each ground-truth box is assigned to the one anchor (of 9) whose shape overlaps it best, in the
grid cell holding its centre; other predictions overlapping a ground truth by IoU > 0.5 are
ignored in the objectness loss (paper section 2.1). Losses follow mmdetection's YOLOv3 head:
BCE on ``sigmoid(tx), sigmoid(ty)`` offsets (weight 2), MSE on ``tw, th`` (weight 2), BCE
objectness and BCE per-class scores, summed and divided by the number of images.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchvision.ops import batched_nms, box_iou

from saropt.utils.weights import rename_to_children, with_prefix

#: The YOLOv3 paper's 9 COCO anchors (w, h) in pixels at 416 x 416, small to large.
COCO_ANCHORS: tuple[tuple[int, int], ...] = (
    (10, 13), (16, 30), (33, 23), (30, 61), (62, 45), (59, 119), (116, 90), (156, 198),
    (373, 326))
STRIDES: tuple[int, int, int] = (8, 16, 32)
#: Multi-scale training sizes around 416 (320..608 step 32), as in the YOLOv3 recipe.
MULTISCALE_SIZES: tuple[int, ...] = tuple(range(320, 609, 32))
#: Where the timm backbone's tensors live in this detector's state dict.
BACKBONE_KEY = "backbone."
#: Buffers set by the detector's config, not learned: a transfer keeps the target's own.
CONFIG_BUFFERS = ("image_mean", "image_std", "anchors")


def _cba(cin: int, cout: int, k: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, k, padding=k // 2, bias=False),
                         nn.BatchNorm2d(cout), nn.LeakyReLU(0.1, inplace=True))


def _five(cin: int, c: int) -> nn.Sequential:
    return nn.Sequential(_cba(cin, c, 1), _cba(c, 2 * c, 3), _cba(2 * c, c, 1),
                         _cba(c, 2 * c, 3), _cba(2 * c, c, 1))


class YoloNeck(nn.Module):
    """YOLOv3's top-down neck: 5-conv blocks, 1x1 + upsample laterals, a 3x3 conv per level.

    Takes the backbone's stride 8, 16, 32 features (channels ``in_chans``) and returns three
    maps at the same strides with :attr:`out_channels` channels (``2 * w`` per level).
    ``width`` scales the paper's channel widths (128/256/512 per level, at least 8). Convs are
    conv + BatchNorm + LeakyReLU(0.1), as in Darknet.
    """

    def __init__(self, in_chans: Sequence[int], width: float = 1.0) -> None:
        super().__init__()
        c3, c4, c5 = in_chans
        w1, w2, w3 = (max(8, int(c * width)) for c in (128, 256, 512))
        self.blocks = nn.ModuleList([_five(c5, w3), _five(c4 + w2, w2), _five(c3 + w1, w1)])
        self.laterals = nn.ModuleList([_cba(w3, w2, 1), _cba(w2, w1, 1)])
        self.outs = nn.ModuleList([_cba(w3, 2 * w3, 3), _cba(w2, 2 * w2, 3),
                                   _cba(w1, 2 * w1, 3)])
        self.out_channels = [2 * w1, 2 * w2, 2 * w3]

    def forward(self, feats: Sequence[Tensor]) -> list[Tensor]:
        """Three ``(B, C_l, H_l, W_l)`` maps, strides 8, 16, 32, from the backbone's three."""
        x = self.blocks[0](feats[2])
        outs = [self.outs[0](x)]
        for i, skip in enumerate((feats[1], feats[0])):
            up = F.interpolate(self.laterals[i](x), size=skip.shape[-2:], mode="nearest")
            x = self.blocks[i + 1](torch.cat([up, skip], 1))
            outs.append(self.outs[i + 1](x))
        return outs[::-1]


class YoloHead(nn.ModuleList):
    """YOLOv3's prediction head: one 1x1 conv per level giving 3 boxes per grid cell.

    Each level predicts ``3 * (4 + 1 + K)`` channels, "4 bounding box offsets, 1 objectness
    prediction, and K class predictions" for each of the level's 3 anchors (Redmon & Farhadi
    2018, section 2.3 "Predictions Across Scales"; paper 003 section 4 uses YOLOv3 [36] as its
    one-stage detector). :meth:`forward` reshapes each conv's ``(B, 3 * (5 + K), H, W)`` output to
    ``(B, 3, H, W, 5 + K)`` laid out ``tx, ty, tw, th, objectness, class logits``.

    Initialisation (not in the paper): weights ~ N(0, 0.01) (mmdetection's
    ``YOLOV3Head.init_weights``), biases 0 except objectness ``log(8 / (608 / stride) ** 2)``, a
    prior of about 8 objects per level in a 608 x 608 image (ultralytics/yolov3's log form;
    mmdetection takes the logit of that prior, within 0.03 of it, and sets the class biases to
    ``logit(0.01)``).

    A ``ModuleList`` subclass, so the convs keep the state-dict keys ``head.0.weight`` ..
    ``head.2.bias`` of the earlier anonymous list: existing checkpoints load unchanged.

    Args:
        in_channels: channels of the neck's three outputs, strides 8, 16, 32 in that order.
        num_fg: foreground classes ``K`` (1 for ships; the background is not a class here).
        num_anchors: anchors per level (YOLOv3: 3).
        strides: the levels' strides in input pixels, for the objectness prior.
    """

    def __init__(self, in_channels: Sequence[int], num_fg: int, num_anchors: int = 3,
                 strides: Sequence[int] = STRIDES) -> None:
        super().__init__(nn.Conv2d(c, num_anchors * (5 + num_fg), 1) for c in in_channels)
        self.num_fg, self.num_anchors = num_fg, num_anchors
        for conv, s in zip(self, strides):
            nn.init.normal_(conv.weight, std=0.01)
            bias = conv.bias.detach().view(num_anchors, -1)
            bias.zero_()
            bias[:, 4] = math.log(8 / (608 / s) ** 2)

    def forward(self, feats: Sequence[Tensor]) -> list[Tensor]:
        """Per level ``(B, 3, H, W, 5 + K)`` raw predictions from the neck's ``(B, C, H, W)``."""
        outs = []
        for conv, f in zip(self, feats):
            b, _, h, w = f.shape
            outs.append(conv(f).view(b, self.num_anchors, 5 + self.num_fg, h, w)
                        .permute(0, 1, 3, 4, 2))
        return outs


def decode_level(raw: Tensor, anchors: Tensor, stride: int) -> Tensor:
    """Boxes ``(B, A, H, W, 4)`` xyxy in input pixels from one level's raw ``(B, A, H, W, 5+K)``.

    ``cx = (sigmoid(tx) + j) * stride``, ``w = anchor_w * exp(tw)`` (YOLOv3 section 2.1), with
    ``tw``, ``th`` clamped at 8 before the exp; ``anchors`` ``(A, 2)`` (w, h) and ``stride`` in
    input pixels.
    """
    _, _, h, w, _ = raw.shape
    gy, gx = torch.meshgrid(torch.arange(h, device=raw.device),
                            torch.arange(w, device=raw.device), indexing="ij")
    cx = (raw[..., 0].sigmoid() + gx) * stride
    cy = (raw[..., 1].sigmoid() + gy) * stride
    aw, ah = (anchors[:, i].view(1, -1, 1, 1) for i in (0, 1))
    bw = aw * raw[..., 2].clamp(max=8.0).exp()
    bh = ah * raw[..., 3].clamp(max=8.0).exp()
    return torch.stack([cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2], -1)


def build_targets(boxes: Sequence[Tensor], labels: Sequence[Tensor], anchors: Tensor,
                  grid_sizes: Sequence[tuple[int, int]], num_fg: int,
                  strides: Sequence[int] = STRIDES) -> list[Tensor]:
    """Per level ``(B, A, H, W, 5 + K)`` training targets for the raw outputs' layout.

    For each ground truth's best anchor (shape IoU over all 9, paper section 2.1) in the cell
    holding its centre: offsets in the cell ``(0..1)``, ``log(w / anchor_w)``,
    ``log(h / anchor_h)``, objectness 1 and one-hot class (label 1 -> class 0); zeros elsewhere.
    ``boxes`` are ``(N_b, 4)`` xyxy in network-input pixels, ``labels`` ``(N_b,)`` 1-based,
    ``anchors`` ``(9, 2)`` (w, h) px small to large, ``grid_sizes`` the levels' ``(H, W)``.
    """
    na = anchors.shape[0] // len(strides)
    out = [anchors.new_zeros(len(boxes), na, h, w, 5 + num_fg) for h, w in grid_sizes]
    for b, (bx, lb) in enumerate(zip(boxes, labels)):
        if bx.numel() == 0:
            continue
        wh = (bx[:, 2:] - bx[:, :2]).clamp(min=1e-3)
        ctr = (bx[:, :2] + bx[:, 2:]) / 2
        inter = torch.minimum(wh[:, None], anchors[None]).prod(-1)
        shape_iou = inter / (wh.prod(-1)[:, None] + anchors.prod(-1)[None] - inter)
        for n, a in enumerate(shape_iou.argmax(1).tolist()):
            lvl, k = divmod(a, na)
            s, (gh, gw) = strides[lvl], grid_sizes[lvl]
            j = int((ctr[n, 0] / s).clamp(0, gw - 1e-4))
            i = int((ctr[n, 1] / s).clamp(0, gh - 1e-4))
            t = out[lvl][b, k, i, j]
            t.zero_()
            t[0] = ctr[n, 0] / s - j
            t[1] = ctr[n, 1] / s - i
            t[2:4] = torch.log(wh[n] / anchors[a])
            t[4] = 1.0
            t[5 + int(lb[n]) - 1] = 1.0
    return out


class YOLOv3(nn.Module):
    """YOLOv3 detector taking a list of ``(C, H, W)`` images in [0, 1] (any sizes).

    Images are resized to ``input_size`` squared (416 in paper 003 section 4.1; at training, to
    a size drawn from ``train_sizes`` per batch) and normalised with ``image_mean`` /
    ``image_std``; predictions come back in each input image's pixels. Train mode with targets
    (``boxes`` ``(N, 4)`` xyxy px, ``labels`` ``(N,)`` with 1 = ship) returns a loss dict;
    eval mode returns ``[{"boxes": (N, 4) xyxy px, "scores": (N,), "labels": (N,)}]``.

    Args:
        backbone: a timm ``features_only`` model with three outputs at strides 8, 16, 32.
        num_classes: classes including the background (2 for ships only).
        image_mean: per-channel mean of the [0, 1] input.
        image_std: per-channel standard deviation of the [0, 1] input.
        width: neck channel scale (:class:`YoloNeck`).
        input_size: test-time square input side, px.
        train_sizes: multi-scale training sides, px (None or empty: ``input_size`` always).
        anchors: 9 anchors (w, h) in input px, small to large, 3 per stride.
        score_thresh: minimum ``sigmoid(obj) * sigmoid(cls)`` kept at test time.
        nms_iou: IoU of the per-class NMS (paper 003 section 4.2.2: 0.5).
        detections_per_img: boxes kept per image after NMS.
        ignore_iou: predictions overlapping a ground truth above this IoU get no objectness
            loss (YOLOv3 section 2.1: 0.5).
        pre_nms_top_n: candidates kept per image before NMS.

    Raises:
        ValueError: not 9 anchors, or ``num_classes`` < 2.
    """

    def __init__(self, backbone: nn.Module, num_classes: int, image_mean: Sequence[float],
                 image_std: Sequence[float], width: float = 1.0, input_size: int = 416,
                 train_sizes: Sequence[int] | None = MULTISCALE_SIZES,
                 anchors: Sequence[Sequence[float]] = COCO_ANCHORS, score_thresh: float = 0.005,
                 nms_iou: float = 0.5, detections_per_img: int = 100, ignore_iou: float = 0.5,
                 pre_nms_top_n: int = 1000) -> None:
        super().__init__()
        if len(anchors) != 9:
            raise ValueError(f"YOLOv3 needs 9 anchors (3 per scale), got {len(anchors)}")
        if num_classes < 2:
            raise ValueError("num_classes counts the background: 2 for ships only")
        self.backbone = backbone
        self.neck = YoloNeck(backbone.feature_info.channels(), width)
        self.num_fg = num_classes - 1
        self.head = YoloHead(self.neck.out_channels, self.num_fg)
        self.register_buffer("anchors", torch.tensor(anchors, dtype=torch.float32))
        self.register_buffer("image_mean", torch.tensor(image_mean).view(-1, 1, 1))
        self.register_buffer("image_std", torch.tensor(image_std).view(-1, 1, 1))
        self.input_size, self.train_sizes = input_size, list(train_sizes or [])
        self.score_thresh, self.nms_iou, self.ignore_iou = score_thresh, nms_iou, ignore_iou
        self.detections_per_img, self.pre_nms_top_n = detections_per_img, pre_nms_top_n

    def raw_outputs(self, x: Tensor) -> list[Tensor]:
        """Per level ``(B, 3, H, W, 5 + K)`` raw predictions for a normalised batch."""
        return self.head(self.neck(self.backbone(x)))

    def _batch(self, images: Sequence[Tensor], size: int) -> tuple[Tensor, Tensor]:
        if not images:
            raise ValueError("YOLOv3 got an empty list of images")
        scales = torch.tensor([[size / im.shape[-1], size / im.shape[-2]] for im in images],
                              device=images[0].device)
        x = torch.cat([F.interpolate(im[None].float(), size=(size, size), mode="bilinear",
                                     align_corners=False) for im in images])
        return (x - self.image_mean) / self.image_std, scales

    def forward(self, images: Sequence[Tensor],
                targets: Sequence[dict[str, Tensor]] | None = None) -> dict[str, Tensor] | list:
        """Losses (train mode) or detections (eval mode) for a list of images; see the class.

        Raises:
            ValueError: an empty image list, or train mode without targets.
        """
        size = self.input_size
        if self.training and self.train_sizes:
            size = self.train_sizes[int(torch.randint(len(self.train_sizes), (1,)))]
        x, scales = self._batch(images, size)
        raw = self.raw_outputs(x)
        if self.training:
            if targets is None:
                raise ValueError("YOLOv3 in training mode needs targets")
            boxes = [t["boxes"].float() * s.repeat(2) for t, s in zip(targets, scales)]
            return self.loss(raw, boxes, [t["labels"] for t in targets])
        return self.postprocess(raw, scales, [im.shape[-2:] for im in images])

    def loss(self, raw: list[Tensor], boxes: list[Tensor],
             labels: list[Tensor]) -> dict[str, Tensor]:
        """``loss_xy``, ``loss_wh``, ``loss_obj``, ``loss_cls``, each summed and divided by images.

        ``raw`` are the :meth:`raw_outputs`, ``boxes`` ``(N_b, 4)`` xyxy in network-input px,
        ``labels`` ``(N_b,)`` 1-based; terms and weights as in the module docstring.
        """
        anchors = self.anchors.float()
        targets = build_targets(boxes, labels, anchors, [r.shape[2:4] for r in raw], self.num_fg)
        zero = raw[0].sum() * 0
        parts = {"loss_xy": zero, "loss_wh": zero, "loss_obj": zero, "loss_cls": zero}
        bce = F.binary_cross_entropy_with_logits
        for lvl, (r, t) in enumerate(zip(raw, targets)):
            r = r.float()
            pos = t[..., 4] > 0
            noobj = ~pos & ~self._ignored(r, anchors[3 * lvl:3 * lvl + 3], STRIDES[lvl], boxes)
            obj_mask = pos | noobj
            parts["loss_obj"] = parts["loss_obj"] + bce(r[..., 4][obj_mask], t[..., 4][obj_mask],
                                                        reduction="sum")
            if pos.any():
                rp, tp = r[pos], t[pos]
                parts["loss_xy"] = parts["loss_xy"] + 2 * bce(rp[:, :2], tp[:, :2],
                                                              reduction="sum")
                parts["loss_wh"] = parts["loss_wh"] + 2 * F.mse_loss(rp[:, 2:4], tp[:, 2:4],
                                                                     reduction="sum")
                parts["loss_cls"] = parts["loss_cls"] + bce(rp[:, 5:], tp[:, 5:],
                                                            reduction="sum")
        return {k: v / len(boxes) for k, v in parts.items()}

    @torch.no_grad()
    def _ignored(self, raw: Tensor, anchors: Tensor, stride: int, boxes: list[Tensor]) -> Tensor:
        """Predictions whose decoded box overlaps some ground truth by IoU > ``ignore_iou``."""
        pred = decode_level(raw, anchors, stride)
        mask = torch.zeros(pred.shape[:-1], dtype=torch.bool, device=raw.device)
        for b, gt in enumerate(boxes):
            if gt.numel():
                best = box_iou(pred[b].reshape(-1, 4), gt).max(1).values
                mask[b] = best.view(mask.shape[1:]) > self.ignore_iou
        return mask

    @torch.no_grad()
    def postprocess(self, raw: list[Tensor], scales: Tensor,
                    sizes: Sequence[Sequence[int]]) -> list[dict[str, Tensor]]:
        """Detections per image from raw outputs: boxes ``(N, 4)`` xyxy px, scores, labels.

        Scores are ``sigmoid(obj) * sigmoid(cls)``; then the score threshold, the
        ``pre_nms_top_n`` best, boxes divided by ``scales`` ``(B, 2)`` (network over image
        px, x and y) and clipped to ``sizes`` ``(H, W)``, per-class NMS, ``detections_per_img``.
        """
        anchors = self.anchors.float()
        boxes = torch.cat([decode_level(r.float(), anchors[3 * i:3 * i + 3], STRIDES[i])
                           .flatten(1, 3) for i, r in enumerate(raw)], 1)
        scores = torch.cat([(r[..., 4:5].float().sigmoid() * r[..., 5:].float().sigmoid())
                            .flatten(1, 3) for r in raw], 1)
        return [self._nms(boxes[b] / scales[b].repeat(2), scores[b], sizes[b])
                for b in range(len(sizes))]

    def _nms(self, boxes: Tensor, scores: Tensor, size: Sequence[int]) -> dict[str, Tensor]:
        idx, cls = (scores > self.score_thresh).nonzero(as_tuple=True)
        sc = scores[idx, cls]
        if sc.numel() > self.pre_nms_top_n:
            sc, top = sc.topk(self.pre_nms_top_n)
            idx, cls = idx[top], cls[top]
        bx = boxes[idx].clone()
        bx[:, 0::2] = bx[:, 0::2].clamp(0, size[1])
        bx[:, 1::2] = bx[:, 1::2].clamp(0, size[0])
        keep = batched_nms(bx, sc, cls, self.nms_iou)[: self.detections_per_img]
        return {"boxes": bx[keep], "scores": sc[keep], "labels": cls[keep] + 1}


def kmeans_anchors(wh: Tensor, k: int = 9, iters: int = 100, seed: int = 0) -> Tensor:
    """``(k, 2)`` anchors (w, h) clustering box sizes with the ``1 - IoU`` distance, by area.

    K-medians of ``wh`` ``(N, 2)`` (the dataset's box sizes in network-input pixels) with the
    YOLOv2 (Redmon & Farhadi 2017, section 2) ``1 - IoU`` of boxes sharing a centre; seeded
    start, at most ``iters`` updates.

    Raises:
        ValueError: ``wh`` not ``(N, 2)`` or fewer than ``k`` boxes.
    """
    wh = wh.float()
    if wh.ndim != 2 or wh.shape[1] != 2 or len(wh) < k:
        raise ValueError(f"k-means anchors need at least {k} box sizes as (N, 2), got "
                         f"{tuple(wh.shape)}")
    g = torch.Generator().manual_seed(seed)
    centres = wh[torch.randperm(len(wh), generator=g)[:k]].clone()
    for _ in range(iters):
        inter = torch.minimum(wh[:, None], centres[None]).prod(-1)
        iou = inter / (wh.prod(-1)[:, None] + centres.prod(-1)[None] - inter)
        assign = iou.argmax(1)
        new = torch.stack([wh[assign == c].median(0).values if (assign == c).any()
                           else centres[c] for c in range(k)])
        if torch.allclose(new, centres):
            break
        centres = new
    return centres[centres.prod(-1).argsort()]


def build(arch: str, out_indices: Sequence[int], in_chans: int, num_classes: int,
          pretrained: bool, **kw: Any) -> YOLOv3:
    """YOLOv3 on timm's ``features_only`` ``arch`` (strides 8/16/32 at ``out_indices``).

    ``anchors="coco"`` takes :data:`COCO_ANCHORS`. ``pretrained`` changes nothing here (weights
    are loaded afterwards by ``create_detector``; timm never downloads).

    Raises:
        SaroptError: ``anchors`` a string other than ``"coco"``.
        ValueError: a bad :class:`YOLOv3` argument.
    """
    import timm

    from saropt.errors import SaroptError

    if kw.get("anchors") == "coco":
        kw["anchors"] = COCO_ANCHORS
    elif isinstance(kw.get("anchors"), str):
        raise SaroptError(f"anchors {kw['anchors']!r}: give 'coco', 9 [w, h] pairs, or "
                          "'kmeans' in a training config (computed from the training boxes)")
    backbone = timm.create_model(arch, pretrained=False, features_only=True,
                                 out_indices=tuple(out_indices), in_chans=in_chans)
    return YOLOv3(backbone, num_classes, **kw)


def checkpoint_filter_fn(state: dict[str, Tensor], model: YOLOv3,
                         kind: str) -> tuple[dict[str, Tensor], list[str]]:
    """A checkpoint under this detector's names, and the source keys dropped on purpose.

    ``imagenet`` / ``bnn``: a timm classification backbone (``stem.conv1.conv.weight``,
    ``stages.0.blocks...``) is renamed to timm's ``features_only`` names (``stem_conv1.``,
    ``stages_0.``) under ``backbone.``; the model's classifier (timm's pretrained config, e.g.
    ``head.fc`` for Darknet53, ``fc`` for ResNet) is dropped. ``detector``: a YOLOv3 state dict
    as is, less :data:`CONFIG_BUFFERS` (the target keeps its own normalisation and anchors).
    """
    if kind == "detector":
        dropped = [k for k in state if k in CONFIG_BUFFERS]
        return {k: v for k, v in state.items() if k not in CONFIG_BUFFERS}, dropped
    from timm.models import get_pretrained_cfg_value

    classifier = get_pretrained_cfg_value(model.backbone.pretrained_cfg["architecture"],
                                          "classifier") or ()
    classifier = (classifier,) if isinstance(classifier, str) else tuple(classifier)
    body, dropped = rename_to_children(state, model.backbone, drop=[f"{c}." for c in classifier])
    return with_prefix(body, BACKBONE_KEY), dropped
