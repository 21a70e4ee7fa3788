"""``saropt data check``: every problem kind triggers on a crafted bad dataset."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from _qxs_fixtures import OPT_DIR, REAL_DATA, SAR_DIR, make_qxs
from PIL import Image

from saropt.cli import main
from saropt.data import QXSSAROPT, check_dataset
from saropt.data.checks import expected_patch_size
from saropt.errors import DataError


def _truncate(root: Path) -> str:
    f = root / SAR_DIR / "2.png"
    data = f.read_bytes()
    f.write_bytes(data[: len(data) // 2])
    return "2.png"


def _not_an_image(root: Path) -> str:
    (root / OPT_DIR / "4.png").write_text("hello")
    return "4.png"


def _drop_opt(root: Path) -> str:
    (root / OPT_DIR / "3.png").unlink()
    return "3.png"


def _extra_sar(root: Path) -> str:
    Image.fromarray(np.zeros((16, 16), np.uint8)).save(root / SAR_DIR / "7.png")
    return "7.png"


def _size_mismatch(root: Path) -> str:
    Image.fromarray(np.zeros((20, 20, 3), np.uint8)).save(root / OPT_DIR / "5.png")
    return "5.png"


def _empty_sar(root: Path) -> str:
    shutil.rmtree(root / SAR_DIR)
    (root / SAR_DIR).mkdir()
    return SAR_DIR


def _no_opt_folder(root: Path) -> str:
    shutil.rmtree(root / OPT_DIR)
    return OPT_DIR


def _zero_padded(root: Path) -> str:
    for d in (SAR_DIR, OPT_DIR):
        (root / d / "6.png").rename(root / d / "006.png")
    return "006"


def _non_integer(root: Path) -> str:
    for d in (SAR_DIR, OPT_DIR):
        (root / d / "6.png").rename(root / d / "six.png")
    return "six"


def _colour_sar(root: Path) -> str:
    rgb = np.random.default_rng(1).integers(0, 256, (16, 16, 3), dtype=np.uint8)
    Image.fromarray(rgb).save(root / SAR_DIR / "1.png")
    return "1.png"


def _duplicate(root: Path) -> str:
    Image.fromarray(np.zeros((16, 16), np.uint8)).save(root / SAR_DIR / "1.jpg")
    return "1.jpg"


CASES: dict[str, tuple[Callable[[Path], str], str]] = {
    "truncated png": (_truncate, "unreadable"),
    "not an image": (_not_an_image, "unreadable"),
    "optical missing": (_drop_opt, "missing counterpart"),
    "sar without optical": (_extra_sar, "missing counterpart"),
    "size mismatch": (_size_mismatch, "size mismatch"),
    "empty folder": (_empty_sar, "empty folder"),
    "missing folder": (_no_opt_folder, "missing folder"),
    "zero-padded name": (_zero_padded, "bad name"),
    "non-integer name": (_non_integer, "bad name"),
    "colour SAR": (_colour_sar, "bad mode"),
    "duplicate id": (_duplicate, "duplicate id"),
}


@pytest.fixture
def qxs(tmp_path: Path) -> Path:
    return make_qxs(tmp_path / "qxs", n=6, size=16)


def test_clean_dataset_passes(qxs: Path, capsys) -> None:
    res = check_dataset(qxs, patch_size=16, progress=False)
    assert res.ok, res.problems.summary()
    assert res.counts == {"sar files": 6, "opt files": 6, "pairs": 6}
    assert res.sizes == {"16x16": 6}
    assert res.modes == {"sar": {"L": 6}, "opt": {"RGB": 6}}
    assert main(["data", "check", str(qxs), "--patch-size", "16"]) == 0
    assert "OK: 6 pairs" in capsys.readouterr().out


def test_pixel_statistics_known_answer(tmp_path: Path) -> None:
    root = tmp_path / "flat"
    for d in ("sar", "opt"):
        (root / d).mkdir(parents=True)
    Image.fromarray(np.full((4, 4), 0, np.uint8)).save(root / "sar" / "1.png")
    Image.fromarray(np.full((4, 4), 255, np.uint8)).save(root / "sar" / "2.png")
    opt = np.zeros((4, 4, 3), np.uint8)
    opt[..., 0] = 51
    Image.fromarray(opt).save(root / "opt" / "1.png")
    Image.fromarray(opt).save(root / "opt" / "2.png")
    st = check_dataset(root, "sar", "opt", patch_size=4, progress=False).stats
    assert st["sar"]["mean"] == pytest.approx(0.5) and st["sar"]["std"] == pytest.approx(0.5)
    assert (st["sar"]["min"], st["sar"]["max"]) == (0.0, 1.0)
    assert st["opt"]["channel_mean"] == pytest.approx([0.2, 0.0, 0.0])
    assert st["opt"]["mean"] == pytest.approx(0.2 / 3)
    assert st["opt"]["std"] == pytest.approx(np.std([0.2, 0, 0]))


@pytest.mark.parametrize("case", list(CASES))
def test_every_problem_is_found_and_named(qxs: Path, case: str, capsys) -> None:
    spoil, kind = CASES[case]
    name = spoil(qxs)
    res = check_dataset(qxs, patch_size=16, progress=False)
    assert not res.ok
    assert kind in res.problems.counts(), res.problems.summary()
    assert any(name in m for m in res.problems.items[kind])
    assert main(["data", "check", str(qxs), "--patch-size", "16"]) == 1
    out = capsys.readouterr().out
    assert f"{kind}: " in out and name in out


def test_wrong_patch_size_from_folder_name(qxs: Path, capsys) -> None:
    assert expected_patch_size(SAR_DIR) == 256 and expected_patch_size("sar") is None
    res = check_dataset(qxs, progress=False)  # folder says 256, files are 16
    assert res.problems.counts() == {"wrong patch size": 6}
    assert main(["data", "check", str(qxs), "--json"]) == 1
    data = json.loads(capsys.readouterr().out)
    assert data["problem_counts"] == {"wrong patch size": 6} and data["ok"] is False
    assert "expected 256x256" in data["problems"]["wrong patch size"][0]


def test_odd_one_out_size_without_expected_size(tmp_path: Path) -> None:
    root = make_qxs(tmp_path, n=4, size=8, sar_dir="sar", opt_dir="opt")
    Image.fromarray(np.zeros((9, 9), np.uint8)).save(root / "sar" / "4.png")
    Image.fromarray(np.zeros((9, 9, 3), np.uint8)).save(root / "opt" / "4.png")
    res = check_dataset(root, "sar", "opt", progress=False)
    assert res.problems.counts() == {"wrong patch size": 1}
    assert "most pairs are 8x8" in res.problems.items["wrong patch size"][0]


def test_counts_per_kind_and_first_files(qxs: Path) -> None:
    for i in (1, 2, 3, 4, 5):
        (qxs / OPT_DIR / f"{i}.png").unlink()
    _truncate(qxs)
    res = check_dataset(qxs, patch_size=16, progress=False)
    assert res.problems.counts() == {"missing counterpart": 5, "unreadable": 1}
    text = res.text()
    assert "missing counterpart: 5" in text and "... and 2 more" in text


def test_dataset_raises_the_same_errors(qxs: Path) -> None:
    _drop_opt(qxs)
    with pytest.raises(DataError, match=r"missing counterpart: 1\n.*3\.png has no"):
        QXSSAROPT(qxs, patch_size=16)
    _extra_sar(qxs)
    (qxs / SAR_DIR / "3.png").unlink()
    (qxs / SAR_DIR / "7.png").unlink()
    name = _truncate(qxs)
    ds = QXSSAROPT(qxs, patch_size=16)
    with pytest.raises(DataError, match=rf"{name}: unreadable or truncated"):
        ds.get("2")
    shutil.rmtree(qxs / OPT_DIR)
    (qxs / OPT_DIR).mkdir()
    with pytest.raises(DataError, match="empty folder"):
        QXSSAROPT(qxs, patch_size=16)


def test_parallel_check_matches_serial(tmp_path: Path) -> None:
    root = make_qxs(tmp_path, n=70, size=8)
    _truncate(root)
    a = check_dataset(root, patch_size=8, progress=False)
    b = check_dataset(root, patch_size=8, progress=False, workers=2)
    assert a.to_dict() == b.to_dict()


def test_check_real_coreg180(capsys) -> None:
    root = REAL_DATA / "srif-optical-sar" / "coreg180"
    if not root.is_dir():
        pytest.skip(f"real sample data not found at {root}")
    assert main(["data", "check", str(root), "--sar-dir", "sar", "--opt-dir", "opt",
                 "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["counts"]["pairs"] == 200 and data["sizes"] == {"180x180": 200}
    assert data["modes"] == {"sar": {"L": 200}, "opt": {"L": 200}}
    assert 0.05 < data["stats"]["sar"]["mean"] < 0.6
