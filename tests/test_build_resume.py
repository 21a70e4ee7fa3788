"""A killed build resumes to exactly the uninterrupted result; memory does not grow with the
scene."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tracemalloc
from pathlib import Path

import pytest

from saropt.build import BuildConfig, build_dataset
from saropt.build.fixtures import make_affine_scene
from saropt.errors import DataError


@pytest.fixture(scope="module")
def scene(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("resume_scene")
    make_affine_scene(root, 512, seed=1, sea_fraction=0.25, n_outliers=3)
    return root


def config(scene: Path, out: Path, **kw) -> BuildConfig:
    base = dict(sar=scene / "sar.tif", optical=scene / "optical.tif",
                tiepoints=scene / "tiepoints.csv", subregions=scene / "subregions.json",
                out=out, patches={"size": 64, "block": 2}, progress=False, summary=False)
    return BuildConfig(**{**base, **kw})


def snapshot(out: Path) -> dict[str, bytes]:
    """Every output file (not the work folder, not the run stamp with its times) by path."""
    return {str(p.relative_to(out)): p.read_bytes() for p in sorted(out.rglob("*"))
            if p.is_file() and ".work" not in p.parts and p.name != ".saropt.json"}


KILL_SCRIPT = """
import os, signal, sys
from saropt.build import BuildConfig, build_dataset
cfg = BuildConfig.model_validate_json(sys.argv[1])
def die(n):
    if n == int(sys.argv[2]):
        os.kill(os.getpid(), signal.SIGKILL)
build_dataset(cfg, on_block=die)
"""


def test_killed_build_resumes_to_identical_result(scene: Path, tmp_path: Path) -> None:
    reference = build_dataset(config(scene, tmp_path / "ref"))
    n_blocks = reference.plan.n_blocks()
    assert n_blocks >= 8
    cfg = config(scene, tmp_path / "killed")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    proc = subprocess.run([sys.executable, "-c", KILL_SCRIPT, cfg.model_dump_json(),
                           str(n_blocks // 2)], env=env, capture_output=True)
    assert proc.returncode == -signal.SIGKILL, proc.stderr.decode()[-2000:]
    assert not (tmp_path / "killed" / "manifest.csv").exists()
    resumed = build_dataset(cfg)
    assert resumed.blocks_done_now == n_blocks - n_blocks // 2
    assert snapshot(tmp_path / "killed") == snapshot(tmp_path / "ref")


def test_exception_mid_build_then_rescreen_without_rewarp(scene: Path, tmp_path: Path) -> None:
    cfg = config(scene, tmp_path / "out")

    def boom(n: int) -> None:
        if n == 3:
            raise RuntimeError("injected crash")

    with pytest.raises(RuntimeError, match="injected"):
        build_dataset(cfg, on_block=boom)
    first = build_dataset(cfg)
    assert first.blocks_done_now == first.plan.n_blocks() - 3
    strict = config(scene, tmp_path / "out", screening={"texture_min_opt": 30.0})
    second = build_dataset(strict)
    assert second.blocks_done_now == 0 and second.n_kept < first.n_kept
    with pytest.raises(DataError, match="different patches"):
        build_dataset(config(scene, tmp_path / "out", patches={"size": 96}))
    assert build_dataset(config(scene, tmp_path / "out", patches={"size": 96}),
                         fresh=True).n_kept > 0


def peak_traced_mb(cfg: BuildConfig) -> float:
    tracemalloc.start()
    try:
        build_dataset(cfg, fresh=True)
        return tracemalloc.get_traced_memory()[1] / 1e6
    finally:
        tracemalloc.stop()


def test_peak_memory_flat_when_scene_grows_4x(tmp_path: Path) -> None:
    peaks = {}
    for side in (512, 1024):
        make_affine_scene(tmp_path / f"s{side}", side, seed=2)
        cfg = config(tmp_path / f"s{side}", tmp_path / f"o{side}",
                     patches={"size": 256, "block": 2}, sar_scaling={"sample_side": 256})
        peaks[side] = peak_traced_mb(cfg)
    assert peaks[1024] < 1.3 * peaks[512] + 1.0, peaks


def test_georeferenced_pair_needs_no_tiepoints(scene: Path, tmp_path: Path) -> None:
    """Tie points from the GeoTIFFs' georeferencing reproduce the exact pixel mapping."""
    import json
    import shutil

    import numpy as np
    import rasterio
    from rasterio.transform import Affine

    m = np.asarray(json.loads((scene / "truth.json").read_text())["sar_to_opt"])
    for name in ("sar.tif", "optical.tif"):
        shutil.copy(scene / name, tmp_path / name)
    t_sar = Affine(2.0, 0.0, 500000.0, 0.0, -2.0, 4000000.0)
    c = np.array([[1, 0, 0.5], [0, 1, 0.5], [0, 0, 1]])
    t_opt = np.array(t_sar).reshape(3, 3) @ c @ np.linalg.inv(m) @ np.linalg.inv(c)
    for name, t in (("sar.tif", t_sar), ("optical.tif", Affine(*t_opt[:2].ravel()))):
        with rasterio.open(tmp_path / name, "r+") as ds:
            ds.crs, ds.transform = "EPSG:32650", t
    cfg = BuildConfig(sar=tmp_path / "sar.tif", optical=tmp_path / "optical.tif",
                      georeference=True, out=tmp_path / "out", progress=False, summary=False,
                      patches={"size": 128})
    result = build_dataset(cfg)
    fit = result.plan.fits[0]
    assert fit.ok and fit.rmse < 1e-3 and np.allclose(fit.transform.params, m, atol=1e-6)
    assert result.n_kept > 0
