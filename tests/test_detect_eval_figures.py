"""``saropt detect eval`` figures never cost the numbers: metrics.json first, a failing figure a
warning, scene-size images drawn as a window read on its own; output piped into ``head``."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from saropt.cli import main

pytestmark = pytest.mark.filterwarnings("ignore::rasterio.errors.NotGeoreferencedWarning")
CASES = Path(__file__).resolve().parents[2] / "shared" / "cases" / "real-inputs"


def _scene(root: Path, width: int = 5000, height: int = 3000) -> Path:
    """A scene-size uint16 GeoTIFF (compressed, so small on disk) with one ship and its XML."""
    import rasterio

    root.mkdir(parents=True)
    arr = np.full((height, width), 200, np.uint16)
    arr[2000:2015, 4000:4040] = 30000
    with rasterio.open(root / "big.tiff", "w", driver="GTiff", width=width, height=height,
                       count=1, dtype="uint16", compress="deflate", tiled=True,
                       nodata=65535) as dst:
        dst.write(arr, 1)
    (root / "big.xml").write_text(
        f"<annotation><size><width>{width}</width><height>{height}</height></size><object>"
        "<name>ship</name><bndbox><xmin>4000</xmin><ymin>2000</ymin><xmax>4040</xmax>"
        "<ymax>2015</ymax></bndbox></object></annotation>")
    pred = root.parent / "pred.json"
    pred.write_text(json.dumps([{"image_id": 1, "category_id": 1, "bbox": [4000, 2000, 40, 15],
                                 "score": 0.9},
                                {"image_id": 1, "category_id": 1, "bbox": [10, 10, 30, 30],
                                 "score": 0.3}]))  # under the gallery's score threshold
    return pred


def test_scene_gallery_draws_a_window_not_the_scene(tmp_path, monkeypatch):
    import saropt.detect.viz as viz

    pred = _scene(tmp_path / "scenes")
    drawn = []
    real = viz.gallery
    monkeypatch.setattr(viz, "gallery", lambda items, **kw: drawn.extend(items) or real(items,
                                                                                      **kw))
    out = tmp_path / "out"
    assert main(["detect", "eval", "--dataset", "air-sarship-1.0", "--root",
                 str(tmp_path / "scenes"), "--split", "all", "--pred", str(pred), "--out",
                 str(out)]) == 0
    m = json.loads((out / "metrics.json").read_text())
    assert m["all"]["ap50"]["voc_all_point"] == 1.0 and m["warnings"] == []
    assert (out / "gallery.png").stat().st_size > 0
    (item,) = drawn
    assert item["image"].shape == (1024, 1024)  # a window, centred on the ship
    assert "crop x 3508:4532, y 1496:2520" in item["title"]
    assert item["gt"].tolist() == [[492, 504, 532, 519]]
    assert item["image"][504:519, 492:532].min() == 255 and item["image"][0, 0] < 128


def test_figure_failure_is_a_warning_after_the_numbers(tmp_path, monkeypatch, caplog):
    import saropt.detect.viz as viz

    pred = _scene(tmp_path / "scenes", 600, 400)
    (tmp_path / "scenes" / "big.xml").write_text(
        "<annotation><object><name>ship</name><bndbox><xmin>1</xmin><ymin>1</ymin>"
        "<xmax>20</xmax><ymax>20</ymax></bndbox></object></annotation>")
    pred.write_text(json.dumps([]))

    def boom(*args, **kwargs):
        raise MemoryError("Unable to allocate 21.0 GiB")

    monkeypatch.setattr(viz, "gallery", boom)
    out = tmp_path / "out"
    assert main(["detect", "eval", "--dataset", "air-sarship-1.0", "--root",
                 str(tmp_path / "scenes"), "--split", "all", "--option", "tile=null",
                 "--pred", str(pred), "--out", str(out)]) == 0
    m = json.loads((out / "metrics.json").read_text())
    assert m["all"]["n_gt"] == 1 and m["all"]["ap50"]["coco_101pt"] == 0.0
    assert m["warnings"][-1] == "gallery not drawn: MemoryError: Unable to allocate 21.0 GiB"
    assert "no detections" in m["warnings"][0]  # the predictions file is empty
    assert "gallery" not in m["files"] and (out / "pr_curves.png").is_file()
    assert "gallery not drawn: MemoryError" in caplog.text


def test_output_piped_into_head_ends_quietly(tmp_path):
    code = ("import sys, saropt.cli as c; "
            "c._cmd_configs = lambda a: [print(i) for i in range(300000)] and 0; "
            "sys.exit(c.main(['configs']))")
    proc = subprocess.run(f'"{sys.executable}" -c "{code}" | head -n 1', shell=True,
                          capture_output=True, text=True, timeout=60,
                          env={"PYTHONPATH": str(Path(__file__).parents[1] / "src"),
                               "PATH": "/usr/bin:/bin"})
    assert proc.stdout == "0\n"
    assert proc.stderr == ""


@pytest.mark.skipif(not CASES.is_dir(), reason=f"shared real-input cases not found at {CASES}")
def test_case_sentinel1_grd_scene_gallery(tmp_path):
    import os

    old = os.getcwd()
    os.chdir(CASES / "sentinel1-grd-scene-gallery")
    try:
        rc = main(["detect", "eval", "--dataset", "air-sarship-1.0", "--root", "scenes",
                   "--split", "all", "--pred", "scene_pred.json", "--out", str(tmp_path)])
    finally:
        os.chdir(old)
    assert rc == 0
    m = json.loads((tmp_path / "metrics.json").read_text())
    assert m["all"]["ap50"]["voc_all_point"] == 1.0 and m["warnings"] == []
    assert (tmp_path / "gallery.png").is_file()
