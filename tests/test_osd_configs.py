"""The OSD configs read real DOTA v1 ships as optical (3-channel) tiles through the detection
training's dataset code; a SAR (1-channel) config is refused."""

from __future__ import annotations

from pathlib import Path

import pytest

from saropt.config import ConfigError
from saropt.errors import SaroptError
from saropt.fuse.osd import load_osd_config

DOTA = Path(__file__).resolve().parents[2] / "shared" / "data" / "dota-sample"


@pytest.mark.parametrize("name,tile,family", [("osd/faster_rcnn_dota", 1024, "faster_rcnn"),
                                               ("osd/yolov3_dota", 608, "yolov3")])
def test_osd_config_reads_real_dota_tiles(name, tile, family):
    if not DOTA.is_dir():
        pytest.skip(f"real DOTA sample not found at {DOTA} (../shared/data is not part of a clone)")
    from saropt.detect.datamodule import make_dataset

    cfg = load_osd_config(name, [f"data.root={DOTA}"])
    assert cfg.model.in_chans == 3 and cfg.model.name.startswith(family)
    ds = make_dataset(cfg.data, cfg.data.train_split, cfg.model.in_chans)
    assert len(ds) >= 2  # P0706 (1111 x 1182) is cut into tiles
    assert all(r.width <= tile and r.height <= tile for r in ds.records)
    n_ships = sum(len(r.boxes) for r in ds.records)
    assert n_ships > 300  # 525 non-difficult ships, some counted in two overlapping tiles
    assert {c["name"] for c in ds.categories} == {"ship"}
    sample = ds[0]
    assert sample["image"].shape[0] == 3 and float(sample["image"].max()) <= 1.0


def test_osd_config_needs_root_and_optical_input():
    with pytest.raises(ConfigError, match="data.root"):
        load_osd_config("osd/faster_rcnn_dota")
    with pytest.raises(SaroptError, match="in_chans=3"):
        load_osd_config("osd/faster_rcnn_dota", ["data.root=/x", "model.in_chans=1"])
