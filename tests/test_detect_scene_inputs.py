"""`saropt detect scene` on awkward real-world inputs: nodata values the band cannot hold, CRSs
without a way to WGS84, blank scenes, extreme overlaps, scenes across the antimeridian and
south-up rasters (docs/scene.md)."""

from __future__ import annotations

import base64
import io
import json
import re
import sys
from pathlib import Path

import numpy as np
import pytest
import rasterio
from rasterio.crs import CRS
from rasterio.transform import Affine

from saropt.cli import main
from saropt.detect.scene.run import SceneOptions, run_scene
from saropt.errors import SaroptError

sys.path.insert(0, str(Path(__file__).parent))
from _scene_fixtures import SHIP_DN, BlobDetector  # noqa: E402

OUTPUTS = ("detections.geojson", "detections.json", "detections.csv", "quicklook.png",
           "summary.json", "tiles")


def _write(path: Path, boxes: list[list[int]], crs=None, transform=None, nodata=None,
           shape: tuple[int, int] = (200, 300), fill: float | None = None) -> Path:
    """A uint16 speckle scene (or ``fill`` everywhere) with ships at ``boxes`` (xyxy)."""
    h, w = shape
    rng = np.random.default_rng(0)
    a = (np.full((h, w), fill, np.float32) if fill is not None else
         rng.gamma(2.0, 60.0, (h, w)).astype(np.float32))
    for x1, y1, x2, y2 in boxes:
        a[y1:y2, x1:x2] = SHIP_DN
    prof = {"driver": "GTiff", "width": w, "height": h, "count": 1, "dtype": "uint16"}
    if crs is not None:
        prof["crs"] = crs
    if transform is not None:
        prof["transform"] = transform
    if nodata is not None:
        prof["nodata"] = nodata
    with rasterio.open(path, "w", **prof) as dst:
        dst.write(a.astype(np.uint16)[None])
    return path


def _run(path: Path, out: Path, **kw) -> dict:
    return run_scene(path, [BlobDetector(tile=128)], out, SceneOptions(progress=False, **kw))


UTM_NORTH_UP = Affine(10, 0, 500000, 0, -10, 4000000)


