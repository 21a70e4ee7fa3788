"""Splits: sizes, disjointness, reproducibility, nesting, spatial leakage, files and CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from _qxs_fixtures import grid_manifest, make_qxs, write_manifest
from hypothesis import given, settings
from hypothesis import strategies as st

from saropt.cli import main
from saropt.data import make_split, read_manifest, read_pairs, read_split, resolve_sizes
from saropt.data.splits import count_overlaps
from saropt.errors import DataError

QXS_IDS = [str(i) for i in range(1, 20001)]


def _split(tmp_path: Path, name: str, ids: list[str], **kw) -> dict[str, list[str]]:
    make_split(tmp_path, tmp_path / name, ids=ids, **kw)
    return read_split(tmp_path / name)


def test_paper_sizes_by_count_and_fraction() -> None:
    assert resolve_sizes(20000) == {"train": 14000, "val": 0, "test": 6000}
    assert resolve_sizes(20000, train=14000, test=6000) == resolve_sizes(20000, train_frac=0.7)
    assert resolve_sizes(20000, train=4000, test=6000) == {"train": 4000, "val": 0, "test": 6000}
    assert resolve_sizes(20000, train_frac=0.7, val=1000) == {"train": 14000, "val": 1000,
                                                              "test": 5000}
    assert resolve_sizes(200, test_frac=0.25) == {"train": 150, "val": 0, "test": 50}
    with pytest.raises(DataError, match="train 16000 \\+ val 0 \\+ test 6000 = 22000"):
        resolve_sizes(20000, train=16000, test=6000)  # Table 2's "16,000 (100%)"
    with pytest.raises(DataError, match="count or as a fraction"):
        resolve_sizes(10, train=5, train_frac=0.5)


def test_paper_split_disjoint_reproducible_nested(tmp_path: Path) -> None:
    a = _split(tmp_path, "a", QXS_IDS, train=14000, test=6000)
    assert (len(a["train"]), len(a["val"]), len(a["test"])) == (14000, 0, 6000)
    assert set(a["train"]).isdisjoint(a["test"])
    assert set(a["train"]) | set(a["test"]) == set(QXS_IDS)
    assert a == _split(tmp_path, "b", QXS_IDS, train_frac=0.7)  # same seed, same split
    assert a["test"] != _split(tmp_path, "c", QXS_IDS, train_frac=0.7, seed=1)["test"]
    small = _split(tmp_path, "d", QXS_IDS, train=4000, test=6000)
    assert small["test"] == a["test"] and set(small["train"]) <= set(a["train"])
    assert a["train"][:3] == sorted(a["train"], key=int)[:3]


@settings(max_examples=25, deadline=None)
@given(n=st.integers(2, 300), f_train=st.floats(0, 1), f_val=st.floats(0, 0.3),
       seed=st.integers(0, 2**31))
def test_split_properties(tmp_path_factory, n: int, f_train: float, f_val: float,
                          seed: int) -> None:
    ids = [str(i) for i in range(1, n + 1)]
    n_train, n_val = int(round(f_train * n)), int(round(f_val * n))
    if n_train + n_val > n:
        return
    out = tmp_path_factory.mktemp("s")
    if 1 in (n_val, n - n_train - n_val):
        with pytest.raises(DataError, match="would hold 1 pair"):
            make_split(out, out / "s", ids=ids, train=n_train, val=n_val, seed=seed)
        return
    info = make_split(out, out / "s", ids=ids, train=n_train, val=n_val, seed=seed)
    s = read_split(out / "s")
    assert [len(s[k]) for k in ("train", "val", "test")] == [n_train, n_val, n - n_train - n_val]
    assert info["sizes"] == {k: len(v) for k, v in s.items()}
    everything = s["train"] + s["val"] + s["test"]
    assert len(set(everything)) == len(everything) == n


def test_split_files_and_eval_pairs(tmp_path: Path) -> None:
    root = make_qxs(tmp_path / "qxs", n=20, size=8)
    assert main(["data", "split", str(root), "--out", str(tmp_path / "s"), "--train-frac", "0.5",
                 "--val", "4", "--seed", "3", "--json"]) == 0
    d = tmp_path / "s"
    assert sorted(p.name for p in d.iterdir()) == [".saropt.json", "split.json", "test.txt",
                                                   "test_pairs.csv", "train.txt", "val.txt",
                                                   "val_pairs.csv"]
    info = json.loads((d / "split.json").read_text())
    assert info["seed"] == 3 and info["mode"] == "random" and info["root"] == str(root.resolve())
    assert info["sizes"] == {"train": 10, "val": 4, "test": 6}
    s = read_split(d)
    for name in ("val", "test"):
        pairs = read_pairs(d / f"{name}_pairs.csv")
        assert len(pairs) == 2 * len(s[name])
        assert sum(y for _, _, y in pairs) == len(s[name])  # 1:1
        assert {p[0] for p in pairs} == set(s[name]) and {p[1] for p in pairs} <= set(s[name])
        for sar_id, opt_id, y in pairs:
            assert (sar_id == opt_id) == (y == 1)
    assert (d / "test_pairs.csv").read_text().startswith("sar_id,opt_id,label\n")


def test_empty_val_and_bad_files(tmp_path: Path) -> None:
    make_split(tmp_path, tmp_path / "s", ids=[str(i) for i in range(1, 11)], train_frac=0.7)
    s = read_split(tmp_path / "s")
    assert s["val"] == [] and read_pairs(tmp_path / "s" / "val_pairs.csv") == []
    (tmp_path / "s" / "train.txt").write_text("1\n" + "\n".join(s["test"]) + "\n")
    with pytest.raises(DataError, match="in both train and test"):
        read_split(tmp_path / "s")
    bad = tmp_path / "p.csv"
    bad.write_text("a,b,c\n")
    with pytest.raises(DataError, match="header"):
        read_pairs(bad)
    bad.write_text("sar_id,opt_id,label\n1,2,yes\n")
    with pytest.raises(DataError, match=r"p\.csv:2"):
        read_pairs(bad)
    with pytest.raises(DataError, match="split file not found"):
        read_split(tmp_path / "nowhere")


def test_random_split_of_overlapping_patches_leaks(tmp_path: Path) -> None:
    ids = grid_manifest(tmp_path)
    info = make_split(tmp_path, tmp_path / "s", ids=ids, train_frac=0.7)
    assert info["train_test_overlaps"] > 0  # reported, the reason for --mode spatial


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_spatial_split_never_overlaps(tmp_path: Path, seed: int) -> None:
    ids = grid_manifest(tmp_path, scenes=3, nx=10, ny=10)
    info = make_split(tmp_path, tmp_path / "s", ids=ids, train_frac=0.6, val_frac=0.1,
                      seed=seed, mode="spatial", block=700)
    s = read_split(tmp_path / "s")
    windows = read_manifest(tmp_path / "manifest.csv")
    for a, b in (("train", "test"), ("train", "val"), ("val", "test")):
        assert count_overlaps(s[a], s[b], windows) == 0
        assert not set(s[a]) & set(s[b])
    assert info["train_test_overlaps"] == 0 and info["mode"] == "spatial"
    assert abs(len(s["test"]) - 90) <= 12 and len(s["train"]) > 60  # whole blocks of ~9
    assert info["purged_overlapping"] == 300 - sum(info["sizes"].values())
    again = make_split(tmp_path, tmp_path / "t", ids=ids, train_frac=0.6, val_frac=0.1,
                       seed=seed, mode="spatial", block=700)
    assert read_split(tmp_path / "t") == s and again == {**info, "manifest": again["manifest"]}


def test_spatial_split_cli_needs_manifest(tmp_path: Path, capsys) -> None:
    root = make_qxs(tmp_path / "q", n=12, size=8)
    assert main(["data", "split", str(root), "--out", str(tmp_path / "s"),
                 "--mode", "spatial"]) == 2
    assert "manifest.csv: manifest not found" in capsys.readouterr().err
    write_manifest(root, [(str(i), "a", 10 * i, 0, 8) for i in range(1, 12)])
    assert main(["data", "split", str(root), "--out", str(tmp_path / "s"),
                 "--mode", "spatial"]) == 2
    assert "1 pairs have no manifest row (first: ['12'])" in capsys.readouterr().err
    write_manifest(root, [(str(i), "a", 10 * i, 0, 8) for i in range(1, 13)])
    assert main(["data", "split", str(root), "--out", str(tmp_path / "s"),
                 "--mode", "spatial", "--test", "3"]) == 0
    s = read_split(tmp_path / "s")
    assert len(s["test"]) >= 2 and count_overlaps(
        s["train"], s["test"], read_manifest(root / "manifest.csv")) == 0
