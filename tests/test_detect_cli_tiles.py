"""``saropt detect eval`` on a tiled AIR-SARShip layout: tile-level and merged scene-level."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from saropt.cli import main
from saropt.detect.ap import gt_as_results
from saropt.detect.datasets import AIRSARShip

pytestmark = pytest.mark.filterwarnings(
    "ignore::rasterio.errors.NotGeoreferencedWarning")


def _air(root: Path) -> Path:
    import rasterio

    root.mkdir(parents=True)
    for k in range(2):
        arr = np.random.default_rng(k).integers(0, 500, (700, 700)).astype(np.uint16)
        with rasterio.open(root / f"s{k}.tif", "w", driver="GTiff", width=700, height=700,
                           count=1, dtype="uint16") as dst:
            dst.write(arr, 1)
        objs = "".join(
            f"<object><name>ship</name><bndbox><xmin>{x}</xmin><ymin>{y}</ymin>"
            f"<xmax>{x + 40}</xmax><ymax>{y + 16}</ymax></bndbox></object>"
            for x, y in [(30, 40), (240, 300), (500, 620), (650, 100)])
        (root / f"s{k}.xml").write_text(f"<annotation>{objs}</annotation>")
    return root


def test_eval_tiles_and_merged_scenes(tmp_path, capsys):
    root = _air(tmp_path / "air")
    reader = AIRSARShip(root, "2.0", "all")
    pred = tmp_path / "tile_preds.json"
    pred.write_text(json.dumps(gt_as_results(reader.to_coco())))
    args = ["detect", "eval", "--dataset", "air-sarship-2.0", "--root", str(root), "--split",
            "all", "--pred", str(pred), "--json", "--gallery", "1", "--option", "overlap=0.5"]
    assert main(args + ["--out", str(tmp_path / "tiles")]) == 0
    tiles = json.loads(capsys.readouterr().out)
    assert tiles["all"]["n_images"] == len(reader) and tiles["all"]["ap50"]["coco_101pt"] == 1.0
    assert main(args + ["--out", str(tmp_path / "scenes"), "--merge-tiles"]) == 0
    scenes = json.loads(capsys.readouterr().out)
    assert scenes["all"]["n_images"] == 2 and scenes["all"]["n_gt"] == 8
    assert scenes["all"]["ap50"] == {"voc07_11pt": 1.0, "voc_all_point": 1.0,
                                     "coco_101pt": 1.0}
    assert scenes["level"] == "scene" and tiles["level"] == "image"
    merged_path = tmp_path / "scenes" / "scene_predictions.json"
    assert len(json.loads(merged_path.read_text())) == 8  # one box per ship after NMS
    assert (tmp_path / "scenes" / "gallery.png").is_file()
    # predictions already on scenes (as `saropt detect predict` writes them) are recognised
    assert main(args + ["--out", str(tmp_path / "s2"), "--pred", str(merged_path)]) == 0
    again = json.loads(capsys.readouterr().out)
    assert again["level"] == "scene" and again["all"]["ap50"]["coco_101pt"] == 1.0
