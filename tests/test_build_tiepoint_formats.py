"""Tie points from QGIS ``.points``, ENVI ``.pts`` and GeoTIFF GCPs, each converted to the
builder's convention (0-based, pixel centres at integers): hand-computed points on tiny rasters
with a known transform, and a build whose registration recovers the known mapping."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import rasterio
from rasterio.control import GroundControlPoint
from rasterio.crs import CRS
from rasterio.transform import Affine

from saropt.build import BuildConfig
from saropt.build.fixtures import make_affine_scene
from saropt.build.georef import envi_tiepoints, gcp_tiepoints, map_to_pixel, qgis_tiepoints
from saropt.build.pipeline import make_plan
from saropt.build.rasters import OpticalSource, SarSource
from saropt.build.tiepoints import read_envi_pts, read_qgis_points, tiepoint_format
from saropt.cli import main
from saropt.config import ConfigError
from saropt.errors import DataError

pytestmark = pytest.mark.filterwarnings("ignore::rasterio.errors.NotGeoreferencedWarning")

UTM = "EPSG:32650"
#: optical raster: 2 m pixels, top-left corner at (500000, 4000000)
T_OPT = Affine(2.0, 0.0, 500000.0, 0.0, -2.0, 4000000.0)


def _raster(path: Path, w: int, h: int, count: int = 1, crs=None, transform=None,
            gcps=None) -> Path:
    kw = {"crs": crs, "transform": transform} if transform is not None else {}
    with rasterio.open(path, "w", driver="GTiff", width=w, height=h, count=count,
                       dtype="uint8", **kw) as ds:
        ds.write(np.zeros((count, h, w), np.uint8))
        if gcps is not None:
            ds.gcps = gcps
    return path


def _opt_map(col: float, row: float) -> tuple[float, float]:
    """Map coordinates of optical pixel centre (col, row) in the builder's convention."""
    return (T_OPT.a * (col + 0.5) + T_OPT.c, T_OPT.e * (row + 0.5) + T_OPT.f)


@pytest.fixture
def rasters(tmp_path: Path):
    sar = _raster(tmp_path / "sar.tif", 40, 30)
    opt = _raster(tmp_path / "opt.tif", 50, 40, 3, crs=UTM, transform=T_OPT)
    with rasterio.open(sar) as s, rasterio.open(opt) as o:
        yield tmp_path, s, o


# ---------------------------------------------------------------- QGIS .points
def test_qgis_points_source_pixels_and_map_side(rasters) -> None:
    tmp, sar, opt = rasters
    x1, y1 = _opt_map(12, 7)
    x2, y2 = _opt_map(30.25, 22.5)
    x3, y3 = _opt_map(1, 1)
    wkt = CRS.from_string(UTM).to_wkt()
    (tmp / "sar.tif.points").write_text(
        f"#CRS: {wkt}\nmapX,mapY,sourceX,sourceY,enable,dX,dY,residual\n"
        f"{x1},{y1},10.5,-20.5,1,0,0,0\n"  # centre of SAR pixel (10, 20)
        f"{x2},{y2},0,0,1,0,0,0\n"          # outer corner of the first SAR pixel
        f"{x3},{y3},5.5,-5.5,0,0,0,0\n")    # disabled
    pts = read_qgis_points(tmp / "sar.tif.points")
    assert pts.disabled == 1 and pts.crs == wkt
    assert pts.source.tolist() == [[10.0, 20.0], [-0.5, -0.5]]
    got, disabled = qgis_tiepoints(tmp / "sar.tif.points", "sar", sar, opt)
    assert disabled == 1
    assert np.allclose(got, [[10, 20, 12, 7], [-0.5, -0.5, 30.25, 22.5]], atol=1e-9)


def test_qgis_map_coordinates_in_another_crs_are_reprojected(rasters) -> None:
    from rasterio.warp import transform as reproject_xy

    tmp, sar, opt = rasters
    x, y = _opt_map(20, 10)
    lon, lat = reproject_xy(UTM, "EPSG:4326", [x], [y])
    (tmp / "a.points").write_text(
        f"#CRS: {CRS.from_epsg(4326).to_wkt()}\nmapX,mapY,sourceX,sourceY,enable\n"
        f"{lon[0]!r},{lat[0]!r},3.5,-4.5,1\n")
    got, _ = qgis_tiepoints(tmp / "a.points", "sar", sar, opt)
    assert np.allclose(got, [[3, 4, 20, 10]], atol=1e-6)
    # without a #CRS line the map coordinates are in the map raster's own CRS
    (tmp / "b.points").write_text(f"mapX,mapY,sourceX,sourceY,enable\n{x},{y},3.5,-4.5,1\n")
    assert np.allclose(qgis_tiepoints(tmp / "b.points", "sar", sar, opt)[0], [[3, 4, 20, 10]])


