"""Every init kind into every registered detector, full-size ones included: the backbone must
compute exactly what the source network computes (float64, eval mode, random weights and
random BatchNorm statistics), after the documented channel adaptation (RGB filters summed for a
one-channel input: a grey image x through the detector equals (x, x, x) through the source).
A gap in the key mapping (the Darknet53 stem once stayed random) fails here, and a file that
does not fit stops with an error naming what is missing and unused."""

from __future__ import annotations

import pytest
import timm
import torch
import torchvision
from torch import nn
from torchvision.models._utils import IntermediateLayerGetter

from saropt.bnn.export import save_encoder
from saropt.bnn.model import create_encoder
from saropt.detect.models import REGISTRY, create_detector, list_detectors
from saropt.errors import SaroptError

pytestmark = pytest.mark.usefixtures("one_torch_thread")
SIZE = 64  # smallest input giving every level a >= 2x2 map at stride 32
TOL = 1e-5


def _randomise(model: nn.Module, seed: int) -> nn.Module:
    """Random weights and BN statistics so that a tensor left at its init shows up."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, t in model.state_dict().items():
            if not t.is_floating_point():
                continue
            if name.endswith("running_var"):
                t.copy_(0.5 + torch.rand(t.shape, generator=g))
            elif name.endswith(("running_mean", "bias")):
                t.copy_(0.1 * torch.randn(t.shape, generator=g))
            elif t.ndim == 1:  # BN scale
                t.copy_(0.5 + 0.5 * torch.rand(t.shape, generator=g))
            elif t.ndim > 1:
                fan_in = t[0].numel()
                t.copy_(torch.randn(t.shape, generator=g) * (1.0 / fan_in) ** 0.5)
    return model.eval()


def _levels(model: nn.Module, name: str, x: torch.Tensor) -> list[torch.Tensor]:
    """The detector backbone's feature maps (Faster R-CNN: the ResNet body's C2-C5)."""
    if REGISTRY[name].family == "faster_rcnn":
        return list(model.backbone.body(x).values())
    return list(model.backbone(x))


def _source_levels(src: nn.Module, name: str, x: torch.Tensor) -> list[torch.Tensor]:
    spec = REGISTRY[name]
    if isinstance(src, torchvision.models.ResNet):
        get = IntermediateLayerGetter(src, {f"layer{i}": str(i) for i in range(1, 5)})
        return list(get(x).values())
    idx = (1, 2, 3, 4) if spec.family == "faster_rcnn" else spec.out_indices
    return src.forward_intermediates(x, indices=idx, intermediates_only=True)


def _assert_same(got: list[torch.Tensor], want: list[torch.Tensor]) -> None:
    assert len(got) == len(want)
    for a, b in zip(got, want):
        assert a.shape == b.shape
        diff = (a - b).abs().max().item()
        assert diff < TOL, f"max abs difference {diff:.3g}"
        assert b.abs().max() > 1e-3  # the features are not trivially zero


def _grey(seed: int = 0) -> torch.Tensor:
    return torch.rand(1, 1, SIZE, SIZE, generator=torch.Generator().manual_seed(seed),
                      dtype=torch.float64)


def _small_kw(name: str) -> dict:
    return {"input_size": SIZE, "train_sizes": None} if REGISTRY[name].family == "yolov3" \
        else {"min_size": SIZE, "max_size": SIZE}


def _imagenet_source(name: str) -> nn.Module:
    arch = REGISTRY[name].backbone
    if REGISTRY[name].family == "faster_rcnn":
        return getattr(torchvision.models, arch)(weights=None)
    return timm.create_model(arch, pretrained=False)


@pytest.mark.parametrize("name", list_detectors())
def test_imagenet_init_reproduces_the_rgb_network_on_grey_input(name, tmp_path) -> None:
    src = _randomise(_imagenet_source(name), 1)
    path = tmp_path / "imagenet.pth"
    torch.save(src.state_dict(), path)
    model, report = create_detector(name, in_chans=1, init=f"imagenet:{path}", **_small_kw(name))
    key = REGISTRY[name].backbone_key
    assert len(report.adapted) == 1 and report.adapted[0].startswith(key)
    assert report.dropped and all(k.split(".")[0] in ("fc", "head") for k in report.dropped)
    assert not report.unexpected and not report.mismatched
    assert not [k for k in report.missing if k.startswith(key)]
    x = _grey()
    with torch.no_grad():
        _assert_same(_levels(model.double().eval(), name, x),
                     _source_levels(src.double(), name, x.repeat(1, 3, 1, 1)))


@pytest.mark.parametrize("name", list_detectors())
def test_bnn_init_reproduces_the_sar_encoder(name, tmp_path) -> None:
    arch = REGISTRY[name].backbone
    enc = _randomise(create_encoder(arch, 1, image_size=SIZE, pool="adaptive"), 2)
    path = save_encoder(enc, tmp_path / "sar_encoder.safetensors",
                        {"architecture": arch, "mean": [0.3], "std": [0.2]})
    model, report = create_detector(name, in_chans=1, init=f"bnn:{path}", **_small_kw(name))
    assert not report.adapted and not report.unexpected and not report.mismatched
    assert report.dropped and all(k.startswith("head.") for k in report.dropped)
    x = _grey(1)
    with torch.no_grad():
        _assert_same(_levels(model.double().eval(), name, x),
                     _source_levels(enc.backbone.double(), name, x))


@pytest.mark.parametrize("name", list_detectors())
def test_detector_init_reproduces_the_optical_detector(name, tmp_path) -> None:
    src, _ = create_detector(name, in_chans=3, **_small_kw(name))
    _randomise(src, 3)
    path = tmp_path / "osd.ckpt"
    torch.save({"state_dict": {f"model.{k}": v for k, v in src.state_dict().items()}}, path)
    model, report = create_detector(name, in_chans=1, init=f"detector:{path}",
                                    **_small_kw(name))
    assert len(report.adapted) == 1 and not report.unexpected
    assert set(report.missing) <= set(REGISTRY[name].config_buffers)  # kept from the config
    x = _grey(2)
    with torch.no_grad():
        model, src = model.double().eval(), src.double()
        _assert_same(_levels(model, name, x), _levels(src, name, x.repeat(1, 3, 1, 1)))
        if REGISTRY[name].family == "yolov3":  # neck and head came along too
            _assert_same(model.raw_outputs(x), src.raw_outputs(x.repeat(1, 3, 1, 1)))
        else:
            _assert_same(list(model.backbone(x).values()),
                         list(src.backbone(x.repeat(1, 3, 1, 1)).values()))


def test_darknet_checkpoint_without_its_stem_is_an_error(tmp_path) -> None:
    """The defect this file guards against: a stem under other names must not stay random."""
    state = timm.create_model("darknet53", pretrained=False).state_dict()
    state = {k.replace("stem.conv1.", "stem.convA."): v for k, v in state.items()}
    path = tmp_path / "darknet53.pth"
    torch.save(state, path)
    with pytest.raises(SaroptError, match=r"missing in the source \(backbone.stem_conv1.conv"
                                          r".weight.*unused \(backbone.stem.convA"):
        create_detector("yolov3_darknet53", init=f"imagenet:{path}", input_size=SIZE)


def test_bnn_encoder_of_other_depth_is_an_error(tmp_path) -> None:
    enc = create_encoder("resnet34", 1, image_size=SIZE, pool="adaptive")
    path = save_encoder(enc, tmp_path / "enc.safetensors", {"mean": [0.3], "std": [0.2]})
    with pytest.raises(SaroptError, match="unused"):
        create_detector("faster_rcnn_r18_fpn", init=f"bnn:{path}", min_size=SIZE)


def test_partial_detector_init_is_explicit_and_reported(tmp_path) -> None:
    src, _ = create_detector("yolov3_r18", in_chans=3, num_classes=4, **_small_kw("yolov3_r18"))
    path = tmp_path / "osd.ckpt"
    torch.save({"state_dict": {f"model.{k}": v for k, v in src.state_dict().items()}}, path)
    with pytest.raises(SaroptError, match="head.0.weight.*init_partial"):
        create_detector("yolov3_r18", init=f"detector:{path}", **_small_kw("yolov3_r18"))
    _, report = create_detector("yolov3_r18", init=f"detector:{path}", partial_init=True,
                                **_small_kw("yolov3_r18"))
    assert report.partial and sorted(k for k, _, _ in report.mismatched) == [
        f"head.{i}.{p}" for i in range(3) for p in ("bias", "weight")]
    assert not [k for k in report.missing if k.startswith("backbone.")]
    with pytest.raises(SaroptError, match="detector:PATH inits only"):
        create_detector("yolov3_r18", init=f"imagenet:{path}", partial_init=True)



def test_osd_transfer_cli_needs_partial_for_another_class_count(tmp_path, capsys) -> None:
    from saropt.cli import main

    src, _ = create_detector("yolov3_r18", in_chans=3, num_classes=3, **_small_kw("yolov3_r18"))
    path = tmp_path / "osd.ckpt"
    torch.save({"state_dict": {f"model.{k}": v for k, v in src.state_dict().items()}}, path)
    assert main(["fuse", "osd-transfer", str(path), "--detector", "yolov3_r18"]) == 2
    assert "saropt: error:" in capsys.readouterr().err
    assert main(["fuse", "osd-transfer", str(path), "--detector", "yolov3_r18", "--partial",
                 "--json"]) == 0
    assert '"partial": true' in capsys.readouterr().out
