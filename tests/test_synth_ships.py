"""Ship detection sets: COCO loads in pycocotools, boxes inside images, VOC XML and DOTA parse,
SSDD numbering gives the test split, land masks match the chips."""

from __future__ import annotations

import json
from pathlib import Path
from xml.etree import ElementTree as ET

import numpy as np
import pytest
from PIL import Image

from saropt.cli import main


@pytest.fixture
def ships_root(synth_ships_root) -> Path:
    return synth_ships_root


def test_cli_ships_json(tmp_path, capsys):
    assert main(["synth", "ships", "--out", str(tmp_path), "--n-train", "2", "--n-test", "1",
                 "--size", "96", "--scene-size", "256", "--quiet", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["train_images"] == 2 and out["test_images"] == 1


def test_coco_loads_and_boxes_inside(ships_root):
    from pycocotools.coco import COCO

    for split, n in (("train", 10), ("test", 5)):
        path = ships_root / "hrsid" / "annotations" / f"{split}2017.json"
        coco = COCO(str(path))
        assert len(coco.getImgIds()) == n
        assert coco.loadCats(1)[0]["name"] == "ship"
        for img in coco.loadImgs(coco.getImgIds()):
            assert img["scene"] in ("inshore", "offshore")
            im = Image.open(ships_root / "hrsid" / "JPEGImages" / img["file_name"])
            assert im.size == (img["width"], img["height"]) == (128, 128)
            mask = np.asarray(Image.open(ships_root / "hrsid" / "land_masks" /
                                         f"{Path(img['file_name']).stem}.png"))
            assert mask.shape == (128, 128) and set(np.unique(mask)) <= {0, 255}
            assert (img["scene"] == "offshore") == (mask.mean() / 255 < 0.02)
            for a in coco.loadAnns(coco.getAnnIds(imgIds=[img["id"]])):
                x, y, w, h = a["bbox"]
                assert 0 <= x and 0 <= y and x + w <= img["width"] and y + h <= img["height"]
                assert w > 0 and h > 0 and a["area"] > 0
    train = json.loads((ships_root / "hrsid/annotations/train2017.json").read_text())
    assert len(train["annotations"]) > 0
    n_with = len({a["image_id"] for a in train["annotations"]})
    assert n_with < len(train["images"])  # some chips hold no ship


def test_ssdd_voc_parses_and_rule_gives_test_split(ships_root):
    d = ships_root / "ssdd"
    xmls = sorted((d / "Annotations").glob("*.xml"))
    assert len(xmls) == 15
    test = [p.stem for p in xmls if p.stem[-1] in "19"]
    assert len(test) == 5
    listed = (d / "ImageSets" / "Main" / "test.txt").read_text().split()
    assert sorted(listed) == sorted(test)
    n_obj = 0
    for p in xmls:
        root = ET.parse(p).getroot()
        assert (d / "JPEGImages" / root.findtext("filename")).is_file()
        for obj in root.iter("object"):
            assert obj.findtext("name") == "ship"
            b = [int(obj.find("bndbox").findtext(k)) for k in ("xmin", "ymin", "xmax", "ymax")]
            assert 0 <= b[0] < b[2] <= 128 and 0 <= b[1] < b[3] <= 128
            n_obj += 1
    coco_n = sum(len(json.loads((ships_root / f"hrsid/annotations/{s}2017.json").read_text())
                     ["annotations"]) for s in ("train", "test"))
    assert n_obj == coco_n


def test_dota_files_parse(ships_root):
    d = ships_root / "dota"
    txts = sorted((d / "labelTxt").glob("*.txt"))
    assert len(txts) == 15
    n = 0
    for t in txts:
        lines = t.read_text().splitlines()
        assert lines[0].startswith("imagesource:") and lines[1].startswith("gsd:")
        im = Image.open(d / "images" / f"{t.stem}.png")
        assert im.mode == "RGB" and im.size == (128, 128)
        for line in lines[2:]:
            parts = line.split()
            assert parts[8:] == ["ship", "0"]
            quad = np.array(parts[:8], float).reshape(4, 2)
            assert (quad >= 0).all() and (quad <= 128).all()
            e1, e2 = quad[1] - quad[0], quad[2] - quad[1]
            assert abs(np.dot(e1, e2)) < 0.05 * np.linalg.norm(e1) * np.linalg.norm(e2)  # rectangle
            n += 1
    assert n > 0
