"""The five kinds of faults of issue 11, each example with its right answer: one-line errors,
range checks where values are parsed, kill/resume/full disk, output folders in use, two runs at
once."""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from _qxs_fixtures import write_tiny_coco
from PIL import Image

from saropt.cli import main
from saropt.errors import SaroptError

PATCH = 64
SAR_DIR, OPT_DIR = f"sar_{PATCH}_oc_0.2", f"opt_{PATCH}_oc_0.2"


def one_line_error(capsys, argv: list[str]) -> str:
    """Run the CLI expecting exit 2 and one ``saropt: error:`` line; return that line."""
    capsys.readouterr()
    try:
        rc = main(argv)
    except SystemExit as exc:  # argparse-level range checks
        rc = exc.code
    err = capsys.readouterr().err
    assert rc == 2, err
    assert "Traceback" not in err
    lines = [ln for ln in err.splitlines() if ln.strip() and "%|" not in ln]
    assert lines[-1].startswith("saropt") and "error:" in lines[-1], err
    if not lines[-1].startswith("saropt: error:"):  # argparse: usage line + error line
        assert lines[0].startswith("usage:")
    else:
        assert len(lines) == 1, err
    return lines[-1]


@pytest.fixture(scope="module")
def bnn_run(tiny_bnn_run):
    """The shared tiny BNN run of 2 epochs (copy it before changing it)."""
    return tiny_bnn_run[0]


def bnn_args(tiny: tuple, out: Path, *extra: str) -> list[str]:
    return ["bnn", "train", *tiny[2], f"out_dir={out}", *extra]


# ------------------------------------------------------------------ 1. one line, not a traceback

@pytest.mark.parametrize("argv, says", [
    (["synth", "pairs", "--out", "x", "--n", "0"], "argument --n: must be between 1"),
    (["synth", "ships", "--out", "x", "--n-train", "-1"], "argument --n-train: must be between"),
    (["synth", "scene", "--out", "x", "--size", "200000"], "argument --size: takes SIDE"),
    (["bnn", "eval", "c.ckpt", "--split", "s", "--batch-size", "0"], "must be >= 1, got 0"),
    (["bnn", "embed", "c.ckpt", "f", "--modality", "sar", "--out", "o", "--batch-size", "0"],
     "--batch-size: must be"),
    (["detect", "predict", "c.ckpt", "--out", "o", "--batch-size", "0"], "--batch-size"),
    (["detect", "eval", "--gt", "g", "--pred", "p", "--iou", "nan"], "must be a finite number"),
    (["detect", "eval", "--gt", "g", "--pred", "p", "--iou", "1.5"], "must be in (0, 1]"),
    (["fuse", "run", "a.json", "b.json", "--iou-thr", "nan"], "--iou-thr: must be a finite"),
    (["data", "cache", "root", "--out", "o", "--patch-size", "1000000", "--resize", "bilinear"],
     "--patch-size: must be between 8 and 4096"),
])
def test_flags_are_range_checked_where_parsed(capsys, argv, says):
    assert says in one_line_error(capsys, argv)


@pytest.mark.parametrize("override, says", [
    ("trainer.strategy=magic", "trainer.strategy: Value error, unknown strategy"),
    ("trainer.max_epochs=-1", "trainer.max_epochs: Input should be greater than or equal to 1"),
    ("trainer.max_epochs=0", "trainer.max_epochs"),
    ("optim.lr=.nan", "optim.lr: Input should be a finite number"),
    ("data.patch_size=1000000", "data.patch_size: Input should be less than or equal to 4096"),
    ("data.num_workers=100000", "data.num_workers: Input should be less than or equal to 256"),
    ("optim.milestones=[-1]", "optim.milestones.0: Input should be greater than or equal to 0"),
    ("trainer.seed=-1", "trainer.seed: Input should be greater than or equal to 0"),
])
def test_config_values_are_range_checked(capsys, tmp_path, override, says):
    line = one_line_error(capsys, ["bnn", "train", "bnn/synthetic_resnet18", override,
                                   f"out_dir={tmp_path / 'run'}"])
    assert says in line, line
    assert not (tmp_path / "run").exists()  # nothing started


