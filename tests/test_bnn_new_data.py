"""A trained BNN meets new data: ``bnn eval --root OTHER`` and ``bnn embed`` read the other
dataset in its own layout (SEN1-2 here, trained on QXS folders) and use a cache only when asked
(the training run's cache is never applied to another root)."""

from __future__ import annotations

import json

import lightning
import numpy as np
import pytest
import torch
from _qxs_fixtures import make_qxs, make_sen12

from saropt.bnn.config import BNNConfig
from saropt.bnn.embed import read_patch
from saropt.bnn.export import load_module
from saropt.bnn.module import BNNModule
from saropt.cli import main
from saropt.config import load_config
from saropt.data import build_cache, make_split

PATCH = 32


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """An untrained BNN checkpoint (Lightning format) whose config names a QXS-layout training
    root with its own folder names and a cache of it, as a real training run's would."""
    base = tmp_path_factory.mktemp("bnn_new_data")
    root = make_qxs(base / "qxs", n=6, size=PATCH, sar_dir=f"sar_{PATCH}_oc_0.2",
                    opt_dir=f"opt_{PATCH}_oc_0.2")
    cache = build_cache(root, base / "qxs_cache", progress=False)
    cfg = load_config(BNNConfig, "bnn/synthetic_resnet18", [
        "model.arch=test_resnet", "model.conv_width=16", f"data.patch_size={PATCH}",
        f"data.root={root}", f"data.cache={cache}", f"data.sar_dir=sar_{PATCH}_oc_0.2",
        f"data.opt_dir=opt_{PATCH}_oc_0.2", "trainer.precision=32-true"])
    torch.manual_seed(0)
    module = BNNModule(cfg.model_dump(mode="json"))
    path = base / "run" / "checkpoints" / "last.ckpt"
    path.parent.mkdir(parents=True)
    torch.save({"state_dict": module.state_dict(), "epoch": 0, "global_step": 1,
                "hyper_parameters": dict(module.hparams),
                "pytorch-lightning_version": lightning.__version__}, path)
    other = base / "sen12"
    ids = make_sen12(other, size=PATCH, scenes=(("ROIs1158_spring", 1, 4),
                                                ("ROIs2017_winter", 7, 4)))
    make_split(other, base / "sen12_split", train=4, test=4, seed=0)
    return path, cache, other, ids, base / "sen12_split"


