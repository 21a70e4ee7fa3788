"""Decode-once cache: identical bytes, staleness, cache-only use, resize, CLI."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from _qxs_fixtures import OPT_DIR, REAL_DATA, SAR_DIR, make_qxs
from PIL import Image

from saropt.cli import main
from saropt.data import QXSSAROPT, PairCache, TrainPairs, build_cache
from saropt.errors import DataError


@pytest.fixture
def qxs(tmp_path: Path) -> Path:
    root = make_qxs(tmp_path / "qxs", n=11, size=12)
    grey = np.arange(144, dtype=np.uint8).reshape(12, 12)
    Image.fromarray(grey).save(root / OPT_DIR / "4.png")  # grayscale optical
    Image.fromarray(np.dstack([grey] * 3 + [grey])).save(root / SAR_DIR / "5.png")  # RGBA SAR
    return root


def test_cache_bytes_identical_to_pngs(qxs: Path, tmp_path: Path, capsys) -> None:
    assert main(["data", "cache", str(qxs), "--out", str(tmp_path / "c"), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["pairs"] == 11
    cache = PairCache(tmp_path / "c")
    assert cache.ids == [str(i) for i in range(1, 12)]
    sar_mm = np.fromfile(tmp_path / "c" / "sar.u8", np.uint8).reshape(11, 12, 12)
    opt_mm = np.fromfile(tmp_path / "c" / "opt.u8", np.uint8).reshape(11, 12, 12, 3)
    for n, id_ in enumerate(cache.ids):
        sar_png = np.asarray(Image.open(qxs / SAR_DIR / f"{id_}.png").convert("L"))
        opt_png = np.asarray(Image.open(qxs / OPT_DIR / f"{id_}.png").convert("RGB"))
        assert np.array_equal(sar_mm[n], sar_png) and np.array_equal(opt_mm[n], opt_png)
        assert np.array_equal(cache.sar(id_), sar_png)
    png = QXSSAROPT(qxs, patch_size=12)
    cached = QXSSAROPT(qxs, patch_size=12, cache=tmp_path / "c")
    for k in range(len(png)):
        a, b = png[k], cached[k]
        assert a["id"] == b["id"]
        assert torch.equal(a["sar"], b["sar"]) and torch.equal(a["opt"], b["opt"])
    tp = TrainPairs(cached)
    assert torch.equal(tp[15]["opt"], png.get(tp[15]["opt_id"])["opt"])


def test_stale_cache_is_an_error(qxs: Path, tmp_path: Path) -> None:
    build_cache(qxs, tmp_path / "c", progress=False)
    QXSSAROPT(qxs, patch_size=12, cache=tmp_path / "c")
    f = qxs / SAR_DIR / "3.png"
    Image.fromarray(np.zeros((12, 12), np.uint8)).save(f)
    os.utime(f, ns=(1, 1))
    with pytest.raises(DataError, match=r"stale.*3\.png changed.*saropt data cache"):
        QXSSAROPT(qxs, patch_size=12, cache=tmp_path / "c")
    QXSSAROPT(qxs, patch_size=12, cache=tmp_path / "c", check_cache=False)
    make_qxs(qxs, names=["12"], size=12)
    with pytest.raises(DataError, match=r"1 uncached.*'12' not cached"):
        QXSSAROPT(qxs, patch_size=12, cache=tmp_path / "c")


def test_cache_only_use_and_subsets(qxs: Path, tmp_path: Path) -> None:
    build_cache(qxs, tmp_path / "c", progress=False)
    expected = QXSSAROPT(qxs, patch_size=12).get("7")
    shutil.move(qxs, tmp_path / "elsewhere")
    ds = QXSSAROPT(qxs, ids=["7", "2"], patch_size=12, cache=tmp_path / "c")
    assert ds.ids == ["2", "7"]
    assert torch.equal(ds.get("7")["opt"], expected["opt"])
    small = QXSSAROPT(qxs, patch_size=6, resize="area", cache=tmp_path / "c")[0]
    assert small["sar"].shape == (1, 6, 6)
    with pytest.raises(DataError, match="expected 8x8"):
        QXSSAROPT(qxs, patch_size=8, cache=tmp_path / "c")[0]


def test_broken_caches(qxs: Path, tmp_path: Path) -> None:
    with pytest.raises(DataError, match="not a saropt cache"):
        PairCache(tmp_path)
    build_cache(qxs, tmp_path / "c", progress=False)
    with open(tmp_path / "c" / "opt.u8", "r+b") as f:
        f.truncate(100)
    with pytest.raises(DataError, match=r"opt\.u8: expected 4752 bytes"):
        PairCache(tmp_path / "c")
    assert sorted(p.name for p in (tmp_path / "c").iterdir()) == [
        ".saropt.json", "index.json", "opt.u8", "sar.u8"]  # no temp files, no lock left


def test_mixed_sizes_need_a_resize_policy(qxs: Path, tmp_path: Path) -> None:
    Image.fromarray(np.zeros((10, 10), np.uint8)).save(qxs / SAR_DIR / "9.png")
    Image.fromarray(np.zeros((10, 10, 3), np.uint8)).save(qxs / OPT_DIR / "9.png")
    with pytest.raises(DataError, match=r"9\.png: 10x10 pixels, but the cache holds 12x12"):
        build_cache(qxs, tmp_path / "c", progress=False)
    assert not (tmp_path / "c").exists()  # the failed first run left nothing behind
    build_cache(qxs, tmp_path / "c", patch_size=12, resize="bilinear", progress=False)
    assert PairCache(tmp_path / "c").sar("9").shape == (12, 12)


def test_cache_real_coreg180(tmp_path: Path) -> None:
    root = REAL_DATA / "srif-optical-sar" / "coreg180"
    if not root.is_dir():
        pytest.skip(f"real sample data not found at {root}")
    build_cache(root, tmp_path / "c", "sar", "opt", progress=False)
    png = QXSSAROPT(root, sar_dir="sar", opt_dir="opt", patch_size=180)
    cached = QXSSAROPT(root, sar_dir="sar", opt_dir="opt", patch_size=180, cache=tmp_path / "c")
    for k in (0, 57, 199):
        assert torch.equal(png[k]["sar"], cached[k]["sar"])
        assert torch.equal(png[k]["opt"], cached[k]["opt"])