def test_pairs_of_another_size_are_refused_before_the_run_folder(capsys, tmp_path, tiny_bnn_run):
    """64 px pairs with data.patch_size=32 and no data.resize: one line naming the file and the
    config key, before the run folder or a model exists (not at the first batch)."""
    line = one_line_error(capsys, bnn_args(tiny_bnn_run, tmp_path / "r", "data.patch_size=32"))
    assert "64x64" in line and "data.resize=bilinear" in line and ".png" in line, line
    assert not (tmp_path / "r").exists()


def test_cuda_without_gpu_is_one_line(capsys, tmp_path, tiny_bnn_run):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    line = one_line_error(capsys, bnn_args(tiny_bnn_run, tmp_path / "r",
                                           "trainer.accelerator=cuda"))
    assert "trainer.accelerator=cuda: no CUDA GPU" in line
    assert "no CUDA GPU" in one_line_error(capsys, ["detect", "predict", str(tmp_path / "c"),
                                                   "--out", str(tmp_path / "p.json"),
                                                   "--device", "cuda"])


def test_unexpected_error_names_its_traceback_file(capsys, monkeypatch, tmp_path):
    import saropt.data.splits as splits

    def broken(*args, **kwargs):
        raise ZeroDivisionError("injected bug")

    monkeypatch.setattr(splits, "make_split", broken)
    line = one_line_error(capsys, ["data", "split", str(tmp_path), "--out", str(tmp_path / "s"),
                                   "--train", "1", "--test", "1"])
    assert "unexpected ZeroDivisionError: injected bug" in line and "--debug" in line
    trace = Path(line.split("full traceback in ")[1].split(";")[0])
    assert "Traceback" in trace.read_text() and "injected bug" in trace.read_text()
    trace.unlink()
    with pytest.raises(ZeroDivisionError):
        main(["--debug", "data", "split", str(tmp_path), "--out", str(tmp_path / "s"),
              "--train", "1", "--test", "1"])


def test_file_system_errors_name_the_path(capsys, tmp_path, synth_qxs_root):
    a_file = tmp_path / "a_file"
    a_file.write_text("x")
    line = one_line_error(capsys, ["data", "cache", str(synth_qxs_root), "--sar-dir", SAR_DIR,
                                   "--opt-dir", OPT_DIR, "--out", str(a_file)])
    assert str(a_file) in line and "is a file" in line
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    if os.access(ro, os.W_OK):
        pytest.skip("running as root: permissions are not enforced")
    line = one_line_error(capsys, ["data", "split", str(synth_qxs_root), "--sar-dir", SAR_DIR,
                                   "--opt-dir", OPT_DIR, "--train", "4", "--test", "4",
                                   "--out", str(ro / "split")])
    assert "permission denied" in line and str(ro) in line


def test_wrong_checkpoints_and_garbage_weights(capsys, tmp_path, bnn_run, synth_qxs_root):
    ckpt = bnn_run / "checkpoints" / "last.ckpt"
    line = one_line_error(capsys, ["detect", "predict", str(ckpt), "--out",
                                   str(tmp_path / "p.json")])
    assert "a `saropt bnn train` checkpoint, not a detector" in line
    garbage = tmp_path / "enc.safetensors"
    garbage.write_bytes(os.urandom(256))
    line = one_line_error(capsys, ["bnn", "embed", str(garbage), str(synth_qxs_root / SAR_DIR),
                                   "--modality", "sar", "--out", str(tmp_path / "c.npy")])
    assert f"{garbage}: not a readable .safetensors file" in line


def test_non_utf8_tiepoints_name_the_file(tmp_path):
    from saropt.build.tiepoints import read_tiepoints
    from saropt.errors import DataError

    bad = tmp_path / "tp.csv"
    bad.write_bytes(b"subregion,sar_x,sar_y,opt_x,opt_y\n\xe9,1,2,3,4\n")
    with pytest.raises(DataError, match="tp.csv: not UTF-8 text"):
        read_tiepoints(bad)


# ------------------------------------------------------------------ 2. no silent nonsense

def test_unknown_detector_options_are_errors(capsys, tmp_path):
    from saropt.detect.models import create_detector

    with pytest.raises(SaroptError, match=r"unknown option\(s\) \['min_sise'\]"):
        create_detector("faster_rcnn_r18_fpn", min_sise=512)
    for config in ("detect/synthetic_faster_rcnn_r18", "detect/synthetic_yolov3_small"):
        line = one_line_error(capsys, ["detect", "train", config, "model.options.min_sise=512",
                                       f"data.root={tmp_path}", f"out_dir={tmp_path / 'r'}"])
        assert "model.options: unknown key(s) ['min_sise']" in line
        assert not (tmp_path / "r").exists()  # refused before any work