def test_qgis_points_variants_read_the_same_points(tmp_path: Path) -> None:
    """QGIS 3.x (#CRS, CRLF, residual columns), QGIS 2 (pixelX/pixelY) and a header written
    as a comment (#mapX,...) give the same builder pixels: (10.5, -20.5) is the centre of
    pixel (10, 20)."""
    rows = "500025.0,3999985.0,10.5,-20.5,1,0.12,-0.3,0.32\r\n1.0,2.0,0.5,-0.5,1,0,0,0\r\n"
    texts = {"q3": f"#CRS: {CRS.from_string(UTM).to_wkt()}\r\n"
             "mapX,mapY,sourceX,sourceY,enable,dX,dY,residual\r\n" + rows,
             "q2": "mapX,mapY,pixelX,pixelY,enable,dX,dY,residual\n" + rows,
             "comment": "#mapX,mapY,sourceX,sourceY,enable\n" + rows}
    for name, text in texts.items():
        (tmp_path / f"{name}.points").write_text(text)
        pts = read_qgis_points(tmp_path / f"{name}.points")
        assert pts.source.tolist() == [[10.0, 20.0], [0.0, 0.0]], name
        assert pts.map.tolist() == [[500025.0, 3999985.0], [1.0, 2.0]], name


@pytest.mark.parametrize("text, match", [
    ("mapX,mapY,sourceX,sourceY,enable\n1,2,3.5,4.5,1\n", "sourceY 4.5 is positive"),
    ("mapX,mapY,foo\n1,2,3\n", r"missing column\(s\) \['sourceX', 'sourceY'\]"),
    ("mapX,mapY,sourceX,sourceY,enable\n1,2,3.5,-4.5,0\n", "no enabled tie point"),
    ("mapX,mapY,sourceX,sourceY,enable\n1,2,3.5,-4.5,False\n", r"no enabled tie point \(1 dis"),
    ("mapX,mapY,sourceX,sourceY,enable\n1,abc,3.5,-4.5,1\n", "line 2"),
])
def test_qgis_points_errors(tmp_path: Path, text: str, match: str) -> None:
    p = tmp_path / "x.points"
    p.write_text(text)
    with pytest.raises(DataError, match=match):
        read_qgis_points(p)


# ---------------------------------------------------------------- ENVI .pts
def test_envi_pts_one_based_corner_coordinates(tmp_path: Path) -> None:
    p = tmp_path / "gcp.pts"
    p.write_text("; ENVI Image to Image GCP File\n; base file: sar.tif\n; warp file: opt.tif\n"
                 "; Base Image (x,y), Warp Image (x,y)\n;\n"
                 "      11.50      21.50      1.00      1.00\n"
                 "       1.50       1.50    101.75     52.25\n")
    base, warp = read_envi_pts(p)
    assert base.tolist() == [[10.0, 20.0], [0.0, 0.0]]       # 1.5 is the first pixel's centre
    assert warp.tolist() == [[-0.5, -0.5], [100.25, 50.75]]  # 1.0 its outer corner
    assert envi_tiepoints(p, "optical").tolist() == [[10, 20, -0.5, -0.5], [0, 0, 100.25, 50.75]]
    assert envi_tiepoints(p, "sar").tolist() == [[-0.5, -0.5, 10, 20], [100.25, 50.75, 0, 0]]
    p.write_text("; ENVI Orthorectification Ground Control Points File\n1 2 3 4 5\n")
    with pytest.raises(DataError, match="not an ENVI image-to-image GCP file"):
        read_envi_pts(p)
    p.write_text("; ENVI Image to Map GCP File\n; projection info = {UTM, 50, North}\n"
                 "; Map (x,y), Image (x,y)\n;\n500000.0 4000000.0 11.5 21.5\n")
    with pytest.raises(DataError, match="image-to-map GCP file .*georeference: true"):
        read_envi_pts(p)
    # another first line, but the image-to-image column line: read as such
    p.write_text("; ENVI Registration GCP File\n; Base Image (x,y), Warp Image (x,y)\n"
                 "11.50 21.50 1.00 1.00\n")
    assert envi_tiepoints(p, "optical").tolist() == [[10, 20, -0.5, -0.5]]


