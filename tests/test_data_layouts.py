"""Pair layouts other than QXS-SAROPT (SEN1-2, OSdataset, sar/ + opt/, published split lists)
through the same reader, checks, splits and cache; detection and its one-line error."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from _qxs_fixtures import (
    OPT_DIR,
    REAL_DATA,
    SAR_DIR,
    make_osdataset,
    make_qxs,
    make_sen12,
    pair_arrays,
)
from PIL import Image

from saropt.cli import main
from saropt.data import QXSSAROPT, build_cache, check_dataset, make_split, read_split
from saropt.data.layout import LAYOUTS, detect_layout, entry_to_id, scan_layout
from saropt.errors import DataError


def test_sen12_pairs_read_by_id_with_their_twin(tmp_path: Path) -> None:
    ids = make_sen12(tmp_path / "sen12")
    assert detect_layout(tmp_path / "sen12") == "sen12"
    ds = QXSSAROPT(tmp_path / "sen12", patch_size=16)
    assert ds.ids == ids == ["ROIs1158_spring_1_p1", "ROIs1158_spring_1_p2",
                             "ROIs1158_spring_1_p3", "ROIs1868_summer_5_p1",
                             "ROIs1868_summer_5_p2"]
    assert ds.sar_path("ROIs1868_summer_5_p2").as_posix().endswith(
        "ROIs1868_summer/s1_5/ROIs1868_summer_s1_5_p2.png")
    assert ds.opt_path("ROIs1868_summer_5_p2").as_posix().endswith(
        "ROIs1868_summer/s2_5/ROIs1868_summer_s2_5_p2.png")
    sar, opt = pair_arrays(5, 16)  # the fifth pair written
    assert np.array_equal(ds.sar_u8("ROIs1868_summer_5_p2"), sar)
    assert np.array_equal(ds.opt_u8("ROIs1868_summer_5_p2"), opt)
    # one season folder as the root works too
    assert QXSSAROPT(tmp_path / "sen12" / "ROIs1158_spring", patch_size=16).ids == ids[:3]


def test_sen12_missing_twin_and_check(tmp_path: Path) -> None:
    root = tmp_path / "sen12"
    make_sen12(root)
    (root / "ROIs1158_spring" / "s2_1" / "ROIs1158_spring_s2_1_p2.png").unlink()
    res = check_dataset(root, progress=False)
    assert res.layout == "sen12" and res.patch_size == 256
    assert res.counts == {"sar files": 5, "opt files": 4, "pairs": 4}
    assert res.problems.counts()["missing counterpart"] == 1
    assert "ROIs1158_spring_s1_1_p2.png has no optical twin" in res.problems.summary()
    # sizes: SEN1-2 patches are 256 px; these are 16 and flagged unless told
    assert check_dataset(root, patch_size=16, progress=False).problems.counts() == {
        "missing counterpart": 1}


def test_osdataset_ids_release_split_and_cache(tmp_path: Path) -> None:
    root = tmp_path / "OSdataset"
    parts = make_osdataset(root)
    layout = scan_layout(root)
    assert layout.kind == "osdataset" and layout.patch_size == 16
    assert layout.release_split == parts
    assert sorted(layout.ids) == sorted(sum(parts.values(), []))
    info = make_split(root, tmp_path / "split", mode="release")
    assert info["sizes"] == {"train": 4, "val": 2, "test": 3} and info["layout"] == "osdataset"
    assert read_split(tmp_path / "split") == parts
    build_cache(root, tmp_path / "cache", progress=False)
    png = QXSSAROPT(root, patch_size=16)
    cached = QXSSAROPT(root, patch_size=16, cache=tmp_path / "cache")
    for id_ in ("16/val/2", "16/test/3"):
        assert np.array_equal(png.opt_u8(id_), cached.opt_u8(id_))
    sar, _ = pair_arrays(6, 16)  # val/2 is the sixth pair written
    assert np.array_equal(cached.sar_u8("16/val/2"), sar)
    # a size folder or a split folder as the root: ids relative to it
    assert QXSSAROPT(root / "16", patch_size=16).ids[:2] == ["test/1", "test/2"]
    assert QXSSAROPT(root / "16" / "val", patch_size=16).ids == ["1", "2"]
    with pytest.raises(DataError, match="'16/val/2' is 'val/2' here: give the root the split"):
        QXSSAROPT(root / "16", ids=["16/val/2"], patch_size=16)


def test_plain_folders_detected_and_names_not_flagged(tmp_path: Path) -> None:
    root = make_qxs(tmp_path / "plain", n=3, size=8, sar_dir="sar", opt_dir="opt",
                    names=["a", "b7", "c"])
    res = check_dataset(root, progress=False)
    assert res.ok and res.layout == "plain" and res.counts["pairs"] == 3
    assert QXSSAROPT(root, patch_size=8).ids == ["a", "b7", "c"]


def test_no_layout_is_one_line_naming_every_layout(tmp_path: Path) -> None:
    (tmp_path / "images").mkdir()
    with pytest.raises(DataError) as err:
        QXSSAROPT(tmp_path)
    msg = str(err.value)
    assert "\n" not in msg and "no SAR-optical pair layout" in msg
    for name in LAYOUTS:
        assert name in msg
    assert main(["data", "check", str(tmp_path)]) == 2


def test_forced_layout_and_explicit_folders(tmp_path: Path) -> None:
    make_qxs(tmp_path / "q", n=3, size=8)
    make_sen12(tmp_path / "q", size=8)  # both layouts in one root: auto picks QXS (first)
    assert scan_layout(tmp_path / "q").kind == "qxs"
    assert scan_layout(tmp_path / "q", layout="sen12").ids[0] == "ROIs1158_spring_1_p1"
    assert scan_layout(tmp_path / "q", SAR_DIR, OPT_DIR).kind == "folders"
    with pytest.raises(DataError, match="both --sar-dir and --opt-dir"):
        scan_layout(tmp_path / "q", SAR_DIR)
    make_qxs(tmp_path / "q", n=2, size=8, sar_dir="sar_512_oc_0.2", opt_dir="opt_512_oc_0.2")
    with pytest.raises(DataError, match="several QXS folder pairs"):
        scan_layout(tmp_path / "q")


@pytest.mark.parametrize("entry, want", [
    ("123", "123"),
    ("SARShip-1.0-3", "SARShip-1.0-3"),  # an id with dots is not a path
    ("opt_256_oc_0.2/123.png", "123"),
    ("./sar_256_oc_0.2/7.png", "7"),
    ("ROIs1158_spring/s1_1/ROIs1158_spring_s1_1_p30.png", "ROIs1158_spring_1_p30"),
    ("ROIs1158_spring\\s2_1\\ROIs1158_spring_s2_1_p30.png", "ROIs1158_spring_1_p30"),
    ("256/train/opt12.png", "256/train/12"),
    ("sar/opt3.png", "opt3"),  # a plain layout's file named like OSdataset stays a stem
])
def test_split_entries_become_ids(entry: str, want: str) -> None:
    assert entry_to_id(entry) == want


def test_published_qxs_lists_select_the_pairs(tmp_path: Path) -> None:
    root = make_qxs(tmp_path / "qxs", n=8, size=8)
    lists = tmp_path / "published"
    lists.mkdir()
    (lists / "train.txt").write_text("".join(f"{OPT_DIR}/{i}.png\n" for i in (1, 2, 3, 5, 8)))
    (lists / "test.txt").write_text(f"{OPT_DIR}/4.png {SAR_DIR}/4.png\n{OPT_DIR}/6.png\r\n\n")
    parts = read_split(lists)
    assert parts == {"train": ["1", "2", "3", "5", "8"], "val": [], "test": ["4", "6"]}
    ds = QXSSAROPT(root, ids=parts["test"], patch_size=8)
    assert ds.ids == ["4", "6"]
    info = make_split(root, tmp_path / "split", mode="release", lists=lists)
    assert info["sizes"] == {"train": 5, "val": 0, "test": 2} and info["unassigned"] == 1
    assert (tmp_path / "split" / "test_pairs.csv").read_text().count("\n") == 5
    (lists / "test.txt").write_text(f"{OPT_DIR}/4.png {SAR_DIR}/5.png\n")
    with pytest.raises(DataError, match="name different pairs"):
        read_split(lists)
    (lists / "test.txt").write_text(f"{OPT_DIR}/40.png\n{OPT_DIR}/41.png\n")
    with pytest.raises(DataError, match="2 test entries name no pair"):
        make_split(root, tmp_path / "split2", mode="release", lists=lists)


def test_release_split_needs_lists_without_own_parts(tmp_path: Path) -> None:
    root = make_qxs(tmp_path / "qxs", n=4, size=8)
    with pytest.raises(DataError, match="--lists"):
        make_split(root, tmp_path / "s", mode="release")


def test_cache_of_another_root_says_so(tmp_path: Path) -> None:
    a = make_qxs(tmp_path / "a", n=3, size=8)
    make_sen12(tmp_path / "b", size=8)
    build_cache(a, tmp_path / "cache_a", progress=False)
    with pytest.raises(DataError, match=r"was built from .*a \(qxs layout\), not from"):
        QXSSAROPT(tmp_path / "b", patch_size=8, cache=tmp_path / "cache_a")


def test_cli_check_split_cache_on_sen12(tmp_path: Path, capsys) -> None:
    root = tmp_path / "sen12"
    make_sen12(root, size=8)
    assert main(["data", "check", str(root), "--patch-size", "8", "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["layout"] == "sen12" and res["counts"]["pairs"] == 5
    assert main(["data", "split", str(root), "--out", str(tmp_path / "s"), "--train", "3",
                 "--test", "2", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["layout"] == "sen12" and info["sizes"]["test"] == 2
    assert main(["data", "cache", str(root), "--out", str(tmp_path / "c"), "--json"]) == 0
    index = json.loads((tmp_path / "c" / "index.json").read_text())
    assert index["source"]["layout"] == "sen12" and index["ids"][0] == "ROIs1158_spring_1_p1"
    assert main(["data", "check", str(root), "--layout", "osdataset"]) == 1  # forced: nothing


def test_real_srif_coreg180_is_a_plain_layout() -> None:
    root = REAL_DATA / "srif-optical-sar" / "coreg180"
    if not root.is_dir():
        pytest.skip(f"real sample data not found at {root} (../shared/data)")
    layout = scan_layout(root)
    assert layout.kind == "plain" and len(layout.ids) == 200 and not layout.problems
    with Image.open(layout.sar_path(layout.ids[0])) as im:
        assert im.size == (180, 180)


def test_absolute_list_paths_are_taken_relative_to_the_root(tmp_path: Path) -> None:
    """Published lists holding absolute paths (CRLF, Windows separators): inside the root they
    name the pair the root-relative path names, for an OSdataset root and its size folder;
    outside it they name no pair (with the hint where the ids are known at another level)."""
    root = tmp_path / "OSdataset"
    parts = make_osdataset(root)
    lists = tmp_path / "lists"
    lists.mkdir()
    (lists / "train.txt").write_text("".join(
        f"{root.resolve() / '16' / 'train' / f'opt{i}.png'}\r\n" for i in (1, 2, 3, 4)))
    (lists / "test.txt").write_text(
        f"{root / '16' / 'test' / 'sar1.png'} {root / '16' / 'test' / 'opt1.png'}\r\n"
        + str(root / "16" / "test" / "sar2.png").replace("/", "\\") + "\r\n")
    assert read_split(lists, root) == {"train": parts["train"], "val": [],
                                       "test": ["16/test/1", "16/test/2"]}
    info = make_split(root, tmp_path / "s", mode="release", lists=lists)
    assert info["sizes"] == {"train": 4, "val": 0, "test": 2} and info["unassigned"] == 3
    assert read_split(tmp_path / "s")["train"] == parts["train"]
    make_split(root / "16", tmp_path / "s16", mode="release", lists=lists)
    assert read_split(tmp_path / "s16")["train"] == ["train/1", "train/2", "train/3", "train/4"]
    with pytest.raises(DataError, match=r"4 train entries name no pair of .*test \(first: "
                       r"\['/.*/OSdataset/16/train/1', [^;]*$"):  # train/1 is not the 1 of test
        make_split(root / "16" / "test", tmp_path / "s3", mode="release", lists=lists)
    (lists / "train.txt").write_text("16/train/1\n")
    with pytest.raises(DataError, match="'16/train/1' is 'train/1' here: give the root"):
        make_split(root / "16", tmp_path / "s4", mode="release", lists=lists)
    with pytest.raises(DataError, match="'16/train/1' is '1' here"):  # the same file
        QXSSAROPT(root / "16" / "train", ids=["16/train/1"], patch_size=16)


def test_lists_written_by_windows_editors_read(tmp_path: Path) -> None:
    """A byte-order mark (Notepad's UTF-8) is not part of the first id, UTF-16 lists
    (PowerShell's `>`) read, pairs CSVs with a BOM read; other bytes are a one-line error."""
    from saropt.data import read_pairs

    lists = tmp_path / "lists"
    lists.mkdir()
    (lists / "train.txt").write_bytes("\ufeff1\r\n2\r\n".encode())
    (lists / "test.txt").write_text(f"{OPT_DIR}/3.png\r\n./{OPT_DIR}/4.png\r\n", encoding="utf-16")
    assert read_split(lists) == {"train": ["1", "2"], "val": [], "test": ["3", "4"]}
    (tmp_path / "p.csv").write_bytes("\ufeffsar_id,opt_id,label\r\n3,4,0\r\n".encode())
    assert read_pairs(tmp_path / "p.csv") == [("3", "4", 0)]
    (lists / "test.txt").write_bytes(b"\x81\x00abc\n")
    with pytest.raises(DataError, match=r"test.txt: not a UTF-8 or UTF-16 text file .*save it"):
        read_split(lists)


def test_lists_select_the_release_split_or_are_an_error(tmp_path: Path, capsys) -> None:
    """--lists alone means the published split (it was silently ignored by the default random
    mode); with --mode random or spatial it is a one-line error."""
    root = make_qxs(tmp_path / "qxs", n=8, size=8)
    lists = tmp_path / "published"
    lists.mkdir()
    (lists / "train.txt").write_text("1\n2\n3\n4\n")
    (lists / "test.txt").write_text("5\n6\n")
    assert main(["data", "split", str(root), "--out", str(tmp_path / "s"), "--lists",
                 str(lists)]) == 0
    assert read_split(tmp_path / "s")["train"] == ["1", "2", "3", "4"]
    assert make_split(root, tmp_path / "s2", lists=lists)["mode"] == "release"
    capsys.readouterr()
    assert main(["data", "split", str(root), "--out", str(tmp_path / "s3"), "--lists",
                 str(lists), "--mode", "random"]) == 2
    assert "--lists is the published split: it is read with --mode release, not --mode " \
        "random" in capsys.readouterr().err
    assert not (tmp_path / "s3").exists()
