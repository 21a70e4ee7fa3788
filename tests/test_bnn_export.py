"""BNN encoder export: safetensors + sidecar, identical outputs after the round trip, timm key
names, loading into torchvision / timm backbones with a report."""

from __future__ import annotations

import json

import lightning
import pytest
import torch

from saropt.bnn.config import BNNConfig
from saropt.bnn.export import export_encoders, load_encoder, load_encoder_into
from saropt.bnn.module import BNNModule
from saropt.config import load_config
from saropt.errors import SaroptError


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """A BNN checkpoint in Lightning's format (as ModelCheckpoint writes it), untrained."""
    cfg = load_config(BNNConfig, "bnn/synthetic_resnet18",
                      ["data.patch_size=32", "model.conv_width=16", "data.root=/nowhere"])
    torch.manual_seed(0)
    module = BNNModule(cfg.model_dump(mode="json"))
    with torch.no_grad():  # non-trivial BN statistics, so the round trip checks buffers too
        for m in module.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.1, 0.1)
                m.running_var.uniform_(0.5, 1.5)
    path = tmp_path_factory.mktemp("bnn_ckpt") / "run" / "checkpoints" / "last.ckpt"
    path.parent.mkdir(parents=True)
    torch.save({"state_dict": module.state_dict(), "epoch": 4, "global_step": 40,
                "hyper_parameters": dict(module.hparams),
                "pytorch-lightning_version": lightning.__version__,
                "bnn_val_metrics": {"accuracy": 0.75}}, path)
    return path, module.eval()


def test_export_round_trip_gives_identical_codes(checkpoint, tmp_path):
    path, module = checkpoint
    files = export_encoders(path, tmp_path)
    meta = json.loads(files["sar"].with_suffix(".json").read_text())
    assert meta["architecture"] == "resnet18" and meta["in_chans"] == 1
    assert meta["code_dim"] == 50 and meta["mean"] == pytest.approx([0.449])
    assert meta["training_data"]["epochs"] == 5 and meta["metrics"]["accuracy"] == 0.75
    g = torch.Generator().manual_seed(1)
    x_s, x_o = torch.rand(3, 1, 32, 32, generator=g), torch.rand(3, 3, 32, 32, generator=g)
    with torch.no_grad():
        assert torch.equal(load_encoder(files["sar"])(x_s), module.model.sar(x_s))
        assert torch.equal(load_encoder(files["opt"])(x_o), module.model.opt(x_o))


def test_exported_keys_are_timm_names_and_load_into_torchvision(checkpoint, tmp_path):
    import torchvision
    from safetensors.torch import load_file

    path, module = checkpoint
    files = export_encoders(path, tmp_path)
    keys = set(load_file(str(files["sar"])))
    assert {"conv1.weight", "layer1.0.conv1.weight", "head.fc.weight"} <= keys
    tv = torchvision.models.resnet18(weights=None)
    report = load_encoder_into(tv, files["sar"])
    assert report.adapted == ["conv1.weight"]  # 1-channel SAR conv into a 3-channel body
    assert not report.mismatched and not report.unexpected
    assert report.missing == ["fc.weight", "fc.bias"]  # only the classifier stays untouched
    assert report.dropped and all(k.startswith("head.") for k in report.dropped)
    assert torch.equal(tv.layer4[1].conv2.weight, module.model.sar.backbone.layer4[1].conv2.weight)
    body = torch.nn.Module()
    body.add_module("body", torchvision.models.resnet18(weights=None))
    assert len(load_encoder_into(body, files["opt"], prefix="body.").matched) == \
        len(report.matched) + 1  # the optical conv1 fits a 3-channel body as it is


def test_load_errors_are_clear(tmp_path, checkpoint):
    with pytest.raises(SaroptError, match="does not exist"):
        load_encoder(tmp_path / "missing.safetensors")
    path, _ = checkpoint
    files = export_encoders(path, tmp_path)
    sidecar = files["sar"].with_suffix(".json")
    meta = json.loads(sidecar.read_text())
    meta["architecture"] = "resnet34"
    sidecar.write_text(json.dumps(meta))
    with pytest.raises(SaroptError, match="resnet34 BNN encoder: .* missing in the source"):
        load_encoder(files["sar"])
    bad = tmp_path / "bad.ckpt"
    bad.write_bytes(b"not a checkpoint")
    from saropt.bnn.export import load_module

    with pytest.raises(SaroptError):
        load_module(bad)
