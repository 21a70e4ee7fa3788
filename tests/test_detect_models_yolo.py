"""YOLOv3 pieces: target assignment <-> decoding round trip, loss, scaling back, k-means."""

from __future__ import annotations

import math

import pytest
import torch

from saropt.detect.models import create_detector
from saropt.detect.models.yolov3 import (
    COCO_ANCHORS,
    STRIDES,
    YoloHead,
    build_targets,
    decode_level,
    kmeans_anchors,
)

ANCHORS = torch.tensor(COCO_ANCHORS, dtype=torch.float32)
SIZE = 416
GRIDS = [(SIZE // s, SIZE // s) for s in STRIDES]


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _gt() -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    boxes = [torch.tensor([[10.0, 20.0, 22.0, 33.0],  # small: stride 8
                           [100.0, 50.0, 160.0, 95.0],  # medium: stride 16
                           [30.0, 200.0, 400.0, 410.0]]),  # large: stride 32
             torch.tensor([[200.0, 200.0, 231.0, 261.0]])]
    return boxes, [torch.ones(3, dtype=torch.int64), torch.ones(1, dtype=torch.int64)]


def _targets_to_logits(targets: list[torch.Tensor]) -> list[torch.Tensor]:
    """Raw outputs that a perfect network would give for these targets."""
    raws = []
    for t in targets:
        r = torch.full_like(t, -20.0)
        pos = t[..., 4] > 0
        r[..., 0:2] = torch.logit(t[..., 0:2].clamp(1e-6, 1 - 1e-6))
        r[..., 2:4] = t[..., 2:4]
        r[..., 4] = torch.where(pos, 20.0, -20.0)
        r[..., 5:] = torch.where(t[..., 5:] > 0, 20.0, -20.0)
        raws.append(r)
    return raws


def test_targets_decode_back_to_the_ground_truth() -> None:
    boxes, labels = _gt()
    targets = build_targets(boxes, labels, ANCHORS, GRIDS, num_fg=1)
    assert [t.shape for t in targets] == [(2, 3, h, w, 6) for h, w in GRIDS]
    assert sum(int((t[..., 4] > 0).sum()) for t in targets) == 4
    # each box lands on the level of its best-fitting anchor shape
    assert [int((t[0, ..., 4] > 0).sum()) for t in targets] == [1, 1, 1]
    raws = _targets_to_logits(targets)
    for b, gt in enumerate(boxes):
        decoded = []
        for lvl, (r, t) in enumerate(zip(raws, targets)):
            d = decode_level(r, ANCHORS[3 * lvl:3 * lvl + 3], STRIDES[lvl])
            decoded.append(d[b][t[b, ..., 4] > 0])
        got = torch.cat(decoded)
        got = got[got[:, 0].argsort()]
        want = gt[gt[:, 0].argsort()]
        torch.testing.assert_close(got, want, atol=1e-3, rtol=0)


def test_postprocess_returns_boxes_in_original_image_pixels() -> None:
    model, _ = create_detector("yolov3_r18", input_size=SIZE, train_sizes=None)
    model.eval()
    # an 832 x 624 image resized to 416 x 416: scale x 0.5, y 2/3
    boxes, labels = _gt()
    raws = _targets_to_logits(build_targets(boxes[:1], labels[:1], ANCHORS, GRIDS, 1))
    scales = torch.tensor([[SIZE / 832, SIZE / 624]])
    out = model.postprocess(raws, scales, [(624, 832)])[0]
    want = boxes[0] / scales[0].repeat(2)
    assert len(out["boxes"]) == 3 and out["scores"].min() > 0.99
    got = out["boxes"][out["boxes"][:, 0].argsort()]
    torch.testing.assert_close(got, want[want[:, 0].argsort()], atol=1e-2, rtol=0)
    assert out["labels"].tolist() == [1, 1, 1]


def test_loss_is_small_for_perfect_outputs_and_large_for_wrong_ones() -> None:
    model, _ = create_detector("yolov3_r18", input_size=SIZE, train_sizes=None)
    boxes, labels = _gt()
    targets = build_targets(boxes, labels, ANCHORS, GRIDS, 1)
    good = model.loss(_targets_to_logits(targets), boxes, labels)
    bad = model.loss([torch.zeros_like(t) for t in targets], boxes, labels)
    assert set(good) == {"loss_xy", "loss_wh", "loss_obj", "loss_cls"}
    # BCE on offsets has its target entropy as floor; the rest is ~0
    assert float(good["loss_obj"]) < 1e-3 and float(good["loss_wh"]) < 1e-6
    assert float(bad["loss_obj"]) > 100 * float(good["loss_obj"]) + 1


def test_training_forward_rescales_targets_with_multiscale() -> None:
    torch.manual_seed(0)
    model, _ = create_detector("yolov3_r18", input_size=64, train_sizes=[64, 96])
    images = [torch.rand(1, 50, 70)]
    targets = [{"boxes": torch.tensor([[5.0, 5.0, 30.0, 15.0]]), "labels": torch.tensor([1])}]
    for _ in range(3):
        losses = model(images, targets)
        assert all(torch.isfinite(v) for v in losses.values())
    with pytest.raises(ValueError, match="targets"):
        model(images)


def test_kmeans_recovers_three_box_shapes() -> None:
    g = torch.Generator().manual_seed(0)
    centres = torch.tensor([[10.0, 5.0], [40.0, 20.0], [120.0, 60.0]])
    wh = torch.cat([c * (1 + 0.05 * torch.randn(50, 2, generator=g)) for c in centres])
    anchors = kmeans_anchors(wh, k=3)
    torch.testing.assert_close(anchors, centres, rtol=0.1, atol=0)
    with pytest.raises(ValueError, match="at least"):
        kmeans_anchors(wh[:2], k=3)


def _cba_keys(prefix: str) -> list[str]:
    bn = [f"{prefix}.1.{k}" for k in ("weight", "bias", "running_mean", "running_var",
                                       "num_batches_tracked")]
    return [f"{prefix}.0.weight", *bn]


# yolov3_r18's non-backbone state-dict keys, written from the code before YoloHead existed
# (the head was an anonymous nn.ModuleList): checkpoints saved then must load as they are.
KEYS_BEFORE_YOLOHEAD = [
    "anchors", "image_mean", "image_std",
    *(k for i in range(3) for j in range(5) for k in _cba_keys(f"neck.blocks.{i}.{j}")),
    *(k for i in range(2) for k in _cba_keys(f"neck.laterals.{i}")),
    *(k for i in range(3) for k in _cba_keys(f"neck.outs.{i}")),
    "head.0.weight", "head.0.bias", "head.1.weight", "head.1.bias", "head.2.weight",
    "head.2.bias"]


def test_yolov3_state_dict_keys_are_unchanged_by_the_named_head() -> None:
    model, _ = create_detector("yolov3_r18", input_size=SIZE, train_sizes=None)
    keys = list(model.state_dict())
    assert isinstance(model.head, YoloHead)
    assert [k for k in keys if not k.startswith("backbone.")] == KEYS_BEFORE_YOLOHEAD
    assert sum(k.startswith("backbone.") for k in keys) == 120  # timm resnet18 features


def test_yolo_head_shapes_layout_and_objectness_prior() -> None:
    torch.manual_seed(0)
    head = YoloHead([8, 16, 32], num_fg=2)
    feats = [torch.randn(2, c, h, w) for c, (h, w) in zip([8, 16, 32], [(12, 10), (6, 5), (3, 3)])]
    outs = head(feats)
    assert [tuple(o.shape) for o in outs] == [(2, 3, 12, 10, 7), (2, 3, 6, 5, 7), (2, 3, 3, 3, 7)]
    # anchor a's channels are the conv's a * (5 + K) .. a * (5 + K) + 4 + K, at the same cell
    flat = head[1](feats[1])
    torch.testing.assert_close(outs[1][1, 2, 4, 3], flat[1, 14:21, 4, 3], rtol=0, atol=0)
    for conv, s in zip(head, STRIDES):
        bias = conv.bias.detach().view(3, 7)
        assert torch.allclose(bias[:, 4], torch.full((3,), math.log(8 / (608 / s) ** 2)))
        assert not bias[:, [0, 1, 2, 3, 5, 6]].any()
