"""More inputs shaped like other tools' files and other copies of the releases (issue 10, kinds
1-6), each generated here with its right outcome pinned: a number, or one clear error line."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from saropt.cli import main
from saropt.detect.ap import evaluate_coco_results

pytestmark = pytest.mark.filterwarnings("ignore::rasterio.errors.NotGeoreferencedWarning")

IMAGES = [{"id": 1, "file_name": "a.jpg", "width": 40, "height": 30},
          {"id": 2, "file_name": "b.jpg", "width": 40, "height": 30}]
ANNS = [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [2, 2, 10, 8], "iscrowd": 0},
        {"id": 2, "image_id": 2, "category_id": 1, "bbox": [5, 5, 10, 10], "iscrowd": 0},
        {"id": 3, "image_id": 2, "category_id": 1, "bbox": [20, 5, 10, 10], "iscrowd": 0}]
#: TP (0.9), FP (0.8), TP (0.7) on 3 ships: VOC07 (1 * 4 + 2/3 * 3 + 0 * 4) / 11 = 6/11,
#: all-point 1/3 + 1/3 * 2/3 = 5/9, COCO 101-pt (34 * 1 + 33 * 2/3) / 101 = 56/101
PREDS = [{"image_id": 1, "category_id": 1, "bbox": [2, 2, 10, 8], "score": 0.9},
         {"image_id": 1, "category_id": 1, "bbox": [25, 15, 10, 10], "score": 0.8},
         {"image_id": 2, "category_id": 1, "bbox": [5, 5, 10, 10], "score": 0.7}]
EXPECTED = {"voc07_11pt": 6 / 11, "voc_all_point": 5 / 9, "coco_101pt": 56 / 101}


def _gt(images=IMAGES, anns=ANNS, cats=None) -> dict:
    return {"images": images, "annotations": anns,
            "categories": cats or [{"id": 1, "name": "ship"}]}


def _cli(*args: str) -> tuple[int, str]:
    import contextlib
    import io

    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        rc = main(list(args))
    return rc, err.getvalue()


def _pycocotools_ap50(gt: dict, preds: list[dict]) -> float:
    """AP50 from pycocotools alone on a clean copy (integer ids) of ``gt``."""
    import contextlib
    import io

    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    with contextlib.redirect_stdout(io.StringIO()):
        coco = COCO()
        coco.dataset = json.loads(json.dumps(gt))
        for a in coco.dataset["annotations"]:
            a["area"] = a["bbox"][2] * a["bbox"][3]
        coco.createIndex()
        ev = COCOeval(coco, coco.loadRes(json.loads(json.dumps(preds))), "bbox")
        ev.params.iouThrs = np.array([0.5])
        ev.params.areaRng, ev.params.areaRngLbl = [[0.0, 1e10]], ["all"]
        ev.evaluate()
        ev.accumulate()
    p = ev.eval["precision"][0, :, 0, 0, -1]
    return float(p[p > -1].mean())


def test_reference_example_matches_pycocotools():
    assert _pycocotools_ap50(_gt(), PREDS) == pytest.approx(EXPECTED["coco_101pt"], abs=1e-12)
    ap = evaluate_coco_results(_gt(), PREDS)["all"]["ap50"]
    assert ap == pytest.approx(EXPECTED, abs=1e-12)


# ----------------------------------------------------------------------------- ground truth

def test_gt_image_and_category_ids_written_as_strings_score(tmp_path):
    """Image ids "1", "2" in the GT (as some converters write them) made pycocotools' loadRes
    assert (a traceback); they are the integers they spell."""
    images = [{**i, "id": str(i["id"])} for i in IMAGES]
    anns = [{**a, "image_id": str(a["image_id"]), "category_id": "1"} for a in ANNS]
    gt = tmp_path / "gt.json"
    gt.write_text(json.dumps(_gt(images, anns, [{"id": "1", "name": "ship"}])))
    pred = tmp_path / "pred.json"
    pred.write_text(json.dumps(PREDS))
    rc, err = _cli("detect", "eval", "--gt", str(gt), "--pred", str(pred), "--gallery", "0",
                   "--out", str(tmp_path / "out"))
    assert rc == 0, err
    ap = json.loads((tmp_path / "out" / "metrics.json").read_text())["all"]["ap50"]
    assert ap == pytest.approx(EXPECTED, abs=1e-12)


def test_gt_image_id_that_is_no_integer_is_one_error():
    from saropt.errors import DataError

    images = [{**IMAGES[0], "id": "1.5"}, IMAGES[1]]
    with pytest.raises(DataError, match="image entry without an integer id"):
        evaluate_coco_results(_gt(images, ANNS[1:]), [])


# ----------------------------------------------------------------------------- eval options

def test_subset_key_no_image_has_is_reported_not_silent(tmp_path, caplog):
    gt = tmp_path / "gt.json"
    gt.write_text(json.dumps(_gt([{**IMAGES[0], "scene": "inshore"}, IMAGES[1]])))
    pred = tmp_path / "pred.json"
    pred.write_text(json.dumps(PREDS))
    rc, err = _cli("detect", "eval", "--gt", str(gt), "--pred", str(pred), "--gallery", "0",
                   "--subset-key", "scnee", "--subset-key", "scene", "--out", str(tmp_path / "o"))
    assert rc == 0, err
    m = json.loads((tmp_path / "o" / "metrics.json").read_text())
    assert list(m["subsets"]) == ["scene=inshore"]
    assert m["subsets"]["scene=inshore"]["ap50"]["voc_all_point"] == 1.0
    assert m["input_checks"]["subset_keys_without_values"] == ["scnee"]
    assert m["warnings"] == ["--subset-key scnee: no ground-truth image has a value for "
                             "'scnee'; no scnee rows"]
    assert "subset key(s) scnee" in caplog.text
    assert "image keys with values: scene" in caplog.text


# ----------------------------------------------------------------------------- SSDD copies

def _jpg(path: Path, w: int = 40, h: int = 30) -> None:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((h, w), 90, np.uint8)).save(path)


def _voc(boxes: list[list[float]]) -> str:
    objs = "".join(f"<object><name>ship</name><bndbox><xmin>{b[0]}</xmin><ymin>{b[1]}</ymin>"
                   f"<xmax>{b[2]}</xmax><ymax>{b[3]}</ymax></bndbox></object>" for b in boxes)
    return f"<annotation><size><width>40</width><height>30</height></size>{objs}</annotation>"


def test_ssdd_split_given_only_as_scene_folders(tmp_path):
    """A voc_style copy whose test split is only JPEGImages_test_{inshore,offshore}/ (no
    JPEGImages_test/) was 'image folder JPEGImages_test does not exist'; one with nothing but
    scene folders was 'no SSDD layout found'."""
    from saropt.detect.datasets import SSDD

    root = tmp_path / "voc_style"
    for num, split, scene in [(1, "test", "inshore"), (9, "test", "offshore"),
                              (11, "test", "offshore"), (2, "train", "inshore")]:
        _jpg(root / f"JPEGImages_{split}_{scene}" / f"{num:06d}.jpg")
        (root / f"Annotations_{split}_{scene}").mkdir(parents=True, exist_ok=True)
        (root / f"Annotations_{split}_{scene}" / f"{num:06d}.xml").write_text(
            _voc([[2, 2, 10 + num, 10]]))
    test = SSDD(tmp_path, "test")
    assert [(r.image_id, r.meta["scene"]) for r in test.records] == [
        (1, "inshore"), (9, "offshore"), (11, "offshore")]
    assert [r.boxes.tolist() for r in test.records] == [[[2, 2, 11, 10]], [[2, 2, 19, 10]],
                                                        [[2, 2, 21, 10]]]
    assert sorted(r.image_id for r in SSDD(tmp_path, "all").records) == [1, 2, 9, 11]


def test_ssdd_test_folder_missing_names_what_was_looked_for(tmp_path):
    from saropt.detect.datasets import SSDD
    from saropt.errors import DataError

    _jpg(tmp_path / "JPEGImages_train" / "000002.jpg")
    (tmp_path / "Annotations_train").mkdir()
    (tmp_path / "Annotations_train" / "000002.xml").write_text(_voc([[2, 2, 10, 10]]))
    with pytest.raises(DataError, match=r"no test images: neither JPEGImages_test/ nor "
                       r"JPEGImages_test_inshore/ / JPEGImages_test_offshore/ exists"):
        SSDD(tmp_path, "test")


# ----------------------------------------------------------------------------- XML variants

ROTATED = {
    # RBox-SSDD: <bndbox> absent, corners of the rotated box
    "rotated_bndbox": "<rotated_bndbox><rotated_bbox_cx>7</rotated_bbox_cx><x1>2</x1><y1>4</y1>"
                      "<x2>10</x2><y2>2</y2><x3>12</x3><y3>10</y3><x4>4</x4><y4>12</y4>"
                      "</rotated_bndbox>",
    # roLabelImg: centre, size, angle in radians (pi/2: w along y)
    "robndbox": "<robndbox><cx>20</cx><cy>15</cy><w>10</w><h>4</h><angle>1.5707963267948966"
                "</angle></robndbox>",
}


@pytest.mark.parametrize("kind, box", [("rotated_bndbox", [2, 2, 12, 12]),
                                       ("robndbox", [18, 10, 22, 20])])
def test_rotated_boxes_become_their_horizontal_box(tmp_path, kind, box):
    from saropt.detect.datasets.voc import parse_voc_xml

    path = tmp_path / "a.xml"
    path.write_text(f"<annotation><object><name>ship</name><difficult>0</difficult>"
                    f"{ROTATED[kind]}</object></annotation>")
    assert parse_voc_xml(path).objects[0].box == pytest.approx(box, abs=1e-9)


def test_rotated_bndbox_without_corners_is_one_error(tmp_path):
    from saropt.detect.datasets.voc import parse_voc_xml
    from saropt.errors import DataError

    path = tmp_path / "a.xml"
    path.write_text("<annotation><object><name>ship</name><rotated_bndbox><rotated_bbox_cx>7"
                    "</rotated_bbox_cx></rotated_bndbox></object></annotation>")
    with pytest.raises(DataError, match="a.xml: object 'ship' has no readable box "
                       r"\(<rotated_bndbox> without its corners"):
        parse_voc_xml(path)


@pytest.mark.parametrize("declaration", ['<?xml version="1.0" encoding="UTF-16"?>\n', ""])
def test_utf16_xml_with_bom_parses(tmp_path, declaration):
    """Windows tools write UTF-16 with a byte-order mark; it read as 'not valid utf-8'."""
    from saropt.detect.datasets.voc import parse_voc_xml

    path = tmp_path / "a.xml"
    path.write_bytes((declaration + _voc([[2, 3, 12, 10]]).replace("ship", "船")
                      ).encode("utf-16"))
    ann = parse_voc_xml(path)
    assert [(o.name, o.box) for o in ann.objects] == [("船", (2.0, 3.0, 12.0, 10.0))]


def test_xml_declared_utf8_but_gbk_is_one_error_naming_the_file(tmp_path):
    from saropt.detect.datasets.voc import parse_voc_xml
    from saropt.errors import DataError

    path = tmp_path / "a.xml"
    path.write_bytes(('<?xml version="1.0" encoding="utf-8"?>' + _voc([[2, 3, 12, 10]])
                      .replace("ship", "舰船")).encode("gbk"))
    with pytest.raises(DataError, match=r"a.xml: not valid utf-8 text"):
        parse_voc_xml(path)


# ----------------------------------------------------------------------------- results files

def _scene_tiff(path: Path, size: int = 64) -> None:
    import rasterio

    path.parent.mkdir(parents=True, exist_ok=True)
    with rasterio.open(path, "w", driver="GTiff", width=size, height=size, count=1,
                       dtype="uint16") as dst:
        dst.write(np.full((size, size), 300, np.uint16), 1)


@pytest.mark.parametrize("coco_style", [False, True])
def test_results_with_utf8_bom_score_on_scenes(tmp_path, coco_style):
    """Windows tools write JSON with a UTF-8 BOM ('not valid JSON' before); results on whole
    scenes, as a list or as a COCO-style dict, are found to be on scenes, not tiles."""
    root = tmp_path / "AIR-SARShip-1.0"
    for i in ("SARShip-1.0-1", "SARShip-1.0-2"):
        _scene_tiff(root / "AIR-SARShip-1.0-data" / f"{i}.tiff")
        (root / "AIR-SARShip-1.0-xml").mkdir(parents=True, exist_ok=True)
        (root / "AIR-SARShip-1.0-xml" / f"{i}-label.xml").write_text(
            _voc([[5, 5, 20, 15], [30, 30, 50, 40]]))
    dets = [{"image_id": 1, "bbox": [5, 5, 15, 10], "score": 0.9},
            {"image_id": 2, "bbox": [30, 30, 20, 10], "score": 0.8}]
    pred = tmp_path / "pred.json"
    body = {"annotations": dets} if coco_style else dets
    pred.write_bytes(b"\xef\xbb\xbf" + json.dumps(body).encode())
    out = tmp_path / "out"
    rc, err = _cli("detect", "eval", "--dataset", "air-sarship-1.0", "--root", str(root),
                   "--split", "all", "--pred", str(pred), "--gallery", "0", "--out", str(out))
    assert rc == 0, err
    m = json.loads((out / "metrics.json").read_text())
    # 2 of 4 ships found, precision 1: VOC07 6/11, all-point 1/2, COCO 51/101
    assert m["level"] == "scene" and (m["all"]["n_images"], m["all"]["n_gt"]) == (2, 4)
    assert m["all"]["ap50"] == pytest.approx({"voc07_11pt": 6 / 11, "voc_all_point": 0.5,
                                              "coco_101pt": 51 / 101}, abs=1e-12)


# ----------------------------------------------------------------------------- scenes

def test_16bit_scene_nodata_reads_black_not_white(tmp_path):
    """A uint16 scene with nodata 65535 outside the swath: those pixels were stretched to 255
    (a white border a detector fires on); they read 0, the rest as before."""
    import rasterio

    from saropt.detect.datasets import AIRSARShip

    root = tmp_path / "scenes"
    root.mkdir()
    band = np.tile(np.arange(64, dtype=np.uint16) * 10 + 1000, (64, 1))
    band[:, :8] = 65535
    with rasterio.open(root / "s1.tif", "w", driver="GTiff", width=64, height=64, count=1,
                       dtype="uint16", nodata=65535) as dst:
        dst.write(band, 1)
    (root / "s1.xml").write_text(_voc([[20, 20, 30, 30]]))
    ds = AIRSARShip(root, "1.0", "all", tile=None, percentiles=(0, 100))
    img = ds.load_image(ds.records[0])
    assert (img[:, :8] == 0).all()
    # valid values 1080..1630 stretched onto 0..255: column 8 is 0, column 63 is 255
    assert img[0, 8] == 0 and img[0, 63] == 255
    assert img[0, 30] == round((1300 - 1080) * 255 / 550)


def test_scene_ids_are_the_same_in_every_split(tmp_path):
    """Scene ids were 1.. within the split: results predicted on `--split all` (scene 1 = the
    first scene of the root) scored silently as the test split's first scene."""
    from saropt.detect.datasets import AIRSARShip

    root = tmp_path / "AIR-SARShip-1.0"
    for i in (1, 2, 3):
        _scene_tiff(root / "AIR-SARShip-1.0-data" / f"SARShip-1.0-{i}.tiff")
        (root / "AIR-SARShip-1.0-xml").mkdir(parents=True, exist_ok=True)
        (root / "AIR-SARShip-1.0-xml" / f"SARShip-1.0-{i}-label.xml").write_text(
            _voc([[5, 5, 20, 15]]))
    (root / "test.txt").write_text("SARShip-1.0-2\nSARShip-1.0-3\n")
    test = AIRSARShip(root, "1.0", "test", tile=32, overlap=0.0)
    assert [s["id"] for s in test.scenes] == [2, 3]
    assert [r.image_id for r in test.records][:4] == [200000, 200001, 200002, 200003]
    pred = tmp_path / "pred.json"  # a detection on scene 1, which the test split lacks
    pred.write_text(json.dumps([{"image_id": 1, "bbox": [5, 5, 15, 10], "score": 0.9}]))
    rc, err = _cli("detect", "eval", "--dataset", "air-sarship-1.0", "--root", str(root),
                   "--split", "test", "--option", "tile=null", "--pred", str(pred),
                   "--gallery", "0", "--out", str(tmp_path / "out"))
    assert rc == 2 and "image ids the ground truth does not have: 1" in err