def test_eval_on_other_layout_uses_its_files_not_the_training_cache(trained, tmp_path, capsys):
    ckpt, _, other, _, split = trained
    capsys.readouterr()
    assert main(["bnn", "eval", str(ckpt), "--root", str(other), "--split", str(split),
                 "--out", str(tmp_path / "ev"), "--no-figures", "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["data"] == {"root": str(other), "layout": "sen12", "pairs": 8, "cache": None,
                           "resize": None}
    assert res["test"]["n_pairs"] == 8  # 4 test ids: 4 true + 4 false pairs
    assert json.loads((tmp_path / "ev" / "metrics.json").read_text())["data"]["layout"] \
        == "sen12"


def _sen12_file(root, id_: str, modality: str):
    """The SEN1-2 file of pair ``id_`` (``ROIs1158_spring_1_p3``) built by hand."""
    roi, n, p = id_.rsplit("_", 2)
    return root / roi / f"s{modality}_{n}" / f"{roi}_s{modality}_{n}_{p}.png"


def test_eval_distances_are_those_of_the_other_datasets_files(trained):
    from saropt.bnn.evaluate import eval_data, eval_subset
    from saropt.bnn.model import distance
    from saropt.data import read_split

    ckpt, _, other, _, split = trained
    module = load_module(ckpt)
    module.cfg = eval_data(module.cfg, str(other))
    sub = eval_subset(module, module.cfg, split, "test", read_split(split)["test"], 8)
    x_s = torch.stack([read_patch(_sen12_file(other, s, "1"), 1, PATCH) for s, _, _ in
                       sub["pairs"]])
    x_o = torch.stack([read_patch(_sen12_file(other, o, "2"), 3, PATCH) for _, o, _ in
                       sub["pairs"]])
    with torch.no_grad():
        ref = distance(module.model.sar(x_s), module.model.opt(x_o)).numpy()
    assert np.allclose(sub["d"], ref, atol=1e-5)
    assert sub["y"].tolist() == [float(y) for _, _, y in sub["pairs"]]


def test_training_cache_given_for_another_root_is_a_one_line_error(trained, tmp_path, capsys):
    ckpt, cache, other, _, split = trained
    assert main(["bnn", "eval", str(ckpt), "--root", str(other), "--split", str(split),
                 "--cache", str(cache), "--out", str(tmp_path / "ev"), "--no-figures"]) == 2
    err = capsys.readouterr().err
    assert "was built from" in err and "not from" in err and "Traceback" not in err


def test_embed_a_pair_dataset_root_by_ids(trained, tmp_path):
    ckpt, _, other, ids, _ = trained
    assert main(["bnn", "embed", str(ckpt), str(other), "--modality", "opt",
                 "--out", str(tmp_path / "codes.npy")]) == 0
    codes = np.load(tmp_path / "codes.npy")
    assert (tmp_path / "codes.txt").read_text().split() == ids
    x = read_patch(other / "ROIs2017_winter" / "s2_7" / "ROIs2017_winter_s2_7_p3.png", 3, PATCH)
    with torch.no_grad():
        ref = load_module(ckpt).model.opt(x[None]).numpy()
    assert np.allclose(codes[ids.index("ROIs2017_winter_7_p3")], ref[0], atol=1e-6)
    assert main(["bnn", "embed", str(ckpt), str(tmp_path), "--modality", "sar",
                 "--out", str(tmp_path / "none.npy")]) == 2  # no images, no layout


def test_training_root_reads_files_unless_cache_is_asked(trained, tmp_path, capsys):
    """Without --cache the training run's cache is not read (here made stale on purpose);
    with it, its staleness is reported; a missing root points at --cache."""
    import os
    from pathlib import Path

    ckpt, cache, _, _, _ = trained
    cfg = load_module(ckpt).cfg.data
    make_split(cfg.root, tmp_path / "split", train=2, test=4, seed=0)
    os.utime(Path(cfg.root) / cfg.sar_dir / "3.png", ns=(1, 1))  # the cache is now stale
    args = ["bnn", "eval", str(ckpt), "--split", str(tmp_path / "split"), "--no-figures",
            "--out", str(tmp_path / "ev")]
    assert main(args) == 0
    assert main([*args, "--cache", str(cache)]) == 2
    assert "is stale" in capsys.readouterr().err
    assert main([*args, "--root", str(tmp_path / "gone")]) == 2
    assert "gone is not a folder\n" in capsys.readouterr().err
    from saropt.bnn.evaluate import eval_data
    from saropt.errors import SaroptError

    moved = load_module(ckpt).cfg
    moved = moved.model_copy(update={"data": moved.data.model_copy(update={
        "root": str(tmp_path / "moved")})})
    with pytest.raises(SaroptError, match=f"give --cache {cache}"):
        eval_data(moved)  # the training root is gone (a GPU node with the cache only)
    assert eval_data(moved, cache=str(cache)).data.cache == str(cache)


def test_same_pairs_in_three_layouts_give_the_same_metrics(trained, tmp_path):
    """The same 8 pairs as QXS folders, as SEN1-2 and as OSdataset, with the same split (ids
    mapped; the SEN1-2 split given as published-style path lists): identical metrics."""
    import shutil

    from saropt.bnn.evaluate import evaluate
    from saropt.data.splits import read_pairs, write_pairs

    ckpt = trained[0]
    qxs = make_qxs(tmp_path / "qxs", n=8, size=PATCH)
    make_split(qxs, tmp_path / "split_qxs", train=2, val=2, test=4, seed=1)
    sen = {str(i): f"ROIs1158_spring_1_p{i}" for i in range(1, 9)}
    osd = {str(i): f"256/test/{i}" for i in range(1, 9)}
    for i in sen:
        for src, dst in (("sar_256_oc_0.2", f"s1_1/ROIs1158_spring_s1_1_p{i}.png"),
                         ("opt_256_oc_0.2", f"s2_1/ROIs1158_spring_s2_1_p{i}.png")):
            (tmp_path / "sen12" / "ROIs1158_spring" / dst).parent.mkdir(parents=True,
                                                                       exist_ok=True)
            shutil.copy(qxs / src / f"{i}.png", tmp_path / "sen12" / "ROIs1158_spring" / dst)
        (tmp_path / "os" / "256" / "test").mkdir(parents=True, exist_ok=True)
        shutil.copy(qxs / "sar_256_oc_0.2" / f"{i}.png", tmp_path / "os/256/test" / f"sar{i}.png")
        shutil.copy(qxs / "opt_256_oc_0.2" / f"{i}.png", tmp_path / "os/256/test" / f"opt{i}.png")
    for name, mapping, as_paths in (("sen", sen, True), ("os", osd, False)):
        out = tmp_path / f"split_{name}"
        out.mkdir()
        for part in ("train", "val", "test"):
            ids = (tmp_path / "split_qxs" / f"{part}.txt").read_text().split()
            lines = [f"ROIs1158_spring/s2_1/ROIs1158_spring_s2_1_p{i}.png" if as_paths
                     else mapping[i] for i in ids]
            (out / f"{part}.txt").write_text("".join(f"{x}\n" for x in lines))
        for part in ("val", "test"):
            pairs = read_pairs(tmp_path / "split_qxs" / f"{part}_pairs.csv")
            write_pairs(out / f"{part}_pairs.csv", [(mapping[s], mapping[o], y)
                                                   for s, o, y in pairs])
    results = [evaluate(ckpt, tmp_path / f"split_{n}", tmp_path / f"ev_{n}", root=str(r),
                        figures=False)
               for n, r in (("qxs", qxs), ("sen", tmp_path / "sen12"), ("os", tmp_path / "os"))]
    assert [r["data"]["layout"] for r in results] == ["qxs", "sen12", "osdataset"]
    for r in results[1:]:
        assert r["test"] == results[0]["test"] and r["retrieval"] == results[0]["retrieval"]
        assert r["val_threshold"] == results[0]["val_threshold"]


def test_embed_folder_reads_patches_like_the_pair_reader(trained, tmp_path, capsys):
    """A folder of patches goes through the pair reader: a 16-bit SAR patch is a one-line
    error (Pillow's convert('L') would clip it to 255 and embed garbage), an 8-bit grey
    patch saved as RGB with equal channels gives the codes of its L original."""
    from PIL import Image

    ckpt = trained[0]
    grey = np.arange(PATCH * PATCH, dtype=np.uint16).reshape(PATCH, PATCH) % 251
    (tmp_path / "l").mkdir()
    (tmp_path / "rgb").mkdir()
    Image.fromarray(grey.astype(np.uint8)).save(tmp_path / "l" / "a.png")
    Image.fromarray(np.repeat(grey.astype(np.uint8)[..., None], 3, 2)).save(
        tmp_path / "rgb" / "a.png")
    for name in ("l", "rgb"):
        assert main(["bnn", "embed", str(ckpt), str(tmp_path / name), "--modality", "sar",
                     "--out", str(tmp_path / f"{name}.npy")]) == 0
    assert np.array_equal(np.load(tmp_path / "l.npy"), np.load(tmp_path / "rgb.npy"))
    (tmp_path / "u16").mkdir()
    Image.fromarray(grey * 257).save(tmp_path / "u16" / "a.png")  # mode I;16
    capsys.readouterr()
    assert main(["bnn", "embed", str(ckpt), str(tmp_path / "u16"), "--modality", "sar",
                 "--out", str(tmp_path / "u16.npy")]) == 2
    err = [e for e in capsys.readouterr().err.splitlines() if e.startswith("saropt:")]
    assert len(err) == 1 and "a.png: image mode 'I;16' is not supported" in err[0]
    assert "scale it to 8 bit" in err[0] and not (tmp_path / "u16.npy").exists()