def test_16_bit_images_are_stretched_for_detectors_and_refused_for_bnn(tmp_path):
    from saropt.bnn.embed import read_patch
    from saropt.detect.datasets.airsarship import scale_to_uint8
    from saropt.detect.datasets.base import read_image
    from saropt.errors import DataError

    rng = np.random.default_rng(0)
    img16 = rng.integers(200, 1200, size=(64, 64)).astype(np.uint16)
    path = tmp_path / "sar16.png"
    Image.fromarray(img16).save(path)
    assert Image.open(path).mode.startswith("I")
    got = read_image(path, 1)
    lo, hi = np.percentile(img16, (0.5, 99.5))
    assert np.array_equal(got, scale_to_uint8(img16, lo, hi))
    assert (got == 255).mean() < 0.01  # Pillow's own conversion made 99.7% white
    with pytest.raises(DataError, match="sar16.png: image mode"):
        read_patch(path, 1, 64)
    Image.fromarray(np.zeros((1, 1), np.uint8)).save(tmp_path / "dot.png")
    with pytest.raises(SaroptError, match=r"dot.png: 1x1 pixels is too small"):
        read_patch(tmp_path / "dot.png", 1, 64)


def test_a_build_that_keeps_nothing_is_an_error(synth_scene_dir, tmp_path):
    from saropt.build import BuildConfig, build_dataset
    from saropt.errors import DataError

    s = synth_scene_dir
    cfg = BuildConfig(sar=s / "sar.tif", optical=s / "optical.tif",
                      tiepoints=s / "tiepoints.csv", subregions=s / "subregions.json",
                      out=tmp_path / "b", patches={"size": 128, "block": 2}, progress=False,
                      summary=False, screening={"texture_min_sar": 1e9})
    with pytest.raises(DataError, match=r"kept 0 patch pairs \(\d+ rejected: texture-less SAR"):
        build_dataset(cfg)
    assert (tmp_path / "b" / "manifest.csv").is_file()  # the reasons, row by row


# ------------------------------------------------------------------ 3. kill -9, resume, full disk

def _epochs(csv_path: Path) -> list[int]:
    import csv

    with open(csv_path) as f:
        return sorted({int(r["epoch"]) for r in csv.DictReader(f) if r.get("epoch")})