@pytest.mark.parametrize("field, value", [("area", -1), ("area", None), ("area", "80"),
                                          ("iscrowd", "0"), ("iscrowd", "false"),
                                          ("iscrowd", None), ("ignore", "0")])
def test_gt_fields_as_other_tools_write_them_count_the_same_ship(field, value):
    """A negative area made pycocotools drop the ship (COCO 0.0 against VOC's 0.5); an
    iscrowd of "0" (a string) made it an ignored box in all three definitions."""
    anns = [{**ANNS[0], field: value}, *ANNS[1:]]
    m = evaluate_coco_results(_gt(anns=anns), PREDS)["all"]
    assert m["n_gt"] == 3 and m["ap50"] == pytest.approx(EXPECTED, abs=1e-12)


def test_gt_crowd_flag_written_as_string_one_is_a_crowd():
    anns = [*ANNS, {"id": 4, "image_id": 1, "category_id": 1, "bbox": [24, 14, 12, 12],
                    "iscrowd": "1"}]
    m = evaluate_coco_results(_gt(anns=anns), PREDS)["all"]  # the FP now lies on the crowd
    assert (m["n_gt"], m["n_ignored"]) == (3, 1)
    assert m["ap50"] == pytest.approx({"voc07_11pt": 7 / 11, "voc_all_point": 2 / 3,
                                       "coco_101pt": 67 / 101}, abs=1e-12)


