"""OSD -> SAR transfer loads the expected weights: the whole detector where shapes allow, the
first conv's RGB filters summed for the one-channel SAR input. The test lists what matched."""

from __future__ import annotations

import pytest
import torch

from saropt.detect.models import create_detector
from saropt.fuse.osd import summarise_transfer, transfer_report


def _optical_checkpoint(tmp_path, name: str):
    """A 3-channel 'optical' detector with non-default weights, saved as a Lightning checkpoint
    (``model.`` prefix, as ``saropt detect train`` writes)."""
    torch.manual_seed(0)
    model, _ = create_detector(name, in_chans=3)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.01)
    path = tmp_path / f"osd_{name}.ckpt"
    torch.save({"state_dict": {f"model.{k}": v for k, v in model.state_dict().items()},
                "epoch": 1}, path)
    return model.state_dict(), path


def test_faster_rcnn_osd_to_sar_loads_whole_detector(tmp_path, capsys):
    src, path = _optical_checkpoint(tmp_path, "faster_rcnn_r18_fpn")
    result = transfer_report(path, "faster_rcnn_r18_fpn", in_chans=1)
    print(result["text"])  # the list of what matched, in the test log
    parts = result["parts"]
    assert set(parts) == {"backbone.body", "backbone.fpn", "rpn", "roi_heads"}
    assert parts["backbone.body"]["adapted"] == 1
    assert all(c["missing"] == 0 and c["mismatched"] == 0 for c in parts.values())
    assert result["report"]["adapted"] == ["backbone.body.conv1.weight"]
    n = sum(c["matched"] for c in parts.values())
    assert n == result["n_target_tensors"] - 1 == len(src) - 1

    sar, report = create_detector("faster_rcnn_r18_fpn", in_chans=1, init=f"detector:{path}")
    dst = sar.state_dict()
    assert dst["backbone.body.conv1.weight"].shape == (64, 1, 7, 7)
    assert torch.allclose(dst["backbone.body.conv1.weight"],
                          src["backbone.body.conv1.weight"].sum(dim=1, keepdim=True))
    for key in report.matched:
        assert torch.equal(dst[key], src[key]), key
    assert "roi_heads.box_predictor.cls_score.weight" in report.matched  # the head too
    assert "backbone.fpn.layer_blocks.0.0.weight" in report.matched  # and the neck


def test_yolov3_osd_to_sar_keeps_sar_normalisation(tmp_path):
    src, path = _optical_checkpoint(tmp_path, "yolov3_r18")
    result = transfer_report(path, "yolov3_r18", in_chans=1)
    parts = result["parts"]
    assert parts["backbone"]["adapted"] == 1 and parts["backbone"]["mismatched"] == 0
    assert parts["neck"]["missing"] == 0 and parts["head"]["missing"] == 0
    # input statistics and anchors are the target config's: dropped from the source, reported
    assert not result["report"]["mismatched"]
    assert sorted(result["report"]["dropped"]) == ["anchors", "image_mean", "image_std"]


def test_summary_groups_by_part():
    class R:
        matched = ["backbone.body.layer1.0.conv1.weight", "rpn.head.conv.0.0.weight"]
        adapted = ["backbone.body.conv1.weight"]
        missing = ["roi_heads.box_predictor.bbox_pred.weight"]
        mismatched = [("roi_heads.box_predictor.cls_score.weight", (3, 8), (2, 8))]

    s = summarise_transfer(R)
    assert s["backbone.body"] == {"matched": 1, "adapted": 1, "missing": 0, "mismatched": 0}
    assert s["roi_heads"] == {"matched": 0, "adapted": 0, "missing": 1, "mismatched": 1}


def test_missing_checkpoint_is_clear(tmp_path):
    from saropt.errors import SaroptError

    with pytest.raises(SaroptError, match="does not exist"):
        transfer_report(tmp_path / "nope.ckpt", "faster_rcnn_r18_fpn")