@pytest.mark.parametrize("nodata", [-1.0, 0.5, 70000.0])
def test_nodata_the_band_cannot_hold_is_one_line_before_output(tmp_path, capsys, nodata):
    """--nodata -1 on uint16 was an OverflowError traceback; 0.5 silently became 0."""
    from test_detect_scene import _tiny_checkpoint

    scene = _write(tmp_path / "s.tif", [[50, 60, 80, 66]], "EPSG:32633", UTM_NORTH_UP)
    ckpt = _tiny_checkpoint(tmp_path / "t.ckpt")
    out = tmp_path / "o"
    code = main(["detect", "scene", str(ckpt), "--scene", str(scene), "--out", str(out),
                 "--nodata", f"{nodata:g}", "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "is not a uint16 value" in err, err
    assert "Traceback" not in err and "unexpected" not in err
    assert not out.exists()


def test_crs_without_a_way_to_wgs84_is_an_error_before_the_tiles(tmp_path):
    """A local (engineering) CRS: was a ProjError after every tile had run."""
    crs = CRS.from_wkt('LOCAL_CS["site grid",UNIT["metre",1],AXIS["Easting",EAST],'
                       'AXIS["Northing",NORTH]]')
    scene = _write(tmp_path / "s.tif", [[50, 60, 80, 66]], crs, Affine(10, 0, 0, 0, -10, 0))
    with pytest.raises(SaroptError, match="cannot be transformed to WGS84.*-unsetsrs"):
        _run(scene, tmp_path / "o")
    assert not (tmp_path / "o").exists()


def test_blank_scene_is_an_error_not_an_empty_result(tmp_path):
    """Every pixel 0 while the file says nodata 65535 (as the sample Sentinel-1 GRD in
    shared/cases): was a silent run over every tile with no detections."""
    scene = _write(tmp_path / "s.tif", [], nodata=65535, fill=0.0)
    with pytest.raises(SaroptError, match="every valid pixel of band 1 is 0.*--nodata 0"):
        _run(scene, tmp_path / "o")
    assert not (tmp_path / "o").exists()
    with pytest.raises(SaroptError, match="every pixel of band 1 is nodata"):
        _run(scene, tmp_path / "o", nodata=0)


def test_overlap_near_one_and_spacing_with_georeference_are_errors(tmp_path):
    scene = _write(tmp_path / "s.tif", [[50, 60, 80, 66]], "EPSG:32633", UTM_NORTH_UP)
    # 0.99 at tile 128: stride 1 px, 16,000+ tiles for a 300 x 200 scene
    with pytest.raises(SaroptError, match="about 16384 tiles.*--overlap 0.75 or less"):
        _run(scene, tmp_path / "a", overlap=0.99)
    s = _run(scene, tmp_path / "b", overlap=0.75)  # the limit itself runs
    assert s["stride"] == 32 and s["n_detections"] == 1
    with pytest.raises(SaroptError, match="--pixel-spacing is for scenes without"):
        _run(scene, tmp_path / "c", pixel_spacing=3.0)
    assert not any((tmp_path / d).exists() for d in ("a", "c"))


def test_rfc7946_polygon_cuts_rings_at_the_antimeridian():
    from shapely.geometry import shape

    from saropt.detect.scene.outputs import rfc7946_polygon

    square = np.array([[179.9, 1.0], [179.9, 0.0], [180.1, 0.0], [180.1, 1.0], [179.9, 1.0]])
    g = rfc7946_polygon(square)
    assert g["type"] == "MultiPolygon" and len(g["coordinates"]) == 2
    parts = [shape({"type": "Polygon", "coordinates": c}) for c in g["coordinates"]]
    assert all(p.is_valid and p.exterior.is_ccw for p in parts)
    np.testing.assert_allclose(sorted(p.bounds for p in parts),
                               [(-180.0, 0.0, -179.9, 1.0), (179.9, 0.0, 180.0, 1.0)])
    # a ring wholly beyond 180 comes back whole; the same ring west of it is untouched
    g = rfc7946_polygon(square + [0.5, 0])
    assert g["type"] == "Polygon"
    assert np.array(g["coordinates"][0])[:, 0].min() == pytest.approx(-179.6)
    assert rfc7946_polygon(square - [1.0, 0])["coordinates"][0][0] == [178.9, 1.0]


def test_scene_across_the_antimeridian_gives_valid_rfc7946(tmp_path):
    """An EPSG:4326 scene from 179.99 E to 180.02 (lon > 180 in its transform): longitudes were
    written as 180.005; a ship across 180 must be a MultiPolygon cut at it."""
    from shapely.geometry import shape

    tr = Affine(1e-4, 0, 179.99, 0, -1e-4, 10.0)  # column 100 is lon 180
    boxes = [[20, 30, 50, 36], [95, 100, 101, 130], [150, 60, 180, 66]]
    scene = _write(tmp_path / "s.tif", boxes, "EPSG:4326", tr)
    s = _run(scene, tmp_path / "o")
    gj = json.loads((tmp_path / "o" / "detections.geojson").read_text())
    assert s["n_detections"] == 3 and len(gj["features"]) == 3
    by_x = {f["properties"]["pixel_box"][0]: f for f in gj["features"]}
    for f in gj["features"]:
        g = shape(f["geometry"])
        polys = getattr(g, "geoms", [g])
        assert g.is_valid and all(p.exterior.is_ccw for p in polys)
        lon = np.concatenate([np.asarray(p.exterior.coords)[:, 0] for p in polys])
        assert lon.min() >= -180 and lon.max() <= 180
        assert -180 <= f["properties"]["lon"] < 180
    west, across, east = by_x[20.0], by_x[95.0], by_x[150.0]
    assert west["geometry"]["type"] == east["geometry"]["type"] == "Polygon"
    assert np.array(east["geometry"]["coordinates"][0])[:, 0].min() == pytest.approx(-179.995)
    assert across["geometry"]["type"] == "MultiPolygon"
    parts = sorted(shape({"type": "Polygon", "coordinates": c}).bounds
                   for c in across["geometry"]["coordinates"])
    np.testing.assert_allclose(parts, [(-180.0, 9.987, -179.9999, 9.99),
                                       (179.9995, 9.987, 180.0, 9.99)], atol=1e-9)
    assert across["properties"]["width_m"] == pytest.approx(6 * 1e-4 * 111320 *
                                                            np.cos(np.radians(9.99)), rel=0.01)
    html = (tmp_path / "o" / "map.html").read_text()  # continuous lon bounds for Leaflet
    b = json.loads(re.search(r'L\.imageOverlay\(\s*"[^"]*",\s*(\[\[.*?\]\])', html,
                             re.S).group(1))
    assert b[1][1] - b[0][1] == pytest.approx(0.03, abs=1e-6)


def _overlay(html: str) -> np.ndarray:
    from PIL import Image

    data = html.split("data:image/png;base64,")[1].split('"')[0]
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(data))).convert("RGB"))