def test_gt_flag_that_is_no_flag_is_one_error():
    from saropt.errors import DataError

    with pytest.raises(DataError, match=r"annotation 0 \(id 1\): flag 'maybe' is not 0 or 1"):
        evaluate_coco_results(_gt(anns=[{**ANNS[0], "iscrowd": "maybe"}]), [])


def test_coco_reader_reads_string_crowd_flags(tmp_path):
    from saropt.detect.datasets import HRSID

    root = tmp_path / "HRSID_JPG"
    _jpg(root / "JPEGImages" / "a.jpg")
    _jpg(root / "JPEGImages" / "b.jpg")
    (root / "annotations").mkdir()
    anns = [{**ANNS[0], "iscrowd": "0"}, {**ANNS[1], "iscrowd": "1"}, ANNS[2]]
    (root / "annotations" / "test2017.json").write_text(json.dumps(_gt(anns=anns)))
    ds = HRSID(tmp_path, "test")
    assert [len(r.boxes) for r in ds.records] == [1, 1]
    assert [len(r.ignore_boxes) for r in ds.records] == [0, 1]


def test_gallery_without_an_image_folder_is_a_warning_not_silence(tmp_path):
    gt = tmp_path / "gt.json"
    gt.write_text(json.dumps(_gt()))
    pred = tmp_path / "pred.json"
    pred.write_text(json.dumps(PREDS))
    rc, err = _cli("detect", "eval", "--gt", str(gt), "--pred", str(pred), "--out",
                   str(tmp_path / "o"))
    assert rc == 0, err
    m = json.loads((tmp_path / "o" / "metrics.json").read_text())
    assert m["all"]["ap50"] == pytest.approx(EXPECTED, abs=1e-12)
    assert "gallery" not in m["files"] and len(m["warnings"]) == 1
    assert m["warnings"][0].startswith("gallery not drawn: no image folder beside")


