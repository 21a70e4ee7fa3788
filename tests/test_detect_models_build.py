"""Every registered detector: one-channel build, train-mode losses + gradients, eval-mode boxes."""

from __future__ import annotations

import pytest
import torch

from saropt.detect.models import create_detector, get_normalization, list_detectors
from saropt.errors import SaroptError

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _tiny_kw(name: str) -> dict:
    if name.startswith("faster_rcnn"):
        return {"min_size": 64, "max_size": 64, "anchor_sizes": [8, 16, 32, 64, 128]}
    return {"input_size": 64, "train_sizes": [64, 96]}


def _first_conv(model: torch.nn.Module) -> torch.nn.Conv2d:
    return next(m for m in model.modules() if isinstance(m, torch.nn.Conv2d))


@pytest.mark.parametrize("name", list_detectors())
def test_detector_trains_and_predicts_on_one_channel(name: str) -> None:
    torch.manual_seed(0)
    model, report = create_detector(name, in_chans=1, **_tiny_kw(name))
    assert report is None
    assert _first_conv(model).in_channels == 1
    mean, std = get_normalization(model)
    assert len(mean) == len(std) == 1
    images = [torch.rand(1, 64, 64), torch.rand(1, 48, 80)]
    targets = [{"boxes": torch.tensor([[10.0, 12.0, 40.0, 22.0]]), "labels": torch.tensor([1])},
               {"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.int64)}]
    model.train()
    losses = model(images, targets)
    assert len(losses) == 4 and all(torch.isfinite(v) for v in losses.values())
    sum(losses.values()).backward()
    grad = _first_conv(model).weight.grad
    assert grad is not None and grad.abs().sum() > 0
    model.eval()
    with torch.no_grad():
        outs = model(images)
    assert len(outs) == 2
    for out, img in zip(outs, images):
        assert set(out) == {"boxes", "scores", "labels"}
        assert out["boxes"].shape[1] == 4 and len(out["scores"]) == len(out["labels"])
        if len(out["boxes"]):  # in the input image's own pixels
            assert out["boxes"][:, 2].max() <= img.shape[-1] + 1e-3
            assert out["boxes"][:, 3].max() <= img.shape[-2] + 1e-3
            assert set(out["labels"].tolist()) <= {1}


def test_three_channel_optical_detector() -> None:
    model, _ = create_detector("yolov3_r18", in_chans=3, input_size=64, train_sizes=None)
    assert _first_conv(model).in_channels == 3
    assert get_normalization(model)[0] == pytest.approx([0.485, 0.456, 0.406])


@pytest.mark.parametrize(("args", "match"), [
    (("no_such_detector",), "unknown detector"),
    (("faster_rcnn_r18_fpn", 1, "imagenet"), "not one of"),
    (("faster_rcnn_r18_fpn", 1, "bnn:/no/such/file.safetensors"), "does not exist"),
    (("faster_rcnn_r18_fpn", 0), "in_chans"),
])
def test_bad_arguments_are_clear_errors(args: tuple, match: str) -> None:
    with pytest.raises(SaroptError, match=match):
        create_detector(*args)


def test_unknown_option_is_a_clear_error() -> None:
    with pytest.raises(SaroptError, match="bad option"):
        create_detector("yolov3_r18", no_such_option=1)
