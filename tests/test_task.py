"""The Lightning task base (saropt.task.BaseTask) and the detection DataModule: the one
channels_last rule with each task's devices, checkpoints rebuilt by the one classmethod (and
refused across tasks), and limited detection splits whose records, ground truth and samples
agree."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from saropt.bnn.config import BNNConfig
from saropt.bnn.module import BNNModule
from saropt.config import load_config
from saropt.detect.module import DetectModule
from saropt.errors import SaroptError

TINY_DETECTOR = {"model": {"name": "faster_rcnn_r18_fpn", "in_chans": 1,
                           "options": {"min_size": 64, "max_size": 64, "fpn_channels": 32,
                                       "representation_size": 64}},
                 "data": {"dataset": "hrsid", "root": "unused"}}


def _bnn(channels_last: bool = True) -> BNNModule:
    cfg = load_config(BNNConfig, "bnn/synthetic_resnet18",
                      ["data.patch_size=32", "model.arch=test_resnet", "model.conv_width=16",
                       f"trainer.channels_last={str(channels_last).lower()}"])
    return BNNModule(cfg.model_dump(mode="json"))


def _detector(channels_last: bool = True, **options: object) -> DetectModule:
    model = {**TINY_DETECTOR["model"],
             "options": {**TINY_DETECTOR["model"]["options"], **options}}
    cfg = {**TINY_DETECTOR, "model": model, "trainer": {"channels_last": channels_last}}
    return DetectModule(cfg, train_image_size=(64, 64))


def _channels_last_after_setup(module: torch.nn.Module, device: str) -> bool:
    """Run the module's ``setup`` as a Trainer on ``device`` would; is a conv channels_last?"""
    module._trainer = SimpleNamespace(strategy=SimpleNamespace(root_device=torch.device(device)))
    module.setup("fit")
    # a kernel with one input channel or 1x1 is channels_last in both layouts: take another
    conv = next(m for m in module.modules() if isinstance(m, torch.nn.Conv2d)
                and m.in_channels > 1 and m.kernel_size[0] > 1)
    return conv.weight.is_contiguous(memory_format=torch.channels_last)


def test_channels_last_is_one_rule_with_each_tasks_devices():
    assert _channels_last_after_setup(_bnn(), "cpu")  # the BNN: every device
    assert not _channels_last_after_setup(_bnn(channels_last=False), "cpu")
    assert not _channels_last_after_setup(_detector(), "cpu")  # detectors: CUDA only
    assert _channels_last_after_setup(_detector(), "cuda")  # (only the layout; no GPU needed)
    assert not _channels_last_after_setup(_detector(channels_last=False), "cuda")


def test_both_tasks_build_their_optimiser_from_the_base():
    bnn = _bnn()
    bnn._trainer = SimpleNamespace(max_epochs=4, estimated_stepping_batches=40)
    conf = bnn.configure_optimizers()
    assert isinstance(conf["optimizer"], torch.optim.SGD)
    assert conf["lr_scheduler"]["interval"] == "epoch"
    assert isinstance(conf["lr_scheduler"]["scheduler"], torch.optim.lr_scheduler.MultiStepLR)
    det = _detector(trainable_layers=3)
    det._trainer = SimpleNamespace(max_epochs=4, estimated_stepping_batches=40)
    conf = det.configure_optimizers()
    trainable = [p for p in det.parameters() if p.requires_grad]
    assert len(trainable) < len(list(det.parameters()))  # conv1, layer1 frozen
    assert len(conf["optimizer"].param_groups[0]["params"]) == len(trainable)
    assert conf["lr_scheduler"]["interval"] == "step"
    assert conf["optimizer"].param_groups[0]["lr"] == pytest.approx(0.02 * 0.001)  # warm-up


def test_checkpoints_rebuild_through_one_classmethod_and_refuse_the_other_task(tmp_path):
    torch.manual_seed(0)
    det = _detector()
    path = tmp_path / "det.ckpt"
    torch.save({"hyper_parameters": dict(det.hparams), "state_dict": det.state_dict(),
                "epoch": 2}, path)
    back = DetectModule.from_checkpoint(path)
    assert not back.training and back.trained_epochs == 3
    assert dict(back.hparams) == dict(det.hparams)
    for k, v in det.state_dict().items():
        assert torch.equal(back.state_dict()[k], v), k
    with pytest.raises(SaroptError, match="a `saropt detect train` checkpoint, not a BNN"):
        BNNModule.from_checkpoint(path)
    bnn = _bnn()
    bnn_path = tmp_path / "bnn.ckpt"
    torch.save({"hyper_parameters": dict(bnn.hparams), "state_dict": bnn.state_dict()},
               bnn_path)
    with pytest.raises(SaroptError, match="a `saropt bnn train` checkpoint, not a detector"):
        DetectModule.from_checkpoint(bnn_path)
    assert BNNModule.from_checkpoint(bnn_path).trained_epochs == 0
    broken = tmp_path / "broken.ckpt"
    state = {k: v for k, v in bnn.state_dict().items() if "head" not in k}
    torch.save({"hyper_parameters": dict(bnn.hparams), "state_dict": state}, broken)
    with pytest.raises(SaroptError, match="broken.ckpt: not a usable BNN checkpoint .*head"):
        BNNModule.from_checkpoint(broken)


def test_limited_detection_split_keeps_records_ground_truth_and_samples_together(tmp_path):
    from test_detect_train import TINY, write_toy_hrsid

    from saropt.detect.datamodule import DetectDataModule, make_dataset
    from saropt.detect.module import DetectConfig
    from saropt.engine import EpochShuffleSampler

    root = write_toy_hrsid(tmp_path / "hrsid", n_train=6, n_test=4)
    cfg = load_config(DetectConfig, "detect/synthetic_faster_rcnn_r18",
                      [f"data.root={root}", "data.max_train_images=4", "data.max_val_images=3",
                       "data.batch_size=2", "data.num_workers=0", *TINY[:2]])
    whole = make_dataset(cfg.data, "test", 1)
    assert len(whole) == 4 and whole.gt == whole.reader.to_coco()
    dm = DetectDataModule(cfg)
    dm.setup("fit")
    train_set = dm.train_set
    dm.setup("fit")  # a second call (the Trainer's) keeps the same readers
    assert dm.train_set is train_set and len(train_set) == 4 and len(dm.train_records) == 4
    ids = [int(r.image_id) for r in dm.val_set.records]
    assert len(ids) == 3 and ids == [img["id"] for img in whole.gt["images"][:3]]
    assert [img["id"] for img in dm.val_gt["images"]] == ids
    assert {a["image_id"] for a in dm.val_gt["annotations"]} <= set(ids)
    n_boxes = sum(len(r.boxes) for r in dm.val_set.records)
    assert len(dm.val_gt["annotations"]) == n_boxes > 0
    assert [dm.val_set[i]["image_id"] for i in range(3)] == ids
    assert dm.val_set[-1]["image_id"] == ids[-1]
    with pytest.raises(IndexError):
        dm.val_set[3]  # the fourth test image is not part of the limited split
    assert dm.categories == whole.categories
    loader = dm.train_dataloader()
    assert isinstance(loader.sampler, EpochShuffleSampler)
    images, targets = next(iter(loader))
    assert len(images) == len(targets) == 2 and images[0].shape == (1, 64, 64)
    assert [len(b[0]) for b in dm.val_dataloader()] == [2, 1]