@pytest.mark.parametrize("transform,flip", [
    (UTM_NORTH_UP, None), (Affine(10, 0, 500000, 0, 10, 4000000), 0),  # south-up
    (Affine(-10, 0, 500000, 0, -10, 4000000), 1)])  # east-left
def test_map_overlay_is_north_up_whatever_the_raster_order(tmp_path, transform, flip):
    """A south-up raster (positive pixel height, like an ascending GRD) was drawn upside down
    on the map under the right ship polygons."""
    scene = _write(tmp_path / "s.tif", [[50, 20, 80, 26]], "EPSG:32633", transform)
    _run(scene, tmp_path / "o")
    from PIL import Image

    ql = np.asarray(Image.open(tmp_path / "o" / "quicklook.png").convert("RGB"))
    want = ql if flip is None else np.flip(ql, axis=flip)
    np.testing.assert_array_equal(_overlay((tmp_path / "o" / "map.html").read_text()), want)


def test_resume_refuses_a_checkpoint_replaced_with_the_same_size_and_mtime(tmp_path,
                                                                            one_torch_thread):
    """`cp -p new.ckpt old.ckpt` keeps size and mtime: the rerun reused the old model's tile
    results (188 detections where the new model finds 2 in the probe that found it)."""
    import os

    import torch
    from test_detect_scene import _tiny_checkpoint

    from saropt.detect.scene.detectors import CheckpointDetector

    scene = _write(tmp_path / "s.tif", [[50, 60, 80, 66]], "EPSG:32633", UTM_NORTH_UP,
                   shape=(96, 96))
    ckpt = _tiny_checkpoint(tmp_path / "a.ckpt")
    c = torch.load(ckpt, weights_only=False)
    torch.save(c, ckpt)  # both files written by the same torch.save: the same size
    for v in c["state_dict"].values():
        if v.dtype.is_floating_point:
            v.mul_(1.5)
    torch.save(c, tmp_path / "b.ckpt")
    os.utime(ckpt, (1e9, 1e9))
    opts = SceneOptions(tile=64, progress=False)
    run_scene(scene, [CheckpointDetector(ckpt, score_thresh=0.0)], tmp_path / "o", opts)
    size = ckpt.stat().st_size
    (tmp_path / "b.ckpt").replace(ckpt)
    os.utime(ckpt, (1e9, 1e9))
    assert ckpt.stat().st_size == size
    with pytest.raises(SaroptError, match="different run.*detectors"):
        run_scene(scene, [CheckpointDetector(ckpt, score_thresh=0.0)], tmp_path / "o", opts)


@pytest.mark.parametrize("flag,value,needle", [
    ("--tile", "0", "between 1 and 16384"), ("--merge-iou", "1.5", "(0, 1]"),
    ("--inshore-m", "-5", "[0, inf)"), ("--score-thresh", "2", "[0, 1]"),
    ("--weights", "0", "(0, inf)"), ("--pixel-spacing", "-1", "(0, inf)"),
    ("--band", "0", ">= 1")])
