"""`saropt detect scene`: seams, georeference, radiometry, land masks, fusion, bad input, resume,
bounded memory, and a tiny real torchvision detector end to end (docs/scene.md)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import rasterio

from saropt.cli import main
from saropt.detect.scene.run import SceneOptions, run_scene

sys.path.insert(0, str(Path(__file__).parent))
from _scene_fixtures import (  # noqa: E402
    ORIGIN,
    PIXEL_M,
    UTM,
    BlobDetector,
    ship_boxes,
    write_scene,
)

W, H = 900, 700
OUTPUTS = ("detections.geojson", "detections.json", "detections.csv", "quicklook.png",
           "summary.json")


@pytest.fixture(scope="module")
def scene(tmp_path_factory) -> tuple[Path, np.ndarray]:
    d = tmp_path_factory.mktemp("scene")
    boxes = ship_boxes(W, H, 60, seed=1)
    return write_scene(d / "scene.tif", W, H, boxes), boxes


def _boxes(out: Path) -> list[tuple[int, ...]]:
    res = json.loads((out / "detections.json").read_text())
    return sorted(tuple(int(round(v)) for v in (r["bbox"][0], r["bbox"][1],
                                                 r["bbox"][0] + r["bbox"][2],
                                                 r["bbox"][1] + r["bbox"][3])) for r in res)


@pytest.mark.parametrize("tile,overlap,merge", [(128, 0.5, "nms"), (200, 0.4, "nms"),
                                                (256, 0.25, "wbf"), (1024, 0.25, "nms")])
def test_every_tiling_gives_the_true_ships_once(scene, tmp_path, tile, overlap, merge):
    path, boxes = scene
    s = run_scene(path, [BlobDetector()], tmp_path, SceneOptions(
        tile=tile, overlap=overlap, merge=merge, progress=False))
    assert _boxes(tmp_path) == sorted(tuple(b) for b in boxes.tolist())
    c = s["per_model"]["blobs"]
    if tile < W:  # ships were seen cut and twice: the seam rule and the merge removed them
        assert c["tile_detections"] > c["after_seam_rule"] > c["after_merge"] == len(boxes)


def test_without_the_seam_rule_half_boxes_survive(scene, tmp_path):
    path, boxes = scene
    run_scene(path, [BlobDetector()], tmp_path, SceneOptions(tile=128, overlap=0.5,
                                                             edge_margin=0.0, progress=False))
    got = _boxes(tmp_path)
    assert len(got) > len(boxes)  # halves of cut ships kept beside the whole ones


def _geojson_rings(out: Path) -> tuple[np.ndarray, np.ndarray]:
    gj = json.loads((out / "detections.geojson").read_text())
    assert gj["type"] == "FeatureCollection" and gj["features"]
    rings = np.array([f["geometry"]["coordinates"][0] for f in gj["features"]])
    pix = np.array([f["properties"]["pixel_box"] for f in gj["features"]])
    return rings, pix


def _signed_area(ring: np.ndarray) -> float:
    x, y = ring[:, 0], ring[:, 1]
    return float(np.sum(x[:-1] * y[1:] - x[1:] * y[:-1]))


@pytest.mark.parametrize("georef", ["affine", "gcps", "rpcs"])
def test_geojson_equals_rasterio_transform_of_pixel_boxes(tmp_path, georef):
    import rasterio
    from pyproj import Transformer
    from rasterio.transform import AffineTransformer, GCPTransformer, RPCTransformer

    boxes = ship_boxes(400, 300, 12, seed=2)
    path = write_scene(tmp_path / "s.tif", 400, 300, boxes, georef=georef)
    s = run_scene(path, [BlobDetector()], tmp_path / "out", SceneOptions(tile=128,
                                                                          progress=False))
    rings, pix = _geojson_rings(tmp_path / "out")
    assert len(rings) == len(boxes)
    with rasterio.open(path) as src:
        if georef == "affine":
            tr, crs = AffineTransformer(src.transform), src.crs
        elif georef == "gcps":
            tr, crs = GCPTransformer(src.gcps[0]), src.gcps[1]
        else:
            tr, crs = RPCTransformer(src.rpcs), None
    for ring, (x1, y1, x2, y2) in zip(rings, pix):
        assert _signed_area(ring) > 0  # RFC 7946: exterior rings counter-clockwise
        cols, rows = np.array([x1, x2, x2, x1]), np.array([y1, y1, y2, y2])
        xs, ys = tr.xy(rows, cols, offset="ul")
        if crs is not None and crs.to_epsg() != 4326:
            xs, ys = Transformer.from_crs(crs, "EPSG:4326", always_xy=True).transform(xs, ys)
        want = np.stack([xs, ys], 1)
        got = ring[:4]
        for w in want:  # every corner of the box, in whichever ring order
            assert np.abs(got - w).max(axis=1).min() < 1e-9
    assert s["pixel_spacing_m"] is not None
    if georef == "affine":
        assert s["pixel_spacing_m"] == pytest.approx([PIXEL_M, PIXEL_M], rel=0.01)
        gj = json.loads((tmp_path / "out" / "detections.geojson").read_text())
        p = gj["features"][0]["properties"]
        x1, y1, x2, y2 = p["pixel_box"]
        assert p["length_m"] == pytest.approx(max(x2 - x1, y2 - y1) * PIXEL_M, rel=0.01)
        html = (tmp_path / "out" / "map.html").read_text()
        assert "L.imageOverlay" in html and "cdn.jsdelivr" not in html
        assert s["map"].startswith("offline")


def test_scene_without_georeference_says_pixels(tmp_path):
    boxes = ship_boxes(300, 300, 5, seed=3)
    path = write_scene(tmp_path / "s.tif", 300, 300, boxes, georef="none")
    s = run_scene(path, [BlobDetector()], tmp_path / "out", SceneOptions(progress=False))
    gj = json.loads((tmp_path / "out" / "detections.geojson").read_text())
    assert "scene pixels" in gj["saropt"]["georeference"]
    assert gj["features"][0]["geometry"]["coordinates"][0][0] == \
        gj["features"][0]["properties"]["pixel_box"][:2]
    assert not (tmp_path / "out" / "map.html").exists() and "no georeference" in s["map"]


def test_radiometry_matches_the_training_mappings():
    from saropt.detect.scene.radiometry import Radiometry, apply_stretch, fit_stretch
    from saropt.synth.sar import amplitude_to_uint8

    rng = np.random.default_rng(0)
    amp = (rng.gamma(2.0, 80.0, (500, 400)) + (rng.random((500, 400)) < 0.01) * 5000)
    amp = amp.astype(np.uint16)
    amp[:50] = 3  # below the synthetic world's noise floor
    rad = Radiometry(kind="db", percentiles=(1.0, 99.5), dynamic_range_db=45.0,
                     noise_floor=8.0, min_value=1.0)
    lo, hi = fit_stretch(amp, rad)
    np.testing.assert_array_equal(apply_stretch(amp, lo, hi, rad), amplitude_to_uint8(amp))
    lin = Radiometry()  # the AIR-SARShip 0.5 / 99.5 stretch
    lo, hi = fit_stretch(amp, lin)
    assert (lo, hi) == pytest.approx(tuple(np.percentile(amp, (0.5, 99.5))))
    valid = np.ones(amp.shape, bool)
    valid[:, :10] = False
    assert (apply_stretch(amp, lo, hi, lin, valid)[:, :10] == 0).all()


def test_land_mask_vector_in_another_crs_tags_and_drops(tmp_path):
    boxes = ship_boxes(400, 300, 14, seed=4)
    path = write_scene(tmp_path / "s.tif", 400, 300, boxes)
    # land = the left 150 px of the scene, as a polygon in UTM 33N (legacy "crs" member)
    x0, y0 = ORIGIN
    poly = [[x0 - 100, y0 + 100], [x0 + 150 * PIXEL_M, y0 + 100],
            [x0 + 150 * PIXEL_M, y0 - 400 * PIXEL_M], [x0 - 100, y0 - 400 * PIXEL_M],
            [x0 - 100, y0 + 100]]
    mask = tmp_path / "land.geojson"
    mask.write_text(json.dumps({"type": "FeatureCollection",
                                "crs": {"type": "name", "properties": {"name": UTM}},
                                "features": [{"type": "Feature", "properties": {},
                                              "geometry": {"type": "Polygon",
                                                           "coordinates": [poly]}}]}))
    s = run_scene(path, [BlobDetector()], tmp_path / "a", SceneOptions(
        tile=128, land_mask=str(mask), inshore_m=200.0, progress=False))
    cx = (boxes[:, 0] + boxes[:, 2]) / 2
    rows = json.loads((tmp_path / "a" / "detections.geojson").read_text())["features"]
    for f in rows:
        x1, _, x2, _ = f["properties"]["pixel_box"]
        c = (x1 + x2) / 2
        want = "land" if c < 150 else "inshore" if c < 150 + 20 or x1 < 150 else "offshore"
        assert f["properties"]["location"] == want
    s2 = run_scene(path, [BlobDetector()], tmp_path / "b", SceneOptions(
        tile=128, land_mask=str(mask), drop_land=True, progress=False))
    assert s2["land_dropped"] == int((cx < 150).sum()) == s["locations"]["land"]
    assert s2["n_detections"] == len(boxes) - s2["land_dropped"]


def test_land_mask_raster_in_another_crs(tmp_path):
    """A lon/lat land raster at another resolution: the same tags as the scene-grid mask."""
    from pyproj import Transformer
    from rasterio.transform import from_bounds

    boxes = ship_boxes(400, 300, 14, seed=4)
    path = write_scene(tmp_path / "s.tif", 400, 300, boxes)
    to_ll = Transformer.from_crs(UTM, "EPSG:4326", always_xy=True)
    lon0, lat1 = to_ll.transform(ORIGIN[0] - 500, ORIGIN[1] + 500)
    lon1, lat0 = to_ll.transform(ORIGIN[0] + 4500, ORIGIN[1] - 3500)
    lon_cut, _ = to_ll.transform(ORIGIN[0] + 150 * PIXEL_M, ORIGIN[1] - 1500)
    n = 2000
    tr = from_bounds(lon0, lat0, lon1, lat1, n, n)
    cols = (np.arange(n) + 0.5) * tr.a + tr.c
    land = np.broadcast_to((cols < lon_cut).astype(np.uint8), (n, n))
    with rasterio.open(tmp_path / "land.tif", "w", driver="GTiff", width=n, height=n, count=1,
                       dtype="uint8", crs="EPSG:4326", transform=tr) as dst:
        dst.write(land[None])
    s = run_scene(path, [BlobDetector()], tmp_path / "o", SceneOptions(
        tile=128, land_mask=str(tmp_path / "land.tif"), drop_land=True, progress=False))
    cx = (boxes[:, 0] + boxes[:, 2]) / 2
    assert s["land_dropped"] == int((cx < 150).sum()) > 0


@pytest.mark.parametrize("dtype", ["int16", "float32"])
def test_other_sample_types_and_nodata(tmp_path, dtype):
    boxes = ship_boxes(300, 200, 8, seed=7)
    path = write_scene(tmp_path / "s.tif", 300, 200, boxes, dtype=dtype, nodata=-1)
    with rasterio.open(path, "r+") as dst:  # a nodata margin, as on real products
        a = dst.read(1)
        a[:, :20] = -1
        dst.write(a, 1)
    s = run_scene(path, [BlobDetector()], tmp_path / "o", SceneOptions(tile=128,
                                                                       progress=False))
    want = sorted(tuple(b) for b in boxes.tolist() if b[2] <= 20 or b[0] >= 20)
    got = _boxes(tmp_path / "o")
    assert [b for b in got if b[0] >= 20] == [b for b in want if b[0] >= 20]
    assert s["dtype"] == dtype and s["nodata"] == -1


def test_land_mask_raster_on_the_scene_grid(tmp_path):

    boxes = ship_boxes(300, 200, 8, seed=5)
    path = write_scene(tmp_path / "s.tif", 300, 200, boxes, georef="none")
    land = np.zeros((200, 300), np.uint8)
    land[:, 200:] = 1
    with rasterio.open(tmp_path / "m.tif", "w", driver="GTiff", width=300, height=200,
                       count=1, dtype="uint8") as dst:
        dst.write(land[None])
    s = run_scene(path, [BlobDetector()], tmp_path / "o", SceneOptions(
        land_mask=str(tmp_path / "m.tif"), drop_land=True, progress=False))
    cx = (boxes[:, 0] + boxes[:, 2]) / 2
    assert s["land_dropped"] == int((cx >= 200).sum()) > 0


def test_several_detectors_fuse_like_saropt_fuse(scene, tmp_path):
    from saropt.fuse.fusion import fuse_coco_results

    path, boxes = scene
    dets = [BlobDetector(name="a"), BlobDetector(thr=160, name="b")]
    s = run_scene(path, dets, tmp_path / "f", SceneOptions(tile=256, weights=[1.0, 2.0],
                                                           progress=False))
    singles = []
    for d in dets:
        run_scene(path, [d], tmp_path / d.name, SceneOptions(tile=256, progress=False))
        singles.append(json.loads((tmp_path / d.name / "detections.json").read_text()))
    ref = fuse_coco_results(singles, {1: (W, H)}, "wbf", [1.0, 2.0])
    got = json.loads((tmp_path / "f" / "detections.json").read_text())
    assert s["model"] == "wbf(a+b)" and len(got) == len(ref)
    key = sorted((round(r["bbox"][0], 1), round(r["bbox"][1], 1), round(r["score"], 3))
                 for r in ref)
    assert sorted((round(r["bbox"][0], 1), round(r["bbox"][1], 1), round(r["score"], 3))
                  for r in got) == key


# ------------------------------------------------------------------ bad input (CLI)


def _cli(args: list[str], capsys) -> tuple[int, str]:
    code = main(["detect", "scene", *args, "--quiet"])
    return code, capsys.readouterr().err


def _tiny_checkpoint(path: Path, scene_record: bool = True) -> Path:
    """A Faster R-CNN R18 checkpoint as `saropt detect train` writes it (untrained weights;
    64 px training chips at min_size 64, i.e. pixel scale 1)."""
    import torch

    from saropt.detect.module import DetectModule

    cfg = {"model": {"name": "faster_rcnn_r18_fpn", "in_chans": 1,
                     "options": {"min_size": 64, "max_size": 64, "fpn_channels": 32,
                                 "representation_size": 64, "rpn_pre_nms_top_n_test": 50,
                                 "rpn_post_nms_top_n_test": 20}},
           "data": {"dataset": "hrsid", "root": "unused"}}
    if scene_record:  # how the 8-bit chips were made from the SAR values
        cfg["data"]["radiometry"] = {"kind": "linear", "percentiles": [0.5, 99.5]}
    torch.manual_seed(0)
    module = DetectModule(cfg, train_image_size=(64, 64))
    hp = dict(module.hparams)
    if not scene_record:
        hp.pop("scene")
    torch.save({"hyper_parameters": hp, "state_dict": module.state_dict()}, path)
    return path


@pytest.mark.filterwarnings("ignore::rasterio.errors.NotGeoreferencedWarning")
def test_bad_input_is_one_line_before_any_output(scene, tmp_path, capsys):
    import rasterio

    path, _ = scene
    ckpt = _tiny_checkpoint(tmp_path / "tiny.ckpt")
    (tmp_path / "junk.tif").write_text("not a raster")
    with rasterio.open(tmp_path / "rgb.tif", "w", driver="GTiff", width=64, height=64, count=3,
                       dtype="uint8") as dst:
        dst.write(np.zeros((3, 64, 64), np.uint8))
    empty = write_scene(tmp_path / "empty.tif", 128, 128, np.zeros((0, 4), int), nodata=0,
                        dtype="uint8")
    with rasterio.open(empty, "r+") as dst:
        dst.write(np.zeros((1, 128, 128), np.uint8))
    notdet = tmp_path / "enc.ckpt"
    import torch

    torch.save({"state_dict": {}, "hyper_parameters": {"lr": 1}}, notdet)
    badcrs = tmp_path / "land.geojson"
    badcrs.write_text(json.dumps({"type": "Polygon", "coordinates": [[[0, 0], [1, 0], [1, 1],
                                                                       [0, 0]]],
                                  "crs": {"type": "name", "properties": {"name": "EPSG:999999"}}}))
    cases = [
        ([str(ckpt), "--scene", str(tmp_path / "junk.tif")], "GDAL cannot open"),
        ([str(ckpt), "--scene", str(tmp_path / "rgb.tif")], "--band"),
        ([str(ckpt), "--scene", str(empty)], "nodata"),
        ([str(notdet), "--scene", str(path)], "not a `saropt detect train` checkpoint"),
        ([str(ckpt), "--scene", str(path), "--land-mask", str(badcrs)], "EPSG:999999"),
        ([str(ckpt), "--scene", str(path), "--tile", "32"], "--tile 32 is below"),
        ([str(ckpt), "--scene", str(tmp_path / "nope.tif")], "does not exist"),
    ]
    for k, (args, needle) in enumerate(cases):
        out = tmp_path / f"out{k}"
        code, err = _cli([*args, "--out", str(out)], capsys)
        assert code == 2 and needle in err and err.count("\n") == 1, (args, err)
        assert not any((out / f).exists() for f in OUTPUTS), args


# ------------------------------------------------------------------ real detector, end to end


def test_checkpoint_end_to_end_at_trained_pixel_scale(tmp_path, capsys, one_torch_thread):
    w, h = 400, 300
    boxes = ship_boxes(w, h, 12, seed=9)
    path = write_scene(tmp_path / "scene.tif", w, h, boxes)
    ckpt = _tiny_checkpoint(tmp_path / "tiny.ckpt")
    from saropt.detect.scene.detectors import CheckpointDetector

    det = CheckpointDetector(ckpt, score_thresh=0.0)
    seen: list[tuple[int, ...]] = []
    det.model.backbone.register_forward_hook(lambda m, i, o: seen.append(tuple(i[0].shape)))
    s = run_scene(path, [det], tmp_path / "o", SceneOptions(tile=160, overlap=0.25,
                                                            batch_size=3, progress=False))
    # a 160 px tile of a detector trained at scale 1 (64 px chips, min_size 64) stays 160 px
    assert seen and all(sh[-2:] == (160, 160) for sh in seen), seen[:3]
    assert seen[0][0] == 3 and s["tiles"] == s["tiles_run"]
    assert det.notes == [] and s["detectors"][0]["scale"] == 1.0
    # the CLI, then `saropt detect eval` on its COCO results against scene ground truth
    out = tmp_path / "cli"
    code = main(["detect", "scene", str(ckpt), "--scene", str(path), "--out", str(out),
                 "--tile", "128", "--score-thresh", "0.0", "--quiet", "--json"])
    summary = json.loads(capsys.readouterr().out)
    assert code == 0 and all((out / f).is_file() for f in OUTPUTS)
    assert summary["tile"] == 128 and summary["n_detections"] == len(
        json.loads((out / "detections.json").read_text()))
    gt = {"images": [{"id": 1, "file_name": "scene.tif", "width": w, "height": h}],
          "annotations": [{"id": i + 1, "image_id": 1, "category_id": 1,
                           "bbox": [float(b[0]), float(b[1]), float(b[2] - b[0]),
                                    float(b[3] - b[1])], "area": float((b[2] - b[0]) *
                                                                       (b[3] - b[1])),
                           "iscrowd": 0} for i, b in enumerate(boxes)],
          "categories": [{"id": 1, "name": "ship"}]}
    (tmp_path / "gt.json").write_text(json.dumps(gt))
    assert main(["detect", "eval", "--gt", str(tmp_path / "gt.json"), "--pred",
                 str(out / "detections.json"), "--out", str(tmp_path / "eval"),
                 "--gallery", "0", "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["all"]["n_gt"] == len(boxes) and res["all"]["n_images"] == 1


def test_old_checkpoint_gets_the_default_radiometry_and_a_warning(tmp_path, capsys,
                                                                  one_torch_thread):
    from saropt.detect.scene.detectors import CheckpointDetector
    from saropt.detect.scene.radiometry import DEFAULT_RADIOMETRY

    ckpt = _tiny_checkpoint(tmp_path / "old.ckpt", scene_record=False)
    det = CheckpointDetector(ckpt)
    assert det.radiometry == DEFAULT_RADIOMETRY and det.scale == 1.0 and det.tile == 64
    assert any("8-bit" in n for n in det.notes)
    assert any("training image size" in n for n in det.notes)
    scene = write_scene(tmp_path / "s.tif", 128, 128, ship_boxes(128, 128, 2, seed=1))
    assert main(["detect", "scene", str(ckpt), "--scene", str(scene), "--out",
                 str(tmp_path / "o"), "--quiet", "--json"]) == 0
    out = capsys.readouterr()
    assert out.err.count("saropt: warning:") == 2
    assert len(json.loads(out.out)["detectors"][0]["notes"]) == 2


# ------------------------------------------------------------------ resume, memory

RUNNER = """
import sys, json
sys.path.insert(0, {tests!r})
from _scene_fixtures import BlobDetector
from saropt.detect.scene.run import SceneOptions, run_scene
s = run_scene({scene!r}, [BlobDetector(delay_s={delay})], {out!r},
              SceneOptions(tile={tile}, overlap=0.25, batch_size=2, block_tiles=4, merge="wbf",
                           quicklook_side=512, gdal_cache_mb=8, progress=False))