@pytest.mark.parametrize("prefix", ["test/", "images/test/", ""])
def test_coco_file_names_with_a_folder_find_their_image(tmp_path, prefix):
    """SSDD coco_style files naming images `test/000001.jpg` pointed at images/test/test/."""
    from saropt.detect.datasets import SSDD

    root = tmp_path / "coco_style"
    _jpg(root / "images" / "test" / "000001.jpg", 40, 30)
    (root / "annotations").mkdir(parents=True)
    (root / "annotations" / "test.json").write_text(json.dumps(_gt(
        [{"id": 0, "file_name": f"{prefix}000001.jpg", "width": 40, "height": 30}],
        [{"id": 0, "image_id": 0, "category_id": 1, "bbox": [2, 2, 10, 8]}])))
    ds = SSDD(tmp_path, "test")
    assert ds.records[0].path == root / "images" / "test" / "000001.jpg"
    assert ds[0]["image"].shape == (1, 30, 40) and ds[0]["image_id"] == 1


def test_ground_truth_without_images_is_one_error_not_n_a(tmp_path):
    """An empty annotation file (or split) printed AP 'n/a' and exit 0."""
    from saropt.detect.datasets import HRSID
    from saropt.errors import DataError

    gt = tmp_path / "annotations" / "test2017.json"
    gt.parent.mkdir()
    gt.write_text(json.dumps(_gt([], [])))
    (tmp_path / "pred.json").write_text("[]")
    rc, err = _cli("detect", "eval", "--gt", str(gt), "--pred", str(tmp_path / "pred.json"),
                   "--gallery", "0", "--out", str(tmp_path / "o"))
    assert rc == 2 and err.strip() == (f"saropt: error: {gt}: lists no image, so there is "
                                       "nothing to score (an empty split or annotation file?)")
    with pytest.raises(DataError, match="test2017.json: lists no image"):
        HRSID(tmp_path, "test")


