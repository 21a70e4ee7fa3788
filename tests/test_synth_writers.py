"""Writers read back with independent readers: rasterio, csv, json, Pillow."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
from PIL import Image

from saropt.cli import main
from saropt.synth import SceneMapping


def test_scene_files_read_back(synth_scene_dir, synth_pair):
    import rasterio

    d = synth_scene_dir
    for name in ("sar.tif", "sar_8bit.png", "optical.tif", "tiepoints.csv", "subregions.json",
                 "truth.json"):
        assert (d / name).is_file(), name
    with rasterio.open(d / "sar.tif") as src:
        assert src.count == 1 and src.dtypes == ("uint16",)
        assert np.array_equal(src.read(1), synth_pair.sar_amp)
    with rasterio.open(d / "optical.tif") as src:
        assert src.count == 3 and set(src.dtypes) == {"uint8"}
        assert np.array_equal(np.moveaxis(src.read(), 0, -1), synth_pair.optical)
    sar8 = Image.open(d / "sar_8bit.png")
    assert sar8.mode == "L" and np.array_equal(np.asarray(sar8), synth_pair.sar8)
    with open(d / "tiepoints.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == ["subregion", "sar_x", "sar_y", "opt_x", "opt_y"]
    assert len(rows) == len(synth_pair.tie_points)
    subs = json.loads((d / "subregions.json").read_text())
    assert all(len(v["rect"]) == 4 for v in subs.values())
    assert {r["subregion"] for r in rows} == set(subs)
    truth = json.loads((d / "truth.json").read_text())
    m = SceneMapping.from_dict(truth["mapping"])
    pts = np.array([[float(r["sar_x"]), float(r["sar_y"])] for r in rows])
    opt = np.array([[float(r["opt_x"]), float(r["opt_y"])] for r in rows])
    err = np.linalg.norm(m.sar_to_opt(pts) - opt, axis=1)
    flags = np.array([t["is_outlier"] for t in truth["tie_points"]])
    assert err[~flags].max() < 5 and err[flags].min() > 5
    assert len(truth["ships"]) == len(synth_pair.ships)
    assert {"sar_box", "opt_box", "inshore", "length_m", "heading_deg"} <= set(truth["ships"][0])
    assert "calm_sea" in truth


def test_qxs_layout_exact(synth_qxs_root_256):
    root = synth_qxs_root_256
    assert sorted(p.name for p in root.iterdir()) == [".saropt.json", "manifest.csv",
                                                      "opt_256_oc_0.2", "sar_256_oc_0.2"]
    want = sorted(f"{i}.png" for i in range(1, 13))
    for sub, mode, shape in (("opt_256_oc_0.2", "RGB", (256, 256, 3)),
                             ("sar_256_oc_0.2", "L", (256, 256))):
        names = sorted(p.name for p in (root / sub).iterdir())
        assert names == want
        for n in names:
            im = Image.open(root / sub / n)
            assert im.mode == mode and np.asarray(im).shape == shape
    with open(root / "manifest.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [int(r["id"]) for r in rows] == list(range(1, 13))
    assert {"id", "scene", "x", "y", "size"} <= set(rows[0])
    strides = {int(r["x"]) % 205 for r in rows} | {int(r["y"]) % 205 for r in rows}
    assert strides == {0}  # stride 205 = round(256 * 0.8)


def test_qxs_pairs_are_coregistered_and_match_manifest(synth_qxs_root):
    """Each patch is the crop of its scene at the manifest offset (re-rendered from its seed)."""
    from saropt.synth import make_scene_pair

    root = synth_qxs_root
    with open(root / "manifest.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 24
    r = rows[5]
    pair = make_scene_pair(256, int(r["scene_seed"]))
    x, y, s = int(r["x"]), int(r["y"]), int(r["size"])
    sar = np.asarray(Image.open(root / "sar_64_oc_0.2" / f"{r['id']}.png"))
    opt = np.asarray(Image.open(root / "opt_64_oc_0.2" / f"{r['id']}.png"))
    assert np.array_equal(sar, pair.sar8[y:y + s, x:x + s])
    assert np.array_equal(opt, pair.optical_on_sar[y:y + s, x:x + s])


def test_cli_scene_json(tmp_path, capsys):
    assert main(["synth", "scene", "--out", str(tmp_path / "s"), "--size", "128x160",
                 "--seed", "1", "--json", "--quiet", "tie_points_per_subregion=4"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["sar_shape"] == [128, 160] and out["tie_points"] == 36
    assert (tmp_path / "s" / "truth.json").is_file()


def test_cli_bad_config_key_is_an_error(tmp_path, capsys):
    assert main(["synth", "scene", "--out", str(tmp_path), "--size", "128", "no_such_key=1"]) == 2
    assert "no_such_key" in capsys.readouterr().err


def test_cli_group_alone_prints_help(capsys):
    main(["synth"])
    assert "scene" in capsys.readouterr().out


@pytest.mark.parametrize("kwargs", [{"n_pairs": 0}, {"overlap": 1.0}, {"patch_size": 4096}])
def test_qxs_rejects_bad_arguments(tmp_path, kwargs):
    from saropt.synth import write_qxs_pairs

    args = {"n_pairs": 5, "seed": 0, **kwargs}
    with pytest.raises(ValueError):
        write_qxs_pairs(tmp_path, **args)


def test_builtin_world_configs_match_the_code():
    from saropt.config import load_config
    from saropt.synth import WorldConfig
    from saropt.synth.ships import ship_world_config

    assert load_config(WorldConfig, "synth/default") == WorldConfig()
    assert load_config(WorldConfig, "synth/ship_world") == ship_world_config()