def test_out_of_range_flags_are_refused_by_the_parser(tmp_path, capsys, flag, value, needle):
    """--tile 0 silently became the checkpoint's tile; --merge-iou 1.5, --inshore-m -5 and
    --score-thresh 2 ran."""
    with pytest.raises(SystemExit) as ex:
        main(["detect", "scene", "x.ckpt", "--scene", "s.tif", "--out", str(tmp_path / "o"),
              flag, value])
    err = capsys.readouterr().err
    assert ex.value.code == 2 and f"argument {flag}: must" in err and needle in err, err
    assert not (tmp_path / "o").exists()


def test_tile_zero_through_the_api_is_an_error(tmp_path):
    scene = _write(tmp_path / "s.tif", [[50, 60, 80, 66]], "EPSG:32633", UTM_NORTH_UP)
    with pytest.raises(SaroptError, match="--tile must be >= 1"):
        _run(scene, tmp_path / "o", tile=0)


def test_land_mask_in_another_vector_format_says_convert(tmp_path):
    """A coastline shapefile was reported as a raster GDAL cannot open."""
    scene = _write(tmp_path / "s.tif", [[50, 60, 80, 66]], "EPSG:32633", UTM_NORTH_UP)
    (tmp_path / "coast.shp").write_bytes(b"\x00\x00\x27\x0a")
    with pytest.raises(SaroptError, match="a .shp vector file.*ogr2ogr -f GeoJSON coast.geojson"):
        _run(scene, tmp_path / "o", land_mask=str(tmp_path / "coast.shp"))
    assert not (tmp_path / "o").exists()


def test_land_multipolygon_with_a_hole_tags_a_ship_in_the_lagoon_offshore(tmp_path):
    """Land left of x = 100 px with a lagoon (hole) holding ship A, and an island under ship B:
    A offshore (its corners and 50 m ring in the water of the hole), B on land."""
    from pyproj import Transformer

    scene = _write(tmp_path / "s.tif", [[50, 60, 80, 66], [150, 100, 156, 130]],
                   "EPSG:32633", UTM_NORTH_UP)
    to_ll = Transformer.from_crs("EPSG:32633", "EPSG:4326", always_xy=True)

    def ring(x0, y0, x1, y1):  # pixel rectangle -> lon/lat ring, counter-clockwise
        pts = [(x0, y1), (x1, y1), (x1, y0), (x0, y0), (x0, y1)]
        return [list(to_ll.transform(500000 + x * 10, 4000000 - y * 10)) for x, y in pts]

    mp = {"type": "MultiPolygon", "coordinates": [
        [ring(-10, -10, 100, 210), ring(40, 50, 90, 76)[::-1]], [ring(140, 90, 170, 140)]]}
    (tmp_path / "land.geojson").write_text(json.dumps(
        {"type": "FeatureCollection", "features": [
            {"type": "Feature", "properties": {}, "geometry": None},
            {"type": "Feature", "properties": {}, "geometry": mp}]}))
    _run(scene, tmp_path / "o", land_mask=str(tmp_path / "land.geojson"), inshore_m=50.0)
    gj = json.loads((tmp_path / "o" / "detections.geojson").read_text())
    got = {f["properties"]["pixel_box"][0]: f["properties"]["location"] for f in gj["features"]}
    assert got == {50.0: "offshore", 150.0: "land"}
    _run(scene, tmp_path / "p", land_mask=str(tmp_path / "land.geojson"), inshore_m=150.0)
    gj = json.loads((tmp_path / "p" / "detections.geojson").read_text())
    assert {f["properties"]["location"] for f in gj["features"]} == {"inshore", "land"}