def test_predict_stops_before_work_when_release_images_are_missing(tmp_path):
    """A copy of HRSID with an image missing failed only when the prediction loop reached it."""
    from saropt.detect.datasets import HRSID
    from saropt.detect.predict import _check_images_exist
    from saropt.errors import SaroptError

    root = tmp_path / "HRSID_JPG"
    _jpg(root / "JPEGImages" / "a.jpg")
    (root / "annotations").mkdir(parents=True)
    (root / "annotations" / "test2017.json").write_text(json.dumps(_gt()))
    ds = HRSID(tmp_path, "test")
    with pytest.raises(SaroptError, match=r"1 image file\(s\) of the hrsid annotations are "
                       r"missing, e.g. .*JPEGImages/b.jpg"):
        _check_images_exist(ds)
    _jpg(root / "JPEGImages" / "b.jpg")
    _check_images_exist(ds)


@pytest.mark.parametrize("version, scenes", [("1.0", ["SARShip-1.0-1.tiff"]),
                                             ("2.0", ["1.tiff", "2.tiff"])])
def test_root_holding_both_airsarship_releases_reads_one(tmp_path, version, scenes):
    """`--root` the folder holding AIR-SARShip-1.0/ and -2.0/ read both releases' scenes as
    one dataset."""
    from saropt.detect.datasets import AIRSARShip

    for rel, ids, tail in [("1.0", ["SARShip-1.0-1"], "-label"), ("2.0", ["1", "2"], "")]:
        top = tmp_path / f"AIR-SARShip-{rel}"
        for i in ids:
            _scene_tiff(top / f"AIR-SARShip-{rel}-data" / f"{i}.tiff")
            (top / f"AIR-SARShip-{rel}-xml").mkdir(parents=True, exist_ok=True)
            (top / f"AIR-SARShip-{rel}-xml" / f"{i}{tail}.xml").write_text(
                _voc([[5, 5, 20, 15]]))
    ds = AIRSARShip(tmp_path, version, "all", tile=None)
    assert [s["path"].name for s in ds.scenes] == scenes