@pytest.mark.slow
def test_resume_keeps_metrics_and_survives_a_truncated_last_ckpt(bnn_run, tiny_bnn_run, tmp_path,
                                                                 capsys):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(bnn_run, run)
    assert _epochs(run / "csv" / "metrics.csv") == [0, 1]
    last = run / "checkpoints" / "last.ckpt"
    with open(last, "r+b") as f:  # a full disk under the old, non-atomic writer
        f.truncate(last.stat().st_size // 2)
    capsys.readouterr()
    assert main(bnn_args(tiny_bnn_run, run, "trainer.max_epochs=3")) == 0
    out = capsys.readouterr().out
    assert "last.ckpt is truncated (moved to last.ckpt.corrupt); resuming from" in out
    assert "epoch001.ckpt" in out
    assert _epochs(run / "csv" / "metrics.csv") == [0, 1, 2]  # epochs 0-1 kept, 2 appended


def test_checkpoints_are_written_atomically(tmp_path, monkeypatch):
    import torch

    from saropt.engine import _atomic_checkpoint_io

    io = _atomic_checkpoint_io()
    path = tmp_path / "last.ckpt"
    io.save_checkpoint({"a": torch.zeros(3)}, path)
    good = path.read_bytes()

    def disk_full(obj, f, *a, **k):
        Path(f).write_bytes(b"half a checkpoint")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(torch, "save", disk_full)
    with pytest.raises(OSError) as exc:
        io.save_checkpoint({"a": torch.ones(3)}, path)
    assert exc.value.filename == str(path)
    assert path.read_bytes() == good and sorted(p.name for p in tmp_path.iterdir()) == [
        "last.ckpt"]


def test_changed_config_into_a_run_folder_is_refused(bnn_run, tiny_bnn_run, capsys):
    for change, key in (("model.arch=resnet18", "model.arch"), ("optim.lr=0.5", "optim.lr")):
        line = one_line_error(capsys, bnn_args(tiny_bnn_run, bnn_run,
                                               "trainer.max_epochs=2", change))
        assert "different config" in line and key in line and "--overwrite" in line


def test_workers_see_the_epoch_of_the_sampler():
    """Resume exactness with DataLoader workers: the dataset's epoch (its false pairs) comes from
    the sampler, which Lightning restores, before any index reaches a worker."""
    import torch
    from torch.utils.data import DataLoader, Dataset

    from saropt.engine import EpochShuffleSampler

    class EpochEcho(Dataset):
        def __init__(self) -> None:
            self.epoch = torch.zeros(1, dtype=torch.int64).share_memory_()

        def set_epoch(self, e: int) -> None:
            self.epoch[0] = e

        def __len__(self) -> int:
            return 8

        def __getitem__(self, i: int) -> int:
            return int(self.epoch[0])

    ds = EpochEcho()
    resumed_at = {"epoch": 5}  # the trainer's current_epoch, restored before the first iterator
    sampler = EpochShuffleSampler(len(ds), seed=0, on_epoch=ds.set_epoch,
                                  epoch_fn=lambda: resumed_at["epoch"])
    loader = DataLoader(ds, batch_size=2, sampler=sampler, num_workers=2,
                        multiprocessing_context="fork")
    it = iter(loader)  # workers prefetch here, before Lightning's set_epoch
    sampler.set_epoch(5)
    assert torch.cat(list(it)).tolist() == [5] * 8
    uninterrupted = EpochShuffleSampler(len(ds), seed=0)
    uninterrupted.set_epoch(5)
    assert list(sampler) == list(uninterrupted)


def test_cache_rerun_never_destroys_a_good_cache(synth_qxs_root, tmp_path):
    import shutil

    from saropt.data.cache import PairCache, build_cache
    from saropt.errors import DataError

    root = tmp_path / "qxs"
    shutil.copytree(synth_qxs_root, root)
    cache = build_cache(root, tmp_path / "c", SAR_DIR, OPT_DIR, progress=False)
    before = PairCache(cache).sar("1").copy()
    leftover = cache / ".sar.abcd1234.tmp.u8"  # a killed run's temporary
    leftover.write_bytes(b"\0" * 1000)
    Image.fromarray(np.zeros((32, 32), np.uint8)).save(root / SAR_DIR / "3.png")
    with pytest.raises(DataError, match=r"3.png is 32x32 but .*3.png is 64x64"):
        build_cache(root, cache, SAR_DIR, OPT_DIR, progress=False)
    assert not leftover.exists()
    assert np.array_equal(PairCache(cache).sar("1"), before)  # index and arrays intact


def test_killed_synth_pairs_is_not_a_dataset(tmp_path, monkeypatch, capsys):
    import saropt.synth.writers as writers

    calls = {"n": 0}
    real = writers.save_png_fast

    def dies(*args):
        calls["n"] += 1
        if calls["n"] > 6:
            raise KeyboardInterrupt  # a kill midway
        return real(*args)

    monkeypatch.setattr(writers, "save_png_fast", dies)
    out = tmp_path / "pairs"
    with pytest.raises(KeyboardInterrupt):
        writers.write_qxs_pairs(out, 8, 0, patch_size=32, scene_size=64, progress=False)
    capsys.readouterr()
    assert main(["data", "check", str(out), "--sar-dir", "sar_32_oc_0.2", "--opt-dir",
                 "opt_32_oc_0.2"]) == 1
    assert "unfinished `saropt synth pairs` output" in capsys.readouterr().out
    monkeypatch.setattr(writers, "save_png_fast", real)
    writers.write_qxs_pairs(out, 8, 0, patch_size=32, scene_size=64, progress=False)
    assert main(["data", "check", str(out), "--sar-dir", "sar_32_oc_0.2", "--opt-dir",
                 "opt_32_oc_0.2"]) == 0


def test_failed_build_on_bad_tiepoints_then_corrected_rerun(synth_scene_dir, tmp_path):
    import shutil

    from saropt.build import BuildConfig, build_dataset
    from saropt.errors import DataError

    scene = tmp_path / "scene"
    shutil.copytree(synth_scene_dir, scene)
    good = (scene / "tiepoints.csv").read_text()
    (scene / "tiepoints.csv").write_text(good.replace(",", ";"))
    cfg = BuildConfig(sar=scene / "sar.tif", optical=scene / "optical.tif",
                      tiepoints=scene / "tiepoints.csv", subregions=scene / "subregions.json",
                      out=tmp_path / "b", patches={"size": 128, "block": 2}, progress=False,
                      summary=False)
    with pytest.raises(DataError, match="missing column"):
        build_dataset(cfg)
    (scene / "tiepoints.csv").write_text(good)
    assert build_dataset(cfg).n_kept > 0


# ------------------------------------------------------------------ 4. output folders in use

def test_synth_pairs_into_another_dataset_and_build_into_it_are_refused(tmp_path, capsys,
                                                                        synth_scene_dir):
    out = tmp_path / "pairs"
    common = ["--patch-size", "32", "--scene-size", "64", "--out", str(out), "--quiet"]
    assert main(["synth", "pairs", "--n", "4", *common]) == 0
    line = one_line_error(capsys, ["synth", "pairs", "--n", "3", *common])
    assert "different config (n_pairs differ)" in line and "--overwrite" in line
    s = synth_scene_dir
    line = one_line_error(capsys, ["data", "build", "build/default", f"sar={s / 'sar.tif'}",
                                   f"optical={s / 'optical.tif'}",
                                   f"tiepoints={s / 'tiepoints.csv'}",
                                   f"subregions={s / 'subregions.json'}", f"out={out}"])
    assert "holds the output of `saropt synth pairs`" in line
    assert main(["synth", "pairs", "--n", "3", *common, "--overwrite"]) == 0
    assert sorted(p.name for p in (out / "sar_32_oc_0.2").iterdir()) == ["1.png", "2.png",
                                                                        "3.png"]


def test_detect_eval_removes_its_stale_gallery(tmp_path, capsys):
    gt, pred = write_tiny_coco(tmp_path)
    args = ["detect", "eval", "--gt", str(gt), "--pred", str(pred), "--out", str(tmp_path / "e"),
            "--gallery", "0"]
    assert main(args) == 0
    (tmp_path / "e" / "gallery.png").write_bytes(b"an older run's gallery")
    assert main(args) == 0
    assert not (tmp_path / "e" / "gallery.png").exists()
    assert (tmp_path / "e" / "metrics.json").is_file()


@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o027, 0o640)])
def test_atomic_files_follow_the_umask(tmp_path, umask, mode):
    from saropt.utils.io import write_json_atomic

    old = os.umask(umask)
    try:
        path = write_json_atomic(tmp_path / "x.json", {"a": 1})
    finally:
        os.umask(old)
    assert path.stat().st_mode & 0o777 == mode


