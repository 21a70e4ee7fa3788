"""Readers on the layouts the datasets are released in (generated here), ids that are not
paths, non-UTF-8 XML, and the shared real-input cases (skipped when ../shared is absent)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from saropt.cli import main
from saropt.detect.datasets import HRSID, SSDD, AIRSARShip
from saropt.detect.datasets.voc import parse_voc_xml
from saropt.errors import DataError

pytestmark = pytest.mark.filterwarnings("ignore::rasterio.errors.NotGeoreferencedWarning")
CASES = Path(__file__).resolve().parents[2] / "shared" / "cases" / "real-inputs"
needs_cases = pytest.mark.skipif(not CASES.is_dir(),
                                 reason=f"shared real-input cases not found at {CASES}")


def _img(path: Path, w: int = 40, h: int = 30) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((h, w), 90, np.uint8)).save(path)


def _xml(path: Path, boxes: list[list[int]], encoding: str | None = None, name: str = "ship",
         w: int = 40, h: int = 30) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    objs = "".join(f"<object><name>{name}</name><difficult>0</difficult><bndbox><xmin>{b[0]}"
                   f"</xmin><ymin>{b[1]}</ymin><xmax>{b[2]}</xmax><ymax>{b[3]}</ymax></bndbox>"
                   "</object>" for b in boxes)
    text = (f"<annotation><size><width>{w}</width><height>{h}</height></size>{objs}"
            "</annotation>")
    if encoding:
        path.write_bytes(f'<?xml version="1.0" encoding="{encoding}"?>\n{text}'
                         .encode(encoding))
    else:
        path.write_text(text)


def _tiff(path: Path, size: int = 64) -> None:
    import rasterio

    path.parent.mkdir(parents=True, exist_ok=True)
    with rasterio.open(path, "w", driver="GTiff", width=size, height=size, count=1,
                       dtype="uint16") as dst:
        dst.write(np.full((size, size), 300, np.uint16), 1)


# ----------------------------------------------------------------------------- SSDD

SCENE_OF = {1: "offshore", 2: "inshore", 3: "inshore", 4: "offshore", 9: "inshore",
            10: "offshore", 11: "inshore"}


def _ssdd_voc_style(root: Path, flat: bool = True) -> Path:
    """The official voc_style: per-split and per-scene copies of the images and XML."""
    for i, scene in SCENE_OF.items():
        split = "test" if i % 10 in (1, 9) else "train"
        name = f"{i:06d}"
        folders = [f"_{split}", f"_{split}_{scene}"] + ([""] if flat else [])
        for tail in folders:
            _img(root / f"JPEGImages{tail}" / f"{name}.jpg")
            _xml(root / f"Annotations{tail}" / f"{name}.xml", [[2, 2, 12 + i, 10]])
    return root


@pytest.mark.parametrize("flat", [True, False])
def test_ssdd_voc_style_scenes_for_train_and_test(tmp_path, flat):
    root = _ssdd_voc_style(tmp_path / "BBox_SSDD" / "voc_style", flat)
    for split in ("train", "test"):
        ds = SSDD(tmp_path, split)  # found below the folder given
        assert ds.layout == ("voc" if flat else "voc_split")
        got = {r.image_id: r.meta["scene"] for r in ds.records}
        assert got == {i: s for i, s in SCENE_OF.items()
                       if (i % 10 in (1, 9)) == (split == "test")}
    assert len(SSDD(root, "all")) == len(SCENE_OF)


def test_ssdd_coco_style(tmp_path):
    root = tmp_path / "coco_style"
    for split, ids in (("train", [2, 3, 4]), ("test", [1, 9])):
        images = [{"id": k, "file_name": f"{i:06d}.jpg", "width": 40, "height": 30}
                  for k, i in enumerate(ids)]  # ids from 0, as converted files have
        anns = [{"id": k, "image_id": k, "category_id": 0, "bbox": [2, 2, 10, 8], "area": 80,
                 "iscrowd": 0} for k in range(len(ids))]
        for i in ids:
            _img(root / "images" / split / f"{i:06d}.jpg")
        doc = {"images": images, "annotations": anns, "categories": [{"id": 0, "name": "ship"}]}
        (root / "annotations").mkdir(parents=True, exist_ok=True)
        (root / "annotations" / f"{split}.json").write_text(json.dumps(doc))
        for scene in ("inshore", "offshore"):
            sub = [im for im in images if SCENE_OF[int(im["file_name"][:6])] == scene]
            (root / "annotations" / f"{split}_{scene}.json").write_text(
                json.dumps({**doc, "images": sub, "annotations": []}))
    ds = SSDD(tmp_path, "all")
    assert ds.layout == "coco"
    assert {r.image_id: r.meta["scene"] for r in ds.records} == {
        i: SCENE_OF[i] for i in (1, 2, 3, 4, 9)}
    assert ds[0]["image"].shape == (1, 30, 40) and ds[0]["boxes"].tolist() == [[2, 2, 12, 10]]


def test_ssdd_no_layout_names_the_layouts(tmp_path):
    (tmp_path / "stuff").mkdir()
    with pytest.raises(DataError, match="looked for voc_style: JPEGImages/.*coco_style"):
        SSDD(tmp_path, "test")


def test_ssdd_list_ids_and_empty_split(tmp_path):
    root = tmp_path / "ssdd"
    for name in ("a.1", "a.2"):  # ids with dots
        _img(root / "JPEGImages" / f"{name}.png")
        _xml(root / "Annotations" / f"{name}.xml", [[1, 1, 9, 9]])
    main_dir = root / "ImageSets" / "Main"
    main_dir.mkdir(parents=True)
    (main_dir / "test.txt").write_text("a.2\r\n")
    assert [r.file_name for r in SSDD(root, "test").records] == ["a.2.png"]
    (main_dir / "train.txt").write_text("b.1\nb.2\n")
    with pytest.raises(DataError, match=r"train.txt selects no image.*\(b.1, b.2\)"):
        SSDD(root, "train")


# ----------------------------------------------------------------------------- HRSID


@pytest.mark.parametrize("release", ["HRSID_JPG", "HRSID_png"])
def test_hrsid_release_layout(tmp_path, release):
    root = tmp_path / release
    suffix = ".png" if release == "HRSID_png" else ".jpg"
    names = ["P0001_0_800_0_800", "P0002_0_800_0_800", "P0003_0_800_0_800"]
    for n in names:
        _img(root / "JPEGImages" / f"{n}{suffix}")
    images = [{"id": k + 1, "file_name": f"{n}.jpg", "width": 40, "height": 30}
              for k, n in enumerate(names)]  # .jpg names even in the png release
    anns = [{"id": k + 1, "image_id": k + 1, "category_id": 1, "bbox": [1, 1, 5, 5],
             "area": 25, "iscrowd": 0} for k in range(3)]
    cats = [{"id": 1, "name": "ship"}]
    (root / "annotations").mkdir()
    (root / "inshore_offshore").mkdir()
    for split, sel in (("train", [0, 1]), ("test", [2]), ("train_test", [0, 1, 2])):
        doc = {"images": [images[i] for i in sel], "annotations": [anns[i] for i in sel],
               "categories": cats}
        (root / "annotations" / f"{split}2017.json").write_text(json.dumps(doc))
    for scene, sel in (("inshore", [1]), ("offshore", [0, 2])):
        (root / "inshore_offshore" / f"{scene}.json").write_text(json.dumps(
            {"images": [images[i] for i in sel], "annotations": [], "categories": cats}))
    ds = HRSID(tmp_path, "all")
    assert [r.meta["scene"] for r in ds.records] == ["offshore", "inshore", "offshore"]
    assert ds[2]["image"].shape == (1, 30, 40)
    assert [r.image_id for r in HRSID(tmp_path, "test").records] == [3]
    with pytest.raises(DataError, match="no HRSID layout found; looked for HRSID_JPG"):
        HRSID(tmp_path / "annotations-less", "test")


# ----------------------------------------------------------------------------- AIR-SARShip


@pytest.mark.parametrize("version, xml_name", [("1.0", "{}-label.xml"), ("2.0", "{}.xml")])
def test_airsarship_release_layout_and_ids_with_dots(tmp_path, version, xml_name):
    root = tmp_path / f"AIR-SARShip-{version}"
    ids = [f"SARShip-{version}-{k}" for k in (1, 2, 3)]
    for k, i in enumerate(ids):
        _tiff(root / f"AIR-SARShip-{version}-data" / f"{i}.tiff")
        _xml(root / f"AIR-SARShip-{version}-xml" / xml_name.format(i),
             [[5, 5, 20, 15]] * (k + 1), w=64, h=64)
    ds = AIRSARShip(root, version, "all", tile=None)
    assert len(ds.scenes) == 3 and len(ds.scene_coco()["annotations"]) == 6
    (root / "test.txt").write_text(f"{ids[2]}\n")
    test = AIRSARShip(root, version, "test", tile=None)
    assert [s["path"].name for s in test.scenes] == [f"{ids[2]}.tiff"]
    assert len(test.scene_coco()["annotations"]) == 3
    (root / "train.txt").write_text("SARShip-9.9-1\n")
    with pytest.raises(DataError, match=r"train.txt selects no image.*SARShip-9.9-1"):
        AIRSARShip(root, version, "train", tile=None)


def test_airsarship_nothing_found_lists_layouts(tmp_path):
    _tiff(tmp_path / "a" / "x.tiff")
    (tmp_path / "b").mkdir()
    with pytest.raises(DataError, match="x.xml or x-label.xml.*layouts looked for: release"):
        AIRSARShip(tmp_path, "1.0", "all", tile=None)
    with pytest.raises(DataError, match="no .tif/.tiff scenes; AIR-SARShip layouts"):
        AIRSARShip(tmp_path / "b", "1.0", "all")


@pytest.mark.parametrize("encoding", ["gb2312", "GBK", "GB18030", "utf-8", "iso-8859-1"])
def test_xml_declared_encodings_parse(tmp_path, encoding):
    name = "ship" if encoding == "iso-8859-1" else "油船"
    _xml(tmp_path / "a.xml", [[1, 2, 3, 4]], encoding=encoding, name=name)
    ann = parse_voc_xml(tmp_path / "a.xml")
    assert ann.objects[0].name == name and ann.objects[0].box == (1, 2, 3, 4)
    (tmp_path / "b.xml").write_bytes(b'<?xml version="1.0" encoding="klingon"?><a/>')
    with pytest.raises(DataError, match="b.xml: declares the unknown encoding 'klingon'"):
        parse_voc_xml(tmp_path / "b.xml")


# ----------------------------------------------------------------------------- shared cases


def _eval(tmp_path, capsys, folder: str, *args: str) -> dict:
    import os

    old = os.getcwd()
    os.chdir(CASES / folder)
    try:
        rc = main(["detect", "eval", *args, "--gallery", "0", "--out", str(tmp_path), "--json"])
    finally:
        os.chdir(old)
    assert rc == 0, capsys.readouterr().err
    return json.loads((tmp_path / "metrics.json").read_text())


@needs_cases
@pytest.mark.parametrize("version, n", [("1.0", 6), ("2.0", 2)])
def test_case_airsarship_release_layout(tmp_path, capsys, version, n):
    m = _eval(tmp_path, capsys, "airsarship-release-layout", "--dataset",
              f"air-sarship-{version}", "--root", f"AIR-SARShip-{version}", "--split", "all",
              "--option", "tile=null", "--pred", "empty_pred.json")
    assert m["all"]["n_gt"] == n and m["all"]["ap50"]["voc_all_point"] == 0.0


@needs_cases
@pytest.mark.parametrize("folder, split, n_img", [("xml-declared-gb2312", "all", 1),
                                                  ("ids-with-dots", "test", 1)])
def test_case_air_gb2312_and_ids_with_dots(tmp_path, capsys, folder, split, n_img):
    m = _eval(tmp_path, capsys, folder, "--dataset", "air-sarship-1.0", "--root",
              "AIR-SARShip-1.0", "--split", split, "--option", "tile=null", "--pred",
              "empty_pred.json")
    assert m["all"]["n_images"] == n_img and m["all"]["n_gt"] == 1


@needs_cases
def test_case_ssdd_voc_style_scenes(tmp_path, capsys):
    m = _eval(tmp_path, capsys, "ssdd-voc-style-scenes", "--dataset", "ssdd", "--root",
              "voc_style", "--split", "train", "--pred", "train_pred.json", "--subset-key",
              "scene")
    assert m["subsets"]["scene=inshore"]["n_images"] == 2
    assert m["subsets"]["scene=offshore"]["n_images"] == 7


@needs_cases
def test_case_coco_annotation_id_0(tmp_path, capsys):
    m = _eval(tmp_path, capsys, "coco-annotation-id-0", "--gt", "gt.json", "--pred",
              "pred.json")
    assert m["all"]["ap50"] == {"voc07_11pt": 1.0, "voc_all_point": 1.0, "coco_101pt": 1.0}


# ----------------------------------------------------------------------------- DOTA

DOTA_OBJECTS = "10 10 30 12 28 25 8 22 ship 0\n50 50 60 50 60 60 50 60 ship\n"


@pytest.mark.parametrize("labels, header, newline", [
    ("labelTxt", "'imagesource':GoogleEarth\n'gsd':0.146343590398\n", "\n"),  # v1.0 quoted
    ("labelTxt-v1.0/labelTxt", "imagesource:GoogleEarth\ngsd:0.5\n", "\r\n"),
    ("labelTxt-v1.5/DOTA-v1.5_train", "imagesource:GoogleEarth\ngsd:null\n", "\r\n"),
    ("labelTxt-v2.0/DOTA-v2.0_train_hbb", "", "\n"),  # no header
])
def test_dota_release_label_folders_and_headers(tmp_path, labels, header, newline):
    from saropt.detect.datasets import DOTA

    root = tmp_path / "train"
    (root / "images" / "part1").mkdir(parents=True)
    Image.fromarray(np.zeros((100, 120, 3), np.uint8)).save(root / "images" / "part1" / "P1.png")
    (root / labels).mkdir(parents=True)
    text = (header + DOTA_OBJECTS).replace("\n", newline)
    (root / labels / "P1.txt").write_bytes(("\ufeff" if newline == "\r\n" else "").encode()
                                           + text.encode())
    ds = DOTA(root)
    assert ds.label_dir == root / labels
    assert ds[0]["boxes"].tolist() == [[8, 10, 30, 25], [50, 50, 60, 60]]  # no flag: not hard
    gsd = {"labelTxt": 0.146343590398, "labelTxt-v1.0/labelTxt": 0.5}.get(labels)
    assert ds.records[0].meta["gsd"] == pytest.approx(gsd) if gsd else \
        ds.records[0].meta["gsd"] is None


def test_dota_several_label_folders_need_a_choice(tmp_path):
    from saropt.detect.datasets import DOTA

    (tmp_path / "images").mkdir()
    Image.fromarray(np.zeros((20, 20, 3), np.uint8)).save(tmp_path / "images" / "P1.png")
    for sub in ("labelTxt-v1.5/DOTA-v1.5_train", "labelTxt-v1.5/DOTA-v1.5_train_hbb"):
        (tmp_path / sub).mkdir(parents=True)
        (tmp_path / sub / "P1.txt").write_text(DOTA_OBJECTS)
    with pytest.raises(DataError, match="several DOTA label folders.*--option labels="):
        DOTA(tmp_path)
    assert len(DOTA(tmp_path, labels="labelTxt-v1.5/DOTA-v1.5_train_hbb")) == 1
    with pytest.raises(DataError, match="no DOTA label folder; layouts looked for"):
        DOTA(tmp_path / "images")


# ----------------------------------------------------------------------------- predict elsewhere


def test_training_folder_options_do_not_follow_to_another_dataset(tmp_path):
    from saropt.detect.module import DataConfig
    from saropt.detect.predict import reader_options

    train = DataConfig(dataset="coco", root=str(tmp_path / "train"),
                       options={"ann_file": "a.json", "image_dir": "imgs", "tile": 512})
    assert reader_options(train, None, None, None)[2] == {"ann_file": "a.json",
                                                         "image_dir": "imgs", "tile": 512}
    name, root, opts, dropped = reader_options(train, None, tmp_path / "other", {"x": 1})
    assert (name, opts, dropped) == ("coco", {"tile": 512, "x": 1}, ["ann_file", "image_dir"])
    name, root, opts, dropped = reader_options(train, "ssdd", tmp_path / "ssdd", None)
    assert (name, root, opts) == ("ssdd", str(tmp_path / "ssdd"), {})
    assert dropped == ["ann_file", "image_dir", "tile"]


def test_string_scene_ids_score_on_whole_scenes(tmp_path):
    root = tmp_path / "AIR-SARShip-1.0"
    for i in ("SARShip-1.0-1", "SARShip-1.0-2"):
        _tiff(root / "AIR-SARShip-1.0-data" / f"{i}.tiff")
        _xml(root / "AIR-SARShip-1.0-xml" / f"{i}-label.xml", [[5, 5, 20, 15]], w=64, h=64)
    pred = tmp_path / "yolo.json"  # a YOLO-style file: file stems as image ids
    pred.write_text(json.dumps([{"image_id": i, "category_id": 1, "bbox": [5, 5, 15, 10],
                                 "score": 0.9} for i in ("SARShip-1.0-1", "SARShip-1.0-2.tiff")]))
    out = tmp_path / "out"
    assert main(["detect", "eval", "--dataset", "air-sarship-1.0", "--root", str(root),
                 "--split", "all", "--pred", str(pred), "--gallery", "0", "--out",
                 str(out)]) == 0
    m = json.loads((out / "metrics.json").read_text())
    assert m["level"] == "scene" and m["all"]["ap50"]["coco_101pt"] == 1.0
