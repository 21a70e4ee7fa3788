"""Detection readers on files in the real layouts (generated), and on the shared real samples."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from saropt.detect.ap import evaluate_coco_results, gt_as_results
from saropt.detect.datasets import (
    DOTA,
    HRSID,
    SSDD,
    AIRSARShip,
    CocoShips,
    build_dataset,
    collate_detection,
    paper_input_size,
)
from saropt.detect.datasets.ssdd import ssdd_is_test
from saropt.detect.datasets.transforms import Resize
from saropt.errors import DataError, SaroptError

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
needs_hrsid = pytest.mark.skipif(not (SHARED / "hrsid-sample").is_dir(),
                                 reason=f"real HRSID sample not found at {SHARED}/hrsid-sample")
needs_dota = pytest.mark.skipif(not (SHARED / "dota-sample").is_dir(),
                                reason=f"real DOTA sample not found at {SHARED}/dota-sample")


def _gray_rgb(path: Path, w: int = 64, h: int = 48, seed: int = 0) -> np.ndarray:
    """A grayscale image stored as 3 equal channels (as HRSID/SSDD JPEGs are), saved as PNG."""
    g = np.random.default_rng(seed).integers(0, 256, (h, w), dtype=np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.stack([g] * 3, -1)).save(path)
    return g


def _voc_xml(path: Path, objects: list[tuple[list[float], int]], w: int = 64, h: int = 48,
             points: bool = False) -> None:
    objs = []
    for (x1, y1, x2, y2), difficult in objects:
        if points:
            pts = "".join(f"<point>{x},{y}</point>" for x, y in
                          [(x1, y1), (x2, y1), (x2, y2), (x1, y2), (x1, y1)])
            objs.append(f"<object><coordinate>pixel</coordinate><type>rectangle</type>"
                        f"<possibleresult><name>ship</name></possibleresult>"
                        f"<points>{pts}</points></object>")
        else:
            objs.append(f"<object><name>ship</name><difficult>{difficult}</difficult><bndbox>"
                        f"<xmin>{x1}</xmin><ymin>{y1}</ymin><xmax>{x2}</xmax><ymax>{y2}</ymax>"
                        f"</bndbox></object>")
    wrap = "<objects>{}</objects>" if points else "{}"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"<annotation><filename>{path.stem}.jpg</filename><size><width>{w}</width>"
                    f"<height>{h}</height><depth>3</depth></size>{wrap.format(''.join(objs))}"
                    "</annotation>")


# ----------------------------------------------------------------------------- COCO / HRSID

def _coco_root(tmp_path: Path) -> Path:
    root = tmp_path / "hrsid"
    g = _gray_rgb(root / "JPEGImages" / "a.png")
    _gray_rgb(root / "JPEGImages" / "b.png", seed=1)
    data = {"images": [{"id": 7, "file_name": "a.png", "width": 64, "height": 48,
                        "scene": "inshore"},
                       {"id": 9, "file_name": "b.png", "width": 64, "height": 48,
                        "scene": "offshore"}],
            "annotations": [{"id": 1, "image_id": 7, "category_id": 1, "bbox": [5, 6, 10, 4],
                             "area": 40, "iscrowd": 0},
                            {"id": 2, "image_id": 7, "category_id": 1, "bbox": [30, 30, 8, 8],
                             "area": 64, "iscrowd": 1},
                            {"id": 3, "image_id": 9, "category_id": 1, "bbox": [1, 1, 0, 5],
                             "area": 0, "iscrowd": 0}],
            "categories": [{"id": 1, "name": "ship"}]}
    (root / "annotations").mkdir()
    (root / "annotations" / "test2017.json").write_text(json.dumps(data))
    np.save(root / "g.npy", g)
    return root


def test_hrsid_layout_sample_contract(tmp_path):
    root = _coco_root(tmp_path)
    ds = HRSID(root, "test")
    s = ds[0]
    assert s["image"].shape == (1, 48, 64) and s["image"].dtype == torch.float32
    # grayscale stored as 3 equal channels collapses exactly to one channel
    assert torch.equal(s["image"][0], torch.from_numpy(np.load(root / "g.npy")).float() / 255)
    assert s["boxes"].tolist() == [[5, 6, 15, 10]] and s["labels"].dtype == torch.int64
    assert s["image_id"] == 7 and s["meta"]["scene"] == "inshore"
    assert s["meta"]["ignore_boxes"].tolist() == [[30, 30, 38, 38]]
    assert len(ds[1]["boxes"]) == 0  # zero-width box dropped
    coco = ds.to_coco()
    assert [a["iscrowd"] for a in coco["annotations"]] == [0, 1]
    assert coco["images"][0]["scene"] == "inshore"
    with pytest.raises(DataError, match="train2017.json"):
        HRSID(root, "train")


def test_hrsid_scene_from_inshore_offshore_files(tmp_path):
    root = _coco_root(tmp_path)
    data = json.loads((root / "annotations" / "test2017.json").read_text())
    for img in data["images"]:
        img.pop("scene")
    (root / "annotations" / "test2017.json").write_text(json.dumps(data))
    (root / "annotations" / "inshore_test.json").write_text(json.dumps(
        {"images": data["images"][:1], "annotations": []}))
    assert [r.meta["scene"] for r in HRSID(root, "test").records] == ["inshore", None]


def test_coco_reader_rgb_and_bad_file(tmp_path):
    root = _coco_root(tmp_path)
    ds = CocoShips(root, "annotations/test2017.json", "JPEGImages", in_chans=3)
    assert ds[0]["image"].shape == (3, 48, 64)
    (root / "bad.json").write_text('{"images": []}')
    with pytest.raises(DataError, match="bad.json"):
        CocoShips(root, "bad.json")


@needs_hrsid
def test_hrsid_real_sample():
    ds = HRSID(SHARED / "hrsid-sample", "test")
    assert len(ds) == 12 and sum(len(r.boxes) for r in ds.records) == 21
    s = ds[0]
    assert s["image"].shape == (1, 800, 800) and 0 <= s["image"].min() < s["image"].max() <= 1
    images, targets = collate_detection([ds[0], ds[1]])
    assert len(images) == 2 and targets[1]["boxes"].shape[1] == 4
    r = evaluate_coco_results(ds.to_coco(), gt_as_results(ds.coco_gt))["all"]
    assert r["ap50"]["coco_101pt"] == 1.0


# ----------------------------------------------------------------------------- SSDD

def _ssdd_root(tmp_path: Path, n: int = 20) -> Path:
    root = tmp_path / "ssdd"
    for i in range(1, n + 1):
        _gray_rgb(root / "JPEGImages" / f"{i:06d}.jpg".replace(".jpg", ".png"), seed=i)
        _voc_xml(root / "Annotations" / f"{i:06d}.xml", [([2, 3, 12, 9], 0), ([20, 20, 30, 28],
                                                                              int(i == 1))])
    return root


def test_ssdd_official_last_digit_split(tmp_path):
    root = _ssdd_root(tmp_path)
    test, train = SSDD(root, "test"), SSDD(root, "train")
    assert [r.image_id for r in test.records] == [1, 9, 11, 19]
    assert len(train) == 16 and len(SSDD(root, "all")) == 20
    # 1160 SSDD images numbered 1..1160 -> 232 test / 928 train, as in paper 003
    assert sum(ssdd_is_test(f"{i:06d}") for i in range(1, 1161)) == 232
    s = test[0]
    assert s["boxes"].tolist() == [[2, 3, 12, 9]]  # the difficult ship is an ignore box
    assert s["meta"]["ignore_boxes"].tolist() == [[20, 20, 30, 28]]
    assert len(SSDD(root, "test", include_difficult=True)[0]["boxes"]) == 2


def test_ssdd_imagesets_and_inshore_list(tmp_path):
    root = _ssdd_root(tmp_path, 6)
    (root / "ImageSets" / "Main").mkdir(parents=True)
    (root / "ImageSets" / "Main" / "test.txt").write_text("000002\n000003\n")
    (root / "inshore.txt").write_text("000003\n")
    ds = SSDD(root, "test", inshore_list=root / "inshore.txt")
    assert [(r.image_id, r.meta["scene"]) for r in ds.records] == [(2, "offshore"),
                                                                   (3, "inshore")]
    assert ds.to_coco()["images"][1]["scene"] == "inshore"


def test_ssdd_official_release_folders(tmp_path):
    root = tmp_path / "ssdd"
    for split, nums in (("train", [2, 3]), ("test", [1, 9])):
        for i in nums:
            _gray_rgb(root / f"JPEGImages_{split}" / f"{i:06d}.png")
            _voc_xml(root / f"Annotations_{split}" / f"{i:06d}.xml", [([1, 1, 5, 5], 0)])
    _gray_rgb(root / "JPEGImages_test_inshore" / "000009.png")
    _gray_rgb(root / "JPEGImages_test_offshore" / "000001.png")
    ds = SSDD(root, "test")
    assert {r.image_id: r.meta["scene"] for r in ds.records} == {1: "offshore", 9: "inshore"}
    assert len(SSDD(root, "train")) == 2


def test_ssdd_errors_name_the_file(tmp_path):
    root = _ssdd_root(tmp_path, 2)
    (root / "Annotations" / "000001.xml").write_text("<annotation><object>")
    with pytest.raises(DataError, match="000001.xml"):
        SSDD(root, "test")
    with pytest.raises(DataError, match="SSDD root"):
        SSDD(tmp_path / "nothing", "test")


# ----------------------------------------------------------------------------- AIR-SARShip

def _air_root(tmp_path: Path, n: int = 3, size: int = 600, points: bool = False) -> Path:
    import rasterio

    root = tmp_path / "air"
    (root / "images").mkdir(parents=True)
    rng = np.random.default_rng(0)
    for k in range(n):
        arr = rng.integers(0, 800, (size, size)).astype(np.uint16)
        arr[100:120, 200:260] = 60000  # a bright ship
        with rasterio.open(root / "images" / f"scene{k}.tiff", "w", driver="GTiff",
                           width=size, height=size, count=1, dtype="uint16") as dst:
            dst.write(arr, 1)
        _voc_xml(root / "Annotations" / f"scene{k}.xml",
                 [([200, 100, 260, 120], 0), ([250, 500, 300, 530], 0)], size, size, points)
    return root


@pytest.mark.filterwarnings("ignore::rasterio.errors.NotGeoreferencedWarning")
@pytest.mark.parametrize("points", [False, True])
def test_airsarship_tiles_16bit(tmp_path, points):
    root = _air_root(tmp_path, points=points)
    ds = AIRSARShip(root, "2.0", "all", tile=512, overlap=0.5)
    assert len(ds.scenes) == 3 and len(ds) == 3 * 4  # 600 px: tiles at 0 and 88 per axis
    s = ds[0]
    assert s["image"].shape == (1, 512, 512) and s["image"].max() == 1.0
    assert s["boxes"].tolist() == [[200, 100, 260, 120]]  # (250,500,300,530) is 24% visible
    # the bright ship saturates, the sea stays within the stretch
    sea = s["image"][0, :50, :50]
    assert s["image"][0, 100:120, 200:260].min() == 1.0 and 0.4 < sea.mean() < 0.6
    t = ds[1]  # window (88, 0, 600, 512)
    assert t["meta"]["window"] == (88, 0, 600, 512) and t["meta"]["scene_file"] == "scene0.tiff"
    assert t["boxes"].tolist() == [[112, 100, 172, 120]]
    assert len(ds.scene_coco()["annotations"]) == 6
    assert set(ds.tile_to_scene().values()) >= {(1, (0, 0, 512, 512))}


@pytest.mark.filterwarnings("ignore::rasterio.errors.NotGeoreferencedWarning")
def test_airsarship_split_files_and_seeded_split(tmp_path):
    root = _air_root(tmp_path, n=6, size=300)
    train, test = AIRSARShip(root, "1.0", "train"), AIRSARShip(root, "1.0", "test")
    names = lambda d: {s["path"].stem for s in d.scenes}  # noqa: E731
    assert len(train.scenes) == 4 and len(test.scenes) == 2  # round(6 * 21 / 31) = 4
    assert not names(train) & names(test)
    (root / "test.txt").write_text("scene5\n")
    assert names(AIRSARShip(root, "1.0", "test")) == {"scene5"}
    (root / "Annotations" / "scene0.xml").unlink()
    with pytest.raises(DataError, match="scene0"):
        AIRSARShip(root, "1.0", "all")


# ----------------------------------------------------------------------------- DOTA

def test_dota_layout(tmp_path):
    root = tmp_path / "dota"
    (root / "images").mkdir(parents=True)
    Image.fromarray(np.zeros((100, 120, 3), np.uint8)).save(root / "images" / "P1.png")
    (root / "labelTxt").mkdir()
    (root / "labelTxt" / "P1.txt").write_text(
        "imagesource:GoogleEarth\ngsd:0.5\n"
        "10 10 30 12 28 25 8 22 ship 0\n"
        "110 90 130 90 130 105 110 105 ship 0\n"  # sticks out: clipped to the image
        "50 50 60 50 60 60 50 60 ship 1\n"
        "0 0 40 0 40 40 0 40 harbor 0\n")
    ds = DOTA(root)
    s = ds[0]
    assert s["image"].shape == (3, 100, 120)
    assert s["boxes"].tolist() == [[8, 10, 30, 25], [110, 90, 120, 100]]
    assert s["meta"]["ignore_boxes"].tolist() == [[50, 50, 60, 60]]
    coco = DOTA(root, classes=("harbor", "ship")).to_coco()
    assert [(a["category_id"], a["iscrowd"]) for a in coco["annotations"]] == [
        (2, 0), (2, 0), (1, 0), (2, 1)]  # the difficult ship stays a ship, ignored
    both = DOTA(root, classes=("ship", "harbor"), include_difficult=True)
    assert both[0]["labels"].tolist() == [1, 1, 1, 2]
    assert both[0]["meta"]["difficult"] == [False, False, True, False]
    (root / "labelTxt" / "P1.txt").write_text("10 10 ship\n")
    with pytest.raises(DataError, match="P1.txt:1"):
        DOTA(root)


@needs_dota
def test_dota_real_sample():
    ds = DOTA(SHARED / "dota-sample")
    s = ds[0]
    assert s["image"].shape == (3, 1182, 1111)
    assert len(s["boxes"]) == 525 and len(s["meta"]["ignore_boxes"]) == 6  # 531 ships, 6 hard
    assert (s["boxes"][:, 2] <= 1111).all() and (s["boxes"][:, 3] <= 1182).all()
    tiled = DOTA(SHARED / "dota-sample", tile=512, overlap=0.2)
    assert len(tiled) == 9 and tiled[4]["image"].shape == (3, 512, 512)


# ----------------------------------------------------------------------------- shared bits

def test_paper_input_sizes_and_resize():
    assert paper_input_size("SSDD", "faster_rcnn") == (1000, 600, True)
    assert paper_input_size("hrsid", "faster_rcnn") is None
    assert paper_input_size("AIR-SARShip-1.0", "yolov3") == (416, 416, False)
    with pytest.raises(SaroptError, match="no paper input size"):
        paper_input_size("mnist", "yolov3")
    sample = {"image": torch.rand(1, 350, 500), "boxes": torch.tensor([[10.0, 20, 110, 70]]),
              "meta": {"ignore_boxes": torch.zeros(0, 4)}}
    out = Resize(paper_input_size("ssdd", "faster_rcnn"))(sample)
    assert out["image"].shape == (1, 600, 857)
    assert out["boxes"][0].tolist() == pytest.approx([17.14, 34.29, 188.54, 120.0], abs=0.01)
    assert Resize(paper_input_size("ssdd", "yolov3"))(sample)["image"].shape == (1, 416, 416)


def test_build_dataset_and_plot(tmp_path):
    root = _ssdd_root(tmp_path, 2)
    ds = build_dataset("ssdd", root, "test")
    fig = ds.plot(ds[0], {"boxes": torch.tensor([[2.0, 3, 12, 9], [40, 5, 50, 15]]),
                          "scores": torch.tensor([0.9, 0.8])})
    assert len(fig.axes[0].patches) >= 4
    with pytest.raises(DataError, match="unknown dataset"):
        build_dataset("voc2012", root)
    with pytest.raises(DataError, match="tile_size"):
        build_dataset("ssdd", root, "test", tile_size=3)