import resource
print(json.dumps({{"maxrss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
                  "n": s["n_detections"], "resumed": s["blocks_resumed"]}}))
"""


def _runner(scene: Path, out: Path, tile: int = 128, delay: float = 0.0) -> list[str]:
    code = RUNNER.format(tests=str(Path(__file__).parent), scene=str(scene), out=str(out),
                         tile=tile, delay=delay)
    return [sys.executable, "-c", code]


def _env() -> dict[str, str]:
    src = str(Path(__file__).resolve().parents[1] / "src")
    return {**os.environ, "PYTHONPATH": src, "OMP_NUM_THREADS": "1"}


def test_resume_after_kill_gives_the_same_files(scene, tmp_path):
    path, _ = scene
    ref = tmp_path / "ref"
    run_scene(path, [BlobDetector()], ref, SceneOptions(
        tile=128, overlap=0.25, batch_size=2, block_tiles=4, merge="wbf", quicklook_side=512,
        gdal_cache_mb=8, progress=False))
    out = tmp_path / "killed"
    proc = subprocess.Popen(_runner(path, out, delay=0.05), env=_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            start_new_session=True)
    deadline = time.time() + 60
    while time.time() < deadline and len(list((out / "tiles").glob("block_*.json"))) < 3:
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    n_done = len(list((out / "tiles").glob("block_*.json")))
    assert 3 <= n_done < 16 and not (out / "detections.json").exists()
    res = subprocess.run(_runner(path, out), env=_env(), capture_output=True, text=True,
                         check=True)
    assert json.loads(res.stdout.splitlines()[-1])["resumed"] >= n_done
    for f in ("detections.json", "detections.geojson", "detections.csv", "quicklook.png"):
        assert (out / f).read_bytes() == (ref / f).read_bytes(), f


def test_peak_memory_flat_when_the_scene_grows_4x(tmp_path):
    rss = {}
    for side in (1200, 2400):
        boxes = ship_boxes(side, side, 20, seed=6)
        p = write_scene(tmp_path / f"s{side}.tif", side, side, boxes, strip=256)
        res = subprocess.run(_runner(p, tmp_path / f"o{side}", tile=256), env=_env(),
                             capture_output=True, text=True, check=True)
        rss[side] = json.loads(res.stdout.splitlines()[-1])["maxrss_kb"] / 1024
    # 4x the pixels (1.4 MP -> 5.8 MP: +8.6 MB as uint16, +17 MB as float32 if held) while
    # GDAL's block cache is capped at 8 MB: peak memory stays flat
    assert rss[2400] - rss[1200] < 6, rss


# ------------------------------------------------------------------ training records, scoring


def test_synthetic_world_radiometry_reproduces_its_8bit_image(synth_pair):
    from saropt.detect.scene.radiometry import apply_stretch, fit_stretch, synth_radiometry

    rad = synth_radiometry()
    lo, hi = fit_stretch(synth_pair.sar_amp, rad)
    np.testing.assert_array_equal(apply_stretch(synth_pair.sar_amp, lo, hi, rad),
                                  synth_pair.sar8)


def test_training_records_radiometry_and_pixel_scale(tmp_path):
    import torch

    from saropt.detect.module import DataConfig
    from saropt.detect.scene.radiometry import Radiometry, training_radiometry

    hp = torch.load(_tiny_checkpoint(tmp_path / "t.ckpt"), weights_only=False)[
        "hyper_parameters"]
    assert hp["scene"]["train_image_size"] == [64, 64] and hp["scene"]["pixel_scale"] == 1.0
    assert hp["scene"]["radiometry"]["kind"] == "linear"
    air = DataConfig(dataset="air-sarship-1.0", root="x", options={"percentiles": [1, 99]})
    assert training_radiometry(air) == Radiometry(percentiles=(1.0, 99.0))
    assert training_radiometry(DataConfig(dataset="hrsid", root="x")) is None


def test_detect_eval_scores_scene_results_against_airsarship_scenes(tmp_path, capsys):
    """AIR-SARShip-style scene + VOC XML: the blob detector's scene results score AP 1.0 at
    scene level through the reader (`saropt detect eval --dataset air-sarship-1.0`)."""
    from saropt.synth.ships import _voc_xml

    root = tmp_path / "air"
    (root / "Annotations").mkdir(parents=True)
    boxes = ship_boxes(600, 600, 15, seed=8)
    write_scene(root / "scene1.tiff", 600, 600, boxes, georef="none")
    (root / "Annotations" / "scene1.xml").write_text(_voc_xml("scene1.tiff", 600,
                                                              boxes.tolist()))
    run_scene(root / "scene1.tiff", [BlobDetector()], tmp_path / "out",
              SceneOptions(tile=256, progress=False))
    assert main(["detect", "eval", "--dataset", "air-sarship-1.0", "--root", str(root),
                 "--split", "all", "--pred", str(tmp_path / "out" / "detections.json"),
                 "--out", str(tmp_path / "eval"), "--gallery", "1", "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["level"] == "scene" and res["all"]["n_gt"] == len(boxes)
    assert res["all"]["ap50"]["voc_all_point"] == pytest.approx(1.0)


def test_rerun_with_other_tiles_into_the_same_folder_is_an_error(scene, tmp_path):
    from saropt.errors import SaroptError

    path, _ = scene
    run_scene(path, [BlobDetector()], tmp_path, SceneOptions(tile=256, progress=False))
    again = run_scene(path, [BlobDetector()], tmp_path, SceneOptions(tile=256, progress=False))
    assert again["blocks_resumed"] == again["blocks"]
    with pytest.raises(SaroptError, match="different run.*tile"):
        run_scene(path, [BlobDetector()], tmp_path, SceneOptions(tile=200, progress=False))
