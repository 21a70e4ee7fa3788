"""Detector initialisation: BNN export (OSM), ImageNet file, whole detector (OSD), configs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import timm
import torch
import torchvision
from safetensors.torch import load_file, save_file

from saropt.config import ConfigError, list_builtin_configs, load_config
from saropt.detect.models import create_detector, get_normalization
from saropt.detect.module import DetectConfig, OptimConfig, lr_factor
from saropt.errors import SaroptError

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def bnn_export(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fake `saropt bnn export`: timm resnet18 (in_chans=1) state dict, a BNN code head and
    a JSON sidecar."""
    torch.manual_seed(1)
    enc = timm.create_model("resnet18", pretrained=False, in_chans=1, num_classes=0)
    path = tmp_path_factory.mktemp("bnn") / "sar_encoder.safetensors"
    state = {k: v.contiguous() for k, v in enc.state_dict().items()}
    save_file({**state, "head.fc.weight": torch.zeros(50, 8)}, str(path))
    path.with_suffix(".json").write_text(json.dumps(
        {"architecture": "resnet18", "in_chans": 1, "mean": [0.3], "std": [0.2],
         "code_dim": 50}))
    return path


def test_bnn_export_initialises_faster_rcnn_backbone(bnn_export: Path) -> None:
    src = load_file(str(bnn_export))
    model, report = create_detector("faster_rcnn_r18_fpn", init=f"bnn:{bnn_export}")
    body = {k for k in src if not k.endswith("num_batches_tracked") and "head" not in k}
    assert report.dropped == ["head.fc.weight"]  # the BNN code head, on purpose
    assert "backbone.body.conv1.weight" in report.matched
    assert "backbone.body.layer4.1.bn2.running_var" in report.matched
    assert {f"backbone.body.{k}" for k in body} <= set(report.matched)
    assert not report.adapted and not report.mismatched
    assert all(k.startswith(("backbone.fpn", "rpn", "roi_heads")) for k in report.missing)
    sd = model.state_dict()
    for k in ("conv1.weight", "layer1.0.conv1.weight", "layer3.1.bn1.weight"):
        torch.testing.assert_close(sd[f"backbone.body.{k}"], src[k])
    assert get_normalization(model) == ([0.3], [0.2])  # the encoder's own normalisation


def test_bnn_export_initialises_small_yolov3_backbone(bnn_export: Path) -> None:
    model, report = create_detector("yolov3_r18", init=f"bnn:{bnn_export}", input_size=64)
    assert "backbone.conv1.weight" in report.matched
    assert "backbone.layer4.1.conv2.weight" in report.matched
    assert not report.mismatched
    assert all(k.startswith(("neck", "head", "anchors", "image_")) for k in report.missing)


def test_wrong_encoder_architecture_is_refused(bnn_export: Path, tmp_path: Path) -> None:
    with pytest.raises(SaroptError, match="does not fit"):
        create_detector("faster_rcnn_r50_fpn", init=f"bnn:{bnn_export}")


def test_imagenet_rgb_first_conv_is_summed_for_sar(tmp_path: Path) -> None:
    rgb = torchvision.models.resnet18(weights=None).state_dict()
    path = tmp_path / "resnet18_imagenet.pth"
    torch.save(rgb, path)
    model, report = create_detector("faster_rcnn_r18_fpn", init=f"imagenet:{path}")
    assert report.adapted == ["backbone.body.conv1.weight"]
    assert report.dropped == ["fc.weight", "fc.bias"]  # the classifier, on purpose
    torch.testing.assert_close(model.state_dict()["backbone.body.conv1.weight"],
                               rgb["conv1.weight"].sum(1, keepdim=True))
    # pretrained body: torchvision's frozen BN and frozen stem + layer1
    assert not model.backbone.body.conv1.weight.requires_grad
    assert model.backbone.body.layer2[0].conv1.weight.requires_grad


def test_optical_detector_initialises_sar_detector_osd(tmp_path: Path) -> None:
    torch.manual_seed(2)
    optical, _ = create_detector("faster_rcnn_r18_fpn", in_chans=3)
    path = tmp_path / "optical.ckpt"
    torch.save({"state_dict": {f"model.{k}": v for k, v in optical.state_dict().items()},
                "epoch": 3}, path)
    sar, report = create_detector("faster_rcnn_r18_fpn", in_chans=1, init=f"detector:{path}")
    assert report.adapted == ["backbone.body.conv1.weight"]
    assert not report.mismatched and not report.missing and not report.unexpected
    assert any(k.startswith("roi_heads.box_predictor") for k in report.matched)
    torch.testing.assert_close(sar.state_dict()["rpn.head.conv.0.0.weight"],
                               optical.state_dict()["rpn.head.conv.0.0.weight"])


def test_weights_that_fit_nothing_are_an_error(tmp_path: Path) -> None:
    path = tmp_path / "other.pth"
    torch.save({"encoder.weight": torch.zeros(3, 3)}, path)
    with pytest.raises(SaroptError, match="missing in the source.*unused .backbone.body.encoder"):
        create_detector("faster_rcnn_r18_fpn", init=f"imagenet:{path}")


DETECT_CONFIGS = [c for c in list_builtin_configs() if c.startswith("detect/")]


@pytest.mark.parametrize("name", DETECT_CONFIGS)
def test_builtin_configs_validate(name: str) -> None:
    cfg = load_config(DetectConfig, name, ["data.root=/data/x", "model.init=random"])
    assert cfg.eval_iou == 0.5 and cfg.model.in_chans == 1


def test_table3_configs_need_root_and_weights() -> None:
    cells = [c for c in DETECT_CONFIGS if c.endswith(("_imagenet", "_osm"))]
    assert len(cells) == 16  # 4 datasets x 2 detectors x 2 inits
    with pytest.raises(ConfigError, match="model.init: .*must be set"):
        load_config(DetectConfig, "detect/hrsid_faster_rcnn_osm", ["data.root=/data/x"])
    with pytest.raises(ConfigError, match="data.root: .*must be set"):
        load_config(DetectConfig, "detect/hrsid_faster_rcnn_osm", ["model.init=random"])


def test_paper_recipes() -> None:
    fr = load_config(DetectConfig, "detect/faster_rcnn_paper", ["data.root=/x"])
    assert (fr.trainer.max_epochs, fr.data.batch_size, fr.optim.lr, fr.optim.momentum,
            fr.optim.weight_decay, fr.optim.milestones) == (14, 8, 0.02, 0.9, 1e-4, [8, 12])
    yo = load_config(DetectConfig, "detect/yolov3_paper", ["data.root=/x"])
    assert (yo.trainer.max_epochs, yo.data.batch_size, yo.optim.lr, yo.optim.milestones,
            yo.optim.warmup_iters) == (240, 12, 0.001, [160, 200], 500)
    assert yo.model.options["input_size"] == 416 and yo.model.options["nms_iou"] == 0.5
    assert min(yo.model.options["train_sizes"]) < 416 < max(yo.model.options["train_sizes"])


def test_lr_schedule_warms_up_then_steps() -> None:
    o = OptimConfig(warmup_iters=10, warmup_factor=0.001, milestones=[2, 3], gamma=0.1)
    assert lr_factor(0, 100, o) == pytest.approx(0.001)
    assert lr_factor(5, 100, o) == pytest.approx(0.5005)
    assert lr_factor(10, 100, o) == 1.0 and lr_factor(199, 100, o) == 1.0
    assert lr_factor(200, 100, o) == pytest.approx(0.1)
    assert lr_factor(300, 100, o) == pytest.approx(0.01)