# ------------------------------------------------------------------ 5. two runs at once

def test_a_live_lock_is_refused_and_a_stale_one_taken_over(synth_qxs_root, tmp_path, capsys):
    from saropt.utils.outdir import LOCK

    out = tmp_path / "c"
    out.mkdir()
    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        import socket

        (out / LOCK).write_text(json.dumps({"pid": holder.pid, "host": socket.gethostname(),
                                            "command": "data cache", "since": "now"}))
        line = one_line_error(capsys, ["data", "cache", str(synth_qxs_root), "--sar-dir",
                                       SAR_DIR, "--opt-dir", OPT_DIR, "--out", str(out)])
        assert f"in use by `saropt data cache` (pid {holder.pid}" in line
    finally:
        holder.kill()
        holder.wait()
    # the holder is gone (kill -9): its lock is stale and the next run takes over
    assert main(["data", "cache", str(synth_qxs_root), "--sar-dir", SAR_DIR, "--opt-dir",
                 OPT_DIR, "--out", str(out)]) == 0
    assert not (out / LOCK).exists()


@pytest.mark.slow
def test_resume_is_exact_with_two_workers(tiny_bnn_run, tmp_path, one_torch_thread):
    """README: exact resume after a kill, also with data.num_workers=2 (issue 11: 196 of 252
    tensors differed)."""
    import shutil

    import torch

    args = ["trainer.max_epochs=2", "data.num_workers=2", "trainer.limit_train_batches=3"]
    full = tmp_path / "full"
    assert main(bnn_args(tiny_bnn_run, full, *args)) == 0
    resumed = tmp_path / "resumed"
    (resumed / "checkpoints").mkdir(parents=True)
    shutil.copy(full / "checkpoints" / "epoch000.ckpt", resumed / "checkpoints" / "last.ckpt")
    assert main(bnn_args(tiny_bnn_run, resumed, *args)) == 0
    a = torch.load(full / "checkpoints" / "last.ckpt", weights_only=False)
    b = torch.load(resumed / "checkpoints" / "last.ckpt", weights_only=False)
    assert (a["epoch"], b["epoch"]) == (1, 1)
    differ = [k for k, v in a["state_dict"].items() if not torch.equal(v, b["state_dict"][k])]
    assert not differ, f"{len(differ)} of {len(a['state_dict'])} tensors differ"


