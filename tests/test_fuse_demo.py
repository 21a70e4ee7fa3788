"""Demo-stage helpers: the OSD sees the optical views of the SAR training chips only, and its
config is the SAR recipe turned optical."""

from __future__ import annotations

import json

from saropt.fuse.demo import osd_config, osd_train_root


def test_osd_training_folder_holds_training_chips_only(tmp_path):
    ships = tmp_path / "ships"
    (ships / "hrsid" / "annotations").mkdir(parents=True)
    for sub in ("images", "labelTxt"):
        (ships / "dota" / sub).mkdir(parents=True)
    for stem in ("train_a", "train_b", "test_c"):
        (ships / "dota" / "images" / f"{stem}.png").write_bytes(b"png")
        (ships / "dota" / "labelTxt" / f"{stem}.txt").write_text("x")
    train = {"images": [{"id": 1, "file_name": "train_a.jpg"}, {"id": 2,
                                                                "file_name": "train_b.jpg"}]}
    (ships / "hrsid" / "annotations" / "train2017.json").write_text(json.dumps(train))
    root, n = osd_train_root(ships, tmp_path / "out")
    assert n == 2
    assert sorted(p.name for p in (root / "images").iterdir()) == ["train_a.png", "train_b.png"]
    assert sorted(p.name for p in (root / "labelTxt").iterdir()) == ["train_a.txt", "train_b.txt"]
    assert osd_train_root(ships, tmp_path / "out")[1] == 2  # idempotent


def test_osd_config_is_the_sar_recipe_on_optical_chips(tmp_path):
    from saropt.detect.module import DetectConfig

    sar = DetectConfig.model_validate({
        "model": {"name": "faster_rcnn_r18_fpn", "in_chans": 1, "init": "bnn:/x.safetensors",
                  "options": {"min_size": 128, "max_size": 128}},
        "data": {"dataset": "hrsid", "root": "/ships/hrsid", "batch_size": 4},
        "optim": {"lr": 0.02, "milestones": [3]}, "trainer": {"max_epochs": 4}})
    cfg = osd_config(sar, tmp_path / "dota", tmp_path / "osd", epochs=3, seed=1)
    assert (cfg.model.in_chans, cfg.model.init, cfg.model.name) == (3, "random",
                                                                    "faster_rcnn_r18_fpn")
    assert cfg.model.options == sar.model.options
    assert (cfg.data.dataset, cfg.data.root) == ("dota", str(tmp_path / "dota"))
    assert cfg.data.options == {"classes": ["ship"]}
    assert cfg.data.batch_size == 4 and cfg.optim.lr == 0.02
    assert cfg.trainer.max_epochs == 3 and cfg.trainer.seed == 1
    assert sar.model.in_chans == 1  # the SAR config is not modified