# ---------------------------------------------------------------- GeoTIFF GCPs
def test_gcps_stored_in_the_geotiff(tmp_path: Path) -> None:
    # SAR pixel/line (GDAL: corner-based) -> optical map coordinates of known optical pixels
    # (an affine SAR -> optical relation, so GDAL's first-order GCP transformer is exact)
    def sar_to_opt(x: float, y: float) -> tuple[float, float]:
        return 1.1 * x + 0.2 * y + 3, -0.1 * x + 0.9 * y + 2

    known = [((x, y), sar_to_opt(x, y)) for x, y in ((10, 20), (0, 0), (39, 0), (0, 29),
                                                     (25.5, 12.25))]
    gcps = [GroundControlPoint(row=s[1] + 0.5, col=s[0] + 0.5, x=_opt_map(*o)[0],
                               y=_opt_map(*o)[1]) for s, o in known]
    sar = _raster(tmp_path / "sar.tif", 40, 30, gcps=(gcps, CRS.from_string(UTM)))
    opt = _raster(tmp_path / "opt.tif", 50, 40, 3, crs=UTM, transform=T_OPT)
    with rasterio.open(sar) as s, rasterio.open(opt) as o:
        got = gcp_tiepoints("sar", s, o)
        want = [[*sp, *op] for sp, op in known]
        assert np.allclose(got, want, atol=1e-9)
        with pytest.raises(DataError, match="stores no GCPs"):
            gcp_tiepoints("optical", s, o)
        # the other way round: map coordinates placed on a raster located by its GCPs only
        xy = np.array([_opt_map(*sar_to_opt(7, 11))])
        assert np.allclose(map_to_pixel(s, xy, UTM), [[7, 11]], atol=1e-6)


def test_map_to_pixel_needs_georeferencing(tmp_path: Path) -> None:
    with rasterio.open(_raster(tmp_path / "plain.tif", 8, 8)) as ds:
        with pytest.raises(DataError, match="neither a CRS with a geotransform nor GCPs"):
            map_to_pixel(ds, np.zeros((1, 2)))


# ---------------------------------------------------------------- config and build
def test_config_takes_exactly_one_tiepoint_source() -> None:
    base = {"sar": "a", "optical": "b", "out": "c"}
    assert BuildConfig.model_validate({**base, "gcps": "sar"}).gcps == "sar"
    with pytest.raises(ValueError, match="exactly one tie-point source"):
        BuildConfig.model_validate({**base, "gcps": "sar", "tiepoints": "t.csv"})
    assert tiepoint_format(Path("x.POINTS")) == "qgis" and tiepoint_format(Path("x.pts")) == "envi"
    with pytest.raises(DataError, match="tiepoint_format"):
        tiepoint_format(Path("x.txt"))


@pytest.fixture(scope="module")
def scene(tmp_path_factory):
    """A 256 px affine scene; its optical raster georeferenced (2 m UTM) for the QGIS map side,
    and its true tie points written as QGIS .points and ENVI .pts files."""
    import csv

    d = tmp_path_factory.mktemp("tie_formats")
    sc = make_affine_scene(d, sar_size=256, n_points=30, noise_px=0.0)
    with rasterio.open(d / "optical.tif", "r+") as ds:
        ds.crs, ds.transform = UTM, T_OPT
    with (d / "tiepoints.csv").open() as f:
        rows = [[float(r[k]) for k in ("sar_x", "sar_y", "opt_x", "opt_y")]
                for r in csv.DictReader(f)]
    qgis = ["mapX,mapY,sourceX,sourceY,enable,dX,dY,residual"]
    envi = ["; ENVI Image to Image GCP File", "; Base Image (x,y), Warp Image (x,y)", ";"]
    for sx, sy, ox, oy in rows:
        mx, my = _opt_map(ox, oy)
        qgis.append(f"{mx!r},{my!r},{sx + 0.5!r},{-(sy + 0.5)!r},1,0,0,0")
        envi.append(f"{sx + 1.5:.6f} {sy + 1.5:.6f} {ox + 1.5:.6f} {oy + 1.5:.6f}")
    (d / "sar.points").write_text(f"#CRS: {CRS.from_string(UTM).to_wkt()}\n" + "\n".join(qgis))
    (d / "sar_opt.pts").write_text("\r\n".join(envi) + "\r\n")  # ENVI on Windows writes CRLF
    import shutil

    shutil.copy(d / "sar.tif", d / "sar_gcps.tif")
    gcps = [GroundControlPoint(row=sy + 0.5, col=sx + 0.5, x=_opt_map(ox, oy)[0],
                               y=_opt_map(ox, oy)[1]) for sx, sy, ox, oy in rows]
    with rasterio.open(d / "sar_gcps.tif", "r+") as ds:
        ds.gcps = (gcps, CRS.from_string(UTM))
    return sc