def test_cache_of_another_dataset_and_eval_into_a_cache_are_refused(synth_qxs_root, tmp_path,
                                                                    capsys):
    import shutil

    other = tmp_path / "other"
    shutil.copytree(synth_qxs_root, other)
    out = tmp_path / "c"
    cache = ["data", "cache", "--sar-dir", SAR_DIR, "--opt-dir", OPT_DIR, "--out", str(out)]
    assert main([*cache, str(synth_qxs_root)]) == 0
    line = one_line_error(capsys, [*cache, str(other)])
    assert "different config (root differ)" in line
    gt, pred = write_tiny_coco(tmp_path)
    ev = ["detect", "eval", "--gt", str(gt), "--pred", str(pred), "--out", str(out)]
    assert "holds the output of `saropt data cache`" in one_line_error(capsys, ev)
    assert main([*ev, "--overwrite"]) == 0
    assert not (out / "index.json").exists() and (out / "metrics.json").is_file()


def test_cache_refuses_a_disk_too_small_before_writing(synth_qxs_root, tmp_path, monkeypatch):
    import shutil

    from saropt.data.cache import build_cache
    from saropt.errors import DataError

    real = shutil.disk_usage
    monkeypatch.setattr(shutil, "disk_usage",
                        lambda p: real(p)._replace(free=1 << 20))  # 1 MB free
    with pytest.raises(DataError, match=r"the cache needs \d+ MB but only 1 MB are free"):
        build_cache(synth_qxs_root, tmp_path / "c", SAR_DIR, OPT_DIR, progress=False)
    assert not (tmp_path / "c").exists()


def test_os_errors_read_as_one_line():
    from saropt.cli import error_message

    assert error_message(OSError(errno.ENOSPC, "No space left on device", "/d/last.ckpt")) == (
        "/d/last.ckpt: no space left on the device; free space and rerun (finished outputs are "
        "kept, partial ones were not written under their final names)")
    assert error_message(OSError("cannot identify image file")) == "cannot identify image file"
    assert error_message(ValueError("a bug")) is None  # unexpected: traceback file


def test_ddp_helper_ranks_leave_the_run_folder_to_rank_zero(tmp_path, monkeypatch):
    """Lightning's DDP launcher runs the command again for ranks 1..N-1 while rank 0 (another
    process) holds the folder's lock: those ranks must not be refused, nor touch the stamp."""
    import socket

    from saropt.bnn.config import BNNConfig
    from saropt.engine import run_folder
    from saropt.utils.outdir import LOCK, STAMP, OutDirError

    run = tmp_path / "run"
    run.mkdir()
    cfg = BNNConfig(out_dir=str(run))
    rank0 = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        (run / LOCK).write_text(json.dumps({"pid": rank0.pid, "host": socket.gethostname(),
                                            "command": "bnn train", "since": "now"}))
        monkeypatch.setenv("LOCAL_RANK", "1")
        with run_folder(cfg, "bnn train", ["checkpoints"]) as helper:
            helper.finish()
        assert not (run / STAMP).exists()
        monkeypatch.setenv("LOCAL_RANK", "0")
        with pytest.raises(OutDirError, match="in use by `saropt bnn train`"):
            with run_folder(cfg, "bnn train", ["checkpoints"]):
                pass
    finally:
        rank0.kill()
        rank0.wait()
