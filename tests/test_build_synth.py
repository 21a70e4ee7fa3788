"""End to end on a synthetic scene pair whose geometry is known exactly (``saropt.synth``)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from saropt import synth
from saropt.build import BuildConfig, build_dataset, layout_dirs
from saropt.data import layout

SIZE = 128  # patches small enough to fit inside the planted calm-sea areas


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    from saropt.synth.config import WorldConfig

    root = tmp_path_factory.mktemp("synth_build")
    pair = synth.make_scene_pair(1024, 0, WorldConfig(calm_sea_size=(0.2, 0.25),
                                                      tie_points_per_subregion=30))
    synth.write_scene(pair, root / "scene")
    cfg = BuildConfig(sar=root / "scene" / "sar.tif", optical=root / "scene" / "optical.tif",
                      tiepoints=root / "scene" / "tiepoints.csv",
                      subregions=root / "scene" / "subregions.json", out=root / "out",
                      registration={"model": "polynomial2"}, patches={"size": SIZE},
                      progress=False)
    return pair, cfg, build_dataset(cfg)


def manifest(out: Path) -> list[dict]:
    with (out / "manifest.csv").open() as f:
        return list(csv.DictReader(f))


def test_registration_matches_truth_and_drops_outliers(built) -> None:
    pair, cfg, result = built
    truth = json.loads((cfg.out.parent / "scene" / "truth.json").read_text())
    outlier = {(round(p["sar_x"], 2), round(p["sar_y"], 2)) for p in truth["tie_points"]
               if p["is_outlier"]}
    assert outlier, "the synthetic scene should plant outlying tie points"
    errors = []
    for sr, fit in zip(result.plan.subregions, result.plan.fits):
        assert fit.ok, fit.reason
        for p, inl in zip(fit.points, fit.inliers):
            if (round(p[0], 2), round(p[1], 2)) in outlier:
                assert not inl
        for r in (r for r in result.rows if r["subregion"] == sr.name):
            ys, xs = np.mgrid[r["y"]:r["y"] + SIZE:8, r["x"]:r["x"] + SIZE:8]
            xy = np.column_stack([xs.ravel(), ys.ravel()]).astype(float)
            errors.append(fit(xy) - pair.mapping.sar_to_opt(xy))
    err = np.concatenate(errors)
    rmse = float(np.sqrt(np.mean(np.sum(err ** 2, axis=1))))
    assert rmse < 1.0, f"registration RMSE vs truth {rmse:.3f} px"


def test_patch_positions_and_counts_follow_geometry(built) -> None:
    _, cfg, result = built
    rows = manifest(cfg.out)
    stride = cfg.patches.stride
    regions = json.loads(cfg.subregions.read_text())
    expected = {(name, x, y) for name, spec in regions.items()
                for y in range(spec["rect"][1], spec["rect"][3] - SIZE + 1, stride)
                for x in range(spec["rect"][0], spec["rect"][2] - SIZE + 1, stride)}
    assert {(r["subregion"], int(r["x"]), int(r["y"])) for r in rows} == expected
    kept = [r for r in rows if r["decision"] == "keep"]
    assert [int(r["id"]) for r in kept] == list(range(1, len(kept) + 1))
    assert all(r["id"] == "" and r["reason"] for r in rows if r["decision"] == "reject")
    sar_dir, opt_dir = layout_dirs(SIZE, 0.2)
    assert sorted(p.name for p in (cfg.out / opt_dir).iterdir()) == sorted(
        f"{i}.png" for i in range(1, len(kept) + 1))
    sar = Image.open(cfg.out / sar_dir / "1.png")
    opt = Image.open(cfg.out / opt_dir / "1.png")
    assert (sar.mode, opt.mode, sar.size, opt.size) == ("L", "RGB", (SIZE, SIZE), (SIZE, SIZE))


def test_calm_sea_patches_are_rejected_as_textureless(built) -> None:
    pair, cfg, result = built
    inside = [r for r in result.rows
              if any(x0 <= r["x"] and r["x"] + SIZE <= x1 and y0 <= r["y"] and
                     r["y"] + SIZE <= y1 for x0, y0, x1, y1 in pair.calm_sea)]
    assert inside, "no patch lies wholly in a planted calm-sea area"
    assert all(r["decision"] == "reject" and "texture-less" in r["reason"] for r in inside)
    kept = [r for r in result.rows if r["decision"] == "keep"]
    assert len(kept) > len(result.rows) // 2


def test_kept_optical_matches_truth_rendering(built) -> None:
    pair, cfg, result = built
    _, opt_dir = layout_dirs(SIZE, 0.2)
    corrs = []
    for r in [r for r in result.rows if r["decision"] == "keep"][::4]:
        ours = np.asarray(Image.open(cfg.out / opt_dir / f"{r['id']}.png"), np.float64)
        ref = pair.optical_on_sar[r["y"]:r["y"] + SIZE, r["x"]:r["x"] + SIZE].astype(float)
        corrs.append(np.corrcoef(ours.ravel(), ref.ravel())[0, 1])
    assert np.median(corrs) > 0.95, corrs


def test_summary_registration_json_and_data_layer(built) -> None:
    _, cfg, result = built
    reg = json.loads((cfg.out / "registration.json").read_text())
    assert len(reg["subregions"]) == 9 and all("res_x" in reg["subregions"][0]["points"][0]
                                              for _ in [0])
    summary = (cfg.out / "summary.md").read_text()
    assert "Registration per sub-region" in summary
    for fig in ("registration.png", "patches_overview.png", "samples.png"):
        assert (cfg.out / "figures" / fig).stat().st_size > 1000
    sar_dir, opt_dir = layout_dirs(SIZE, 0.2)
    assert len(layout.scan_layout(cfg.out, sar_dir, opt_dir).ids) == result.n_kept


def run_cli(argv: list[str]) -> int:
    """``saropt data build ...`` through this part's own ``register`` (the full CLI imports
    every group, some of them slow to import)."""
    import argparse

    from saropt.build.cli import register

    parser = argparse.ArgumentParser(prog="saropt data")
    register(parser.add_subparsers())
    args = parser.parse_args(argv)
    return args.func(args)


def test_cli_rerun_is_a_noop(built, capsys) -> None:
    _, cfg, result = built
    before = (cfg.out / "manifest.csv").read_text()
    overrides = [f"{k}={getattr(cfg, k)}" for k in ("sar", "optical", "tiepoints",
                                                    "subregions", "out")]
    code = run_cli(["build", "build/default", *overrides, "registration.model=polynomial2",
                    f"patches.size={SIZE}", "progress=false", "summary=false", "--json"])
    info = json.loads(capsys.readouterr().out)
    assert code == 0 and info["blocks_done_now"] == 0
    assert info["patches_kept"] == result.n_kept
    assert (cfg.out / "manifest.csv").read_text() == before