def test_land_mask_east_of_the_antimeridian(tmp_path):
    """A scene whose transform runs past lon 180 and a lon/lat land polygon just east of it
    (at -179.997..-179.99, as RFC 7946 writes it): the ship there was never on land."""
    tr = Affine(1e-4, 0, 179.99, 0, -1e-4, 10.0)  # column 100 is lon 180
    scene = _write(tmp_path / "s.tif", [[20, 30, 50, 36], [150, 60, 180, 66]], "EPSG:4326",
                   tr)
    land = [[-179.997, 9.98], [-179.99, 9.98], [-179.99, 10.0], [-179.997, 10.0],
            [-179.997, 9.98]]  # the second ship's centre is at column 165: lon -179.9935
    (tmp_path / "land.geojson").write_text(json.dumps(
        {"type": "Polygon", "coordinates": [land]}))
    s = _run(scene, tmp_path / "o", land_mask=str(tmp_path / "land.geojson"), inshore_m=20.0)
    gj = json.loads((tmp_path / "o" / "detections.geojson").read_text())
    got = {f["properties"]["pixel_box"][0]: f["properties"]["location"] for f in gj["features"]}
    assert got == {20.0: "offshore", 150.0: "land"} and s["locations"] == {
        "land": 1, "offshore": 1}


def test_nan_nodata_resumes_and_writes_valid_json(tmp_path):
    """A float32 product with nodata NaN: the rerun refused its own tile results ("nodata
    differ": NaN != NaN) and run.json / summary.json held a bare NaN (not JSON)."""
    a = np.random.default_rng(0).gamma(2.0, 60.0, (200, 300)).astype(np.float32)
    a[:, :40] = np.nan
    a[60:66, 50:80] = SHIP_DN
    path = tmp_path / "f.tif"
    with rasterio.open(path, "w", driver="GTiff", width=300, height=200, count=1,
                       dtype="float32", nodata=float("nan"), crs="EPSG:32633",
                       transform=UTM_NORTH_UP) as dst:
        dst.write(a[None])
    first = _run(path, tmp_path / "o")
    again = _run(path, tmp_path / "o", nodata=float("nan"))  # the same, given explicitly
    assert first["n_detections"] == again["n_detections"] == 1
    assert again["blocks_resumed"] == again["blocks"] and again["nodata"] == "nan"
    def no_nan(c: str) -> None:
        pytest.fail(f"not JSON: {c}")

    for f in ("tiles/run.json", "summary.json"):
        json.loads((tmp_path / "o" / f).read_text(), parse_constant=no_nan)


def test_land_mask_in_0_to_360_longitudes(tmp_path):
    """The same land written with longitudes past 180 (180.003..180.01, a 0..360 mask): the
    ship on it is on land whichever way the mask writes longitude."""
    tr = Affine(1e-4, 0, 179.99, 0, -1e-4, 10.0)
    scene = _write(tmp_path / "s.tif", [[20, 30, 50, 36], [150, 60, 180, 66]], "EPSG:4326",
                   tr)
    land = [[180.003, 9.98], [180.01, 9.98], [180.01, 10.0], [180.003, 10.0], [180.003, 9.98]]
    (tmp_path / "land.geojson").write_text(json.dumps(
        {"type": "Polygon", "coordinates": [land]}))
    s = _run(scene, tmp_path / "o", land_mask=str(tmp_path / "land.geojson"), inshore_m=20.0)
    assert s["locations"] == {"land": 1, "offshore": 1}


@pytest.mark.parametrize("encoding", ["utf-8-sig", "utf-16"])
def test_land_mask_geojson_with_a_byte_order_mark(tmp_path, encoding):
    """A GeoJSON saved with a BOM (or as UTF-16) by a Windows tool: was refused as "not
    readable GeoJSON" while every other JSON or text input of saropt takes it."""
    scene = _write(tmp_path / "s.tif", [[20, 30, 50, 36], [150, 60, 180, 66]], "EPSG:4326",
                   Affine(1e-4, 0, 10.0, 0, -1e-4, 10.0))
    land = [[10.0145, 9.9900], [10.0200, 9.9900], [10.0200, 10.0], [10.0145, 10.0],
            [10.0145, 9.9900]]  # around the second ship (columns 150-180), not the first
    (tmp_path / "land.geojson").write_text(json.dumps(
        {"type": "Polygon", "coordinates": [land]}), encoding=encoding)
    s = _run(scene, tmp_path / "o", land_mask=str(tmp_path / "land.geojson"), inshore_m=20.0)
    assert s["locations"] == {"land": 1, "offshore": 1}