def test_ssdd_scene_images_with_their_xml_in_the_split_folder(tmp_path):
    """JPEGImages_test_{inshore,offshore}/ whose XML lie in Annotations_test/ only."""
    from saropt.detect.datasets import SSDD

    for num, scene in [(1, "inshore"), (9, "offshore")]:
        _jpg(tmp_path / f"JPEGImages_test_{scene}" / f"{num:06d}.jpg")
        (tmp_path / "Annotations_test").mkdir(exist_ok=True)
        (tmp_path / "Annotations_test" / f"{num:06d}.xml").write_text(_voc([[2, 2, 5 + num, 9]]))
    ds = SSDD(tmp_path, "test")
    assert [(r.image_id, r.meta["scene"], r.boxes.tolist()) for r in ds.records] == [
        (1, "inshore", [[2, 2, 6, 9]]), (9, "offshore", [[2, 2, 14, 9]])]


@pytest.mark.parametrize("nodata", [float("nan"), -9999.0, None])
def test_float_scene_with_nan_or_nodata_is_stretched_on_its_own_range(tmp_path, nodata):
    """A calibrated float32 scene (sigma0 0.01..0.5) with NaN outside the swath read all black
    (NaN percentiles); with nodata -9999 its range was forced to >= 1 (0..109 instead of
    0..255)."""
    import rasterio

    from saropt.detect.datasets import AIRSARShip

    root = tmp_path / "scenes"
    root.mkdir()
    values = np.linspace(0.01, 0.5, 64, dtype=np.float32)
    band = np.tile(values, (64, 1))
    band[:, :8] = np.nan if nodata is None else nodata
    with rasterio.open(root / "s.tif", "w", driver="GTiff", width=64, height=64, count=1,
                       dtype="float32", nodata=nodata) as dst:
        dst.write(band, 1)
    (root / "s.xml").write_text(_voc([[20, 20, 30, 30]]))
    ds = AIRSARShip(root, "1.0", "all", tile=None, percentiles=(0, 100))
    img = ds.load_image(ds.records[0])
    lo, hi = float(values[8]), float(values[63])
    assert ds._ranges[root / "s.tif"] == pytest.approx((lo, hi))
    assert (img[:, :8] == 0).all() and img[0, 8] == 0 and img[0, 63] == 255
    assert img[0, 30] == round((values[30] - lo) * 255 / (hi - lo))