@pytest.mark.parametrize("extra", [
    {"tiepoints": "sar.points", "source_image": "sar"},
    {"tiepoints": "sar_opt.pts", "source_image": "optical"},
    {"gcps": "sar", "sar": "sar_gcps.tif"},
])
def test_plan_from_each_format_recovers_the_true_mapping(scene, extra) -> None:
    d = scene.dir
    files = {k: d / v for k, v in extra.items() if k in ("tiepoints", "sar")}
    cfg = BuildConfig(**{"sar": d / "sar.tif", "optical": d / "optical.tif", "out": d / "out",
                         **extra, **files}, progress=False, summary=False,
                      patches={"size": 64})
    sar, opt = SarSource(cfg.sar, None, cfg.sar_scaling), OpticalSource(cfg.optical)
    try:
        plan = make_plan(cfg, sar, opt)
    finally:
        sar.close()
        opt.close()
    fit = plan.fits[0]
    assert fit.ok and fit.rmse < 1e-3 and fit.n_points == 30
    assert np.allclose(fit.transform.params, scene.matrix, atol=1e-5)
    assert plan.tiepoints["read"] == 30 and plan.tiepoints["outside_subregions"] == 0


def test_cli_build_with_envi_pts_records_its_tiepoints(scene, tmp_path, capsys) -> None:
    d = scene.dir
    assert main(["data", "build", "build/default", f"sar={d / 'sar.tif'}",
                 f"optical={d / 'optical.tif'}", f"tiepoints={d / 'sar_opt.pts'}",
                 "subregions=null", f"out={tmp_path / 'built'}", "patches.size=64",
                 "summary=false", "progress=false", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["subregions"][0]["points"] == 30 and info["patches_kept"] > 0
    reg = json.loads((tmp_path / "built" / "registration.json").read_text())
    assert reg["tiepoints"] == {"source": "envi", "read": 30, "outside_subregions": 0}


def test_cli_build_with_two_tiepoint_sources_is_an_error(scene, tmp_path, capsys) -> None:
    d = scene.dir
    assert main(["data", "build", "build/default", f"sar={d / 'sar.tif'}",
                 f"optical={d / 'optical.tif'}", "gcps=sar", f"tiepoints={d / 'sar_opt.pts'}",
                 f"out={tmp_path / 'b'}"]) == 2
    err = capsys.readouterr().err
    assert "exactly one tie-point source" in err and "(got tiepoints, gcps; set the" in err
    assert "'sar_scaling'" not in err  # the whole config is not dumped into the message


def test_cli_tiepoint_source_replaces_the_config_files(scene, tmp_path, capsys) -> None:
    """``gcps=sar`` on the command line replaces build/default's ``tiepoints: tiepoints.csv``
    (as any command-line key replaces the file's) and builds from the GCPs."""
    from saropt.build.cli import source_overrides

    assert source_overrides(["gcps=sar", "x=1"]) == [
        "tiepoints=null", "georeference=false", "gcps=sar", "x=1"]
    assert source_overrides(["gcps=null", "x=1"]) == ["gcps=null", "x=1"]
    assert source_overrides(["tiepoints=a.pts"]) == ["gcps=null", "georeference=false",
                                                     "tiepoints=a.pts"]
    d = scene.dir
    assert main(["data", "build", "build/default", f"sar={d / 'sar_gcps.tif'}",
                 f"optical={d / 'optical.tif'}", "gcps=sar", "subregions=null",
                 f"out={tmp_path / 'g'}", "patches.size=64", "summary=false", "progress=false",
                 "--json"]) == 0
    reg = json.loads((tmp_path / "g" / "registration.json").read_text())
    assert reg["tiepoints"] == {"source": "gcps of sar", "read": 30, "outside_subregions": 0}
    with pytest.raises(ConfigError):
        from saropt.config import load_config

        load_config(BuildConfig, "build/default", ["gcps=radar"])


def _gcp_tiff_without_crs(d: Path, name: str, gcps: list) -> Path:
    """A copy of ``sar.tif`` carrying ``gcps`` and no CRS (rasterio writes GCPs only with a
    CRS; GDAL's CreateCopy of a VRT without SRS gives the GeoTIFF a GCP list without one)."""
    import rasterio.shutil

    with rasterio.open(d / "sar.tif") as s:
        w, h = s.width, s.height
    pts = "".join(f'<GCP Id="{i}" Pixel="{g.col!r}" Line="{g.row!r}" X="{g.x!r}" Y="{g.y!r}"/>'
                  for i, g in enumerate(gcps))
    vrt = d / f"{name}.vrt"
    vrt.write_text(f'<VRTDataset rasterXSize="{w}" rasterYSize="{h}"><GCPList>{pts}</GCPList>'
                   '<VRTRasterBand dataType="UInt16" band="1"><SimpleSource><SourceFilename '
                   f'relativeToVRT="0">{d / "sar.tif"}</SourceFilename><SourceBand>1'
                   '</SourceBand></SimpleSource></VRTRasterBand></VRTDataset>')
    rasterio.shutil.copy(vrt, d / f"{name}.tif", driver="GTiff")
    with rasterio.open(d / f"{name}.tif") as ds:
        assert ds.gcps[1] is None and len(ds.gcps[0]) == len(gcps)
    return d / f"{name}.tif"


def _plan(cfg: BuildConfig):
    sar, opt = SarSource(cfg.sar, None, cfg.sar_scaling), OpticalSource(cfg.optical)
    try:
        return make_plan(cfg, sar, opt)
    finally:
        sar.close()
        opt.close()


def test_gcps_without_crs_are_in_the_other_rasters_crs_or_an_error(scene) -> None:
    """GCPs stored without a CRS: map coordinates in the optical raster's CRS recover the true
    mapping; lon/lat GCPs (the usual SAR grid) land off the optical raster, which is a one-line
    error saying so instead of a build that keeps 0 patches ('optical outside its raster')."""
    from rasterio.warp import transform as reproject_xy

    d = scene.dir
    with rasterio.open(d / "sar_gcps.tif") as ds:
        gcps = ds.gcps[0]
    utm = _gcp_tiff_without_crs(d, "sar_gcps_nocrs", gcps)
    lon, lat = reproject_xy(UTM, "EPSG:4326", [g.x for g in gcps], [g.y for g in gcps])
    lonlat = _gcp_tiff_without_crs(d, "sar_gcps_lonlat", [
        GroundControlPoint(row=g.row, col=g.col, x=x, y=y) for g, x, y in zip(gcps, lon, lat)])
    base = {"optical": d / "optical.tif", "out": d / "out", "gcps": "sar", "progress": False,
            "summary": False, "patches": {"size": 64}}
    fit = _plan(BuildConfig(sar=utm, **base)).fits[0]
    assert fit.ok and fit.rmse < 1e-3 and np.allclose(fit.transform.params, scene.matrix,
                                                      atol=1e-5)
    with pytest.raises(DataError, match="none of its 30 tie points falls on the optical "
                       r"raster \(361x361 px.*CRS the file or GeoTIFF states"):
        _plan(BuildConfig(sar=lonlat, **base))


def test_envi_base_and_warp_file_lines_are_checked_against_source_image(scene) -> None:
    """ENVI names its base and warp images in the file; a warp image that is the SAR raster
    read with source_image: optical (the default) would swap the images silently: an error
    naming the fix; with source_image: sar the true mapping is recovered."""
    import csv

    d = scene.dir
    with (d / "tiepoints.csv").open() as f:
        rows = [[float(r[k]) for k in ("sar_x", "sar_y", "opt_x", "opt_y")]
                for r in csv.DictReader(f)]
    lines = ["; ENVI Image to Image GCP File", "; base file: C:\\data\\optical.img",
             "; warp file: C:\\data\\SAR.img", "; Base Image (x,y), Warp Image (x,y)", ";"]
    lines += [f"{ox + 1.5:.6f} {oy + 1.5:.6f} {sx + 1.5:.6f} {sy + 1.5:.6f}"
              for sx, sy, ox, oy in rows]
    (d / "opt_sar.pts").write_text("\n".join(lines) + "\n")
    base = {"sar": d / "sar.tif", "optical": d / "optical.tif", "out": d / "out",
            "tiepoints": d / "opt_sar.pts", "progress": False, "summary": False,
            "patches": {"size": 64}}
    with pytest.raises(DataError, match="warp file is 'sar', the sar raster, but source_image "
                       "is optical .*set source_image: sar"):
        _plan(BuildConfig(**base))
    fit = _plan(BuildConfig(**base, source_image="sar")).fits[0]
    assert fit.ok and np.allclose(fit.transform.params, scene.matrix, atol=1e-5)