def test_two_categories_of_one_name_are_both_averaged():
    """Categories 1 and 2 both named 'ship': the second overwrote the first's AP (1.0 reported
    where category 1 scores 0 and category 2 scores 1)."""
    cats = [{"id": 1, "name": "ship"}, {"id": 2, "name": "ship"}]
    anns = [ANNS[0], {**ANNS[1], "category_id": 2}]
    preds = [{**PREDS[0], "bbox": [30, 20, 5, 5]}, {**PREDS[2], "category_id": 2}]
    m = evaluate_coco_results(_gt(anns=anns, cats=cats), preds)["all"]
    assert sorted(m["per_category"]) == ["ship (id 1)", "ship (id 2)"]
    assert m["ap50"] == pytest.approx({"voc07_11pt": 0.5, "voc_all_point": 0.5,
                                       "coco_101pt": 0.5}, abs=1e-12)


@pytest.mark.parametrize("text, difficult", [("1", True), ("1.0", True), (" true ", True),
                                             ("0", False), ("0.0", False), ("", False)])
def test_voc_difficult_flags_as_tools_write_them(tmp_path, text, difficult):
    """<difficult>1.0</difficult> (converters writing floats) was read as not difficult."""
    from saropt.detect.datasets.voc import parse_voc_xml

    path = tmp_path / "a.xml"
    path.write_text(f"<annotation><object><name>ship</name><difficult>{text}</difficult>"
                    "<bndbox><xmin>1</xmin><ymin>1</ymin><xmax>5</xmax><ymax>5</ymax></bndbox>"
                    "</object></annotation>")
    assert parse_voc_xml(path).objects[0].difficult is difficult


def test_ssdd_names_without_unique_numbers_keep_their_id_in_every_split(tmp_path):
    """Names whose numbers repeat (inshore_1, offshore_1) were numbered 1.. within the split:
    the test split's first image had the id of the whole set's first image."""
    from saropt.detect.datasets import SSDD

    names = {"train": ["a_2", "inshore_1"], "test": ["offshore_1", "z_9"]}
    for split, stems in names.items():
        for stem in stems:
            _jpg(tmp_path / f"JPEGImages_{split}" / f"{stem}.jpg")
            (tmp_path / f"Annotations_{split}").mkdir(exist_ok=True)
            (tmp_path / f"Annotations_{split}" / f"{stem}.xml").write_text(_voc([[2, 2, 9, 9]]))
    ids = {r.file_name: r.image_id for r in SSDD(tmp_path, "all").records}
    assert ids == {"a_2.jpg": 1, "inshore_1.jpg": 2, "offshore_1.jpg": 3, "z_9.jpg": 4}
    assert {r.file_name: r.image_id for r in SSDD(tmp_path, "test").records} == {
        "offshore_1.jpg": 3, "z_9.jpg": 4}
