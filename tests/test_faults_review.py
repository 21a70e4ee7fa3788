"""Faults of the kinds of issue 11 found by a second review (not in the issue's list), each with
its right answer: config ranges, seeds, outputs that are not regular files, error messages that
name the output rather than a temporary."""

from __future__ import annotations

import os
import threading

import pytest
from test_faults_kinds import one_line_error

from saropt.cli import main

# ------------------------------------------------------------------ 2. values range-checked

@pytest.mark.parametrize("override, says", [
    ("subregion_grid=[0,0]", "subregion_grid.0: Input should be greater than or equal to 1"),
    ("road_spacing_m=[-5,10]", "road_spacing_m.0: Input should be greater than or equal to 20"),
    ("road_width_m=[0,0]", "road_width_m.0"),
    ("sar8_percentiles=[99,1]", "sar8_percentiles: Value error, must be [low, high] with low <"),
    ("sar8_percentiles=[-5,200]", "sar8_percentiles.1: Input should be less than or equal to 100"),
    ("ship_length_m=[-10,-1]", "ship_length_m.0: Input should be greater than 0"),
    ("scale_jitter=5", "scale_jitter: Input should be less than 1"),
    ("building_height_median_m=-10", "building_height_median_m"),
    ("calm_sea_size=[-1,5]", "calm_sea_size.0"),
    ("tie_outlier_offset_px=[60,15]", "tie_outlier_offset_px: Value error"),
    ("sun_elevation_deg=0", "sun_elevation_deg: Input should be greater than 0"),
])
def test_synth_world_config_is_range_checked(capsys, tmp_path, override, says):
    """Before: tracebacks (negative dimensions, OpenCV thickness assertion, numpy percentiles)
    or a scene silently made from nonsense (ships of negative length, reversed percentiles)."""
    line = one_line_error(capsys, ["synth", "scene", "--size", "64", "--quiet", "--out",
                                   str(tmp_path / "s"), override])
    assert "invalid config" in line and says in line, line
    assert not (tmp_path / "s").exists()


@pytest.mark.parametrize("key, value", [
    ("screening.texture_min_sar", "-1"), ("screening.seam_max", "300"),
    ("screening.duplicate_max_hamming", "64"), ("screening.duplicate_max_hamming", "-1"),
    ("registration.seed", "-1"),
])
def test_build_config_is_range_checked(key, value):
    from saropt.build.config import BuildConfig
    from saropt.config import ConfigError, build_config

    base = {"sar": "s.tif", "optical": "o.tif", "tiepoints": "t.csv", "out": "x"}
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        build_config(BuildConfig, base, [f"{key}={value}"])
    build_config(BuildConfig, base, [f"{key}=0"])  # the bound itself is fine


@pytest.mark.parametrize("argv", [
    ["synth", "scene", "--out", "x", "--seed", "-1"],
    ["synth", "pairs", "--out", "x", "--seed", "4294967296"],
    ["data", "split", "r", "--out", "x", "--train", "1", "--test", "1", "--seed", "99999999999"],
    ["demo", "--out", "x", "--seed", "4294967296"],
])
def test_seed_flags_are_range_checked(capsys, argv):
    assert "--seed: must be between 0 and 4294967295" in one_line_error(capsys, argv)


def test_seed_configs_and_epoch_seeds_stay_in_range():
    """Before: ``trainer.seed=5000`` trained, then died in the first epoch's
    ``seed_everything(5000 * 1_000_003)`` (out of NumPy's range) as an unexpected error."""
    from saropt.config import ConfigError, build_config
    from saropt.engine import TrainerConfig, epoch_seed

    for bad in ("-1", "4294967296"):
        with pytest.raises(ConfigError, match="seed"):
            build_config(TrainerConfig, {}, [f"seed={bad}"])
    assert epoch_seed(7, 3) == 7 * 1_000_003 + 3  # unchanged for small seeds (exact resume)
    for seed in (5000, 2**32 - 1):
        assert 0 <= epoch_seed(seed, 1000) < 2**32


# ------------------------------------------------------------------ 3/4. the atomic writer

def test_atomic_write_onto_a_pipe_writes_into_it_and_keeps_it(tmp_path):
    """Before: ``--out /dev/full`` (or a named pipe, /dev/stdout) was *replaced* by a regular
    file (os.replace onto it; as root that replaced the device node) and the run exited 0."""
    from saropt.utils.io import write_text_atomic

    fifo = tmp_path / "pipe.json"
    os.mkfifo(fifo)
    got: list[bytes] = []
    reader = threading.Thread(target=lambda: got.append(fifo.read_bytes()))
    reader.start()
    write_text_atomic(fifo, "hello\n")
    reader.join(timeout=5)
    assert got == [b"hello\n"]
    assert fifo.is_fifo()
    assert [p.name for p in tmp_path.iterdir()] == ["pipe.json"]  # no temporary left


def test_atomic_write_through_a_symlink_replaces_its_target(tmp_path):
    from saropt.utils.io import write_text_atomic

    (tmp_path / "real.txt").write_text("old")
    (tmp_path / "link.txt").symlink_to("real.txt")
    write_text_atomic(tmp_path / "link.txt", "new")
    assert (tmp_path / "link.txt").is_symlink()
    assert (tmp_path / "real.txt").read_text() == "new"


def test_errors_name_the_output_not_the_temporary(tmp_path, monkeypatch):
    """Before: ``fuse run ... --out /proc/x.json`` said ``/proc/.x.1e3c48xx.tmp.json: ...``."""
    import errno

    from saropt.cli import os_error_message
    from saropt.utils.io import atomic_path

    with pytest.raises(OSError) as info:
        with atomic_path("/proc/x.json") as tmp:
            tmp.write_text("x")
    assert os_error_message(info.value).startswith("/proc/x.json: ")

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device", str(args[0]))

    out = tmp_path / "out.json"
    with pytest.raises(OSError) as info:
        with atomic_path(out) as tmp:
            monkeypatch.setattr(os, "replace", full)
            tmp.write_text("x")
    monkeypatch.undo()
    assert os_error_message(info.value).startswith(f"{out}: no space left")
    assert list(tmp_path.iterdir()) == []  # the temporary is gone, no output under its name


# ------------------------------------------------------------------ 2. inputs checked where read

@pytest.mark.parametrize("row, says", [
    ({"bbox": [4, 4, -10, 10], "score": 0.9}, "negative width or height"),
    ({"bbox": [4, 4, 10, 10], "score": 1.5}, "has score 1.5; fusion weighs confidences in [0, 1]"),
    ({"bbox": [4, 4, 10, 10], "score": -0.5}, "has score -0.5"),
])
def test_fuse_refuses_what_detect_eval_refuses(capsys, tmp_path, row, says):
    """Before: ``fuse run`` fused a negative-width box or a score of 1.5 and exited 0, while
    ``detect eval`` refused the same file."""
    import json

    from _qxs_fixtures import write_tiny_coco

    gt, pred = write_tiny_coco(tmp_path)
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps([{"image_id": 1, "category_id": 1, **row}]))
    line = one_line_error(capsys, ["fuse", "run", str(pred), str(bad), "--gt", str(gt),
                                   "--out", str(tmp_path / "f.json")])
    assert line.startswith(f"saropt: error: {bad}: entry 0 has ") and says in line, line
    assert not (tmp_path / "f.json").exists()


def test_fuse_compare_refuses_two_detectors_of_one_name(capsys, tmp_path):
    """Before: two files called pred.json (or one file twice) became one column; the table
    showed one detector and ``--weights`` with one value for two files passed."""
    from _qxs_fixtures import write_tiny_coco

    gt, pred = write_tiny_coco(tmp_path)
    other = tmp_path / "b" / "pred.json"
    other.parent.mkdir()
    other.write_bytes(pred.read_bytes())
    line = one_line_error(capsys, ["fuse", "compare", str(pred), str(other), "--gt", str(gt)])
    assert "detector name(s) pred given twice" in line and "--names" in line
    line = one_line_error(capsys, ["fuse", "compare", str(pred), str(other), "--gt", str(gt),
                                   "--names", "a", "b", "--weights", "0.5"])
    assert "1 weights given for 2 prediction files" in line
    assert main(["fuse", "compare", str(pred), str(other), "--gt", str(gt), "--names", "a",
                 "b"]) == 0


def test_demo_only_that_matches_no_stage_is_an_error(capsys, tmp_path):
    """Before: ``demo --only nothing`` wrote an empty report and exited 0."""
    line = one_line_error(capsys, ["demo", "--out", str(tmp_path / "d"), "--only", "synth",
                                   "nope"])
    assert "--only nope: no demo stage" in line and "saropt.synth.demo" in line
    assert not (tmp_path / "d").exists()


# ------------------------------------------------------------------ 4. other runs' outputs

def test_outputs_inside_another_runs_output_are_refused(capsys, tmp_path):
    """Before: ``data split --out DATASET/sar_32_oc_0.2`` put split files (and a stamp) among a
    dataset's images and ``data check`` still said OK; ``fuse run --out DATASET/manifest.csv``
    replaced the dataset's manifest."""
    from _qxs_fixtures import write_tiny_coco

    ds = tmp_path / "ds"
    assert main(["synth", "pairs", "--n", "4", "--patch-size", "32", "--scene-size", "64",
                 "--out", str(ds), "--quiet"]) == 0
    manifest = (ds / "manifest.csv").read_bytes()
    gt, pred = write_tiny_coco(tmp_path)
    for argv in (["data", "split", str(ds), "--out", str(ds / "sar_32_oc_0.2"), "--train", "2",
                  "--test", "2"],
                 ["synth", "scene", "--size", "64", "--out", str(ds / "opt_32_oc_0.2" / "x")],
                 ["fuse", "run", str(pred), "--gt", str(gt), "--out", str(ds / "manifest.csv")],
                 ["fuse", "run", str(pred), "--gt", str(gt), "--out", str(ds / ".saropt.json")]):
        line = one_line_error(capsys, argv)
        assert f"is part of the output of `saropt synth pairs` in {ds}" in line, line
    assert (ds / "manifest.csv").read_bytes() == manifest
    assert sorted(p.name for p in (ds / "sar_32_oc_0.2").iterdir()) == ["1.png", "2.png", "3.png",
                                                                   "4.png"]
    # beside the dataset's own outputs is fine
    assert main(["fuse", "run", str(pred), "--gt", str(gt), "--out", str(ds / "fused.json")]) == 0


# ------------------------------------------------------------------ 5. two runs at once

def test_a_lock_of_a_reused_pid_is_stale_and_a_fresh_empty_lock_is_held(tmp_path):
    """Before: a lock whose pid was taken by another process after a kill -9 or reboot (here:
    pid 1) blocked the folder for ever; a lock file still being written (empty) was taken for
    stale and deleted, so two runs could both start."""
    import json
    import socket

    from saropt.utils.outdir import LOCK, OutDirError, folder_lock

    out = tmp_path / "o"
    out.mkdir()
    (out / LOCK).write_text(json.dumps({"pid": 1, "host": socket.gethostname(),
                                        "command": "data cache", "since": "then",
                                        "started": -1}))
    with folder_lock(out, "data cache"):  # pid 1 lives, but is not the run that locked
        assert json.loads((out / LOCK).read_text())["pid"] == os.getpid()
    (out / LOCK).write_text("")  # created, not yet written
    with pytest.raises(OutDirError, match="being locked by another saropt run"):
        with folder_lock(out, "data cache"):
            pass
    os.utime(out / LOCK, (0, 0))  # an old empty lock: a run died while writing it
    with folder_lock(out, "data cache"):
        pass
    assert not (out / LOCK).exists()


# ------------------------------------------------------------------ 3. unfinished outputs

def test_readers_of_a_part_of_an_unfinished_output_refuse_it(capsys, tmp_path):
    """Before: only a dataset's root was checked; ``bnn embed`` of ``DATASET/sar_32_oc_0.2``
    and ``detect eval --dataset hrsid --root OUT/hrsid`` read a killed run's partial output."""
    import json

    from saropt.bnn.embed import image_files
    from saropt.errors import SaroptError
    from saropt.utils.outdir import STAMP

    ds = tmp_path / "ds"
    assert main(["synth", "pairs", "--n", "2", "--patch-size", "32", "--scene-size", "64",
                 "--out", str(ds), "--quiet"]) == 0
    assert len(image_files(ds / "sar_32_oc_0.2")) == 2  # finished: read
    stamp = json.loads((ds / STAMP).read_text())
    (ds / STAMP).write_text(json.dumps({**stamp, "complete": False}))  # as a kill -9 leaves it
    with pytest.raises(SaroptError, match=r"sar_32_oc_0.2 is part of .*ds, an unfinished "
                       r"`saropt synth pairs` output"):
        image_files(ds / "sar_32_oc_0.2")
    hrsid = tmp_path / "ships" / "hrsid"
    hrsid.mkdir(parents=True)
    (hrsid.parent / STAMP).write_text(json.dumps({"command": "synth ships", "complete": False,
                                                  "outputs": ["hrsid", "ssdd"]}))
    line = one_line_error(capsys, ["detect", "eval", "--dataset", "hrsid", "--root", str(hrsid),
                                   "--pred", str(tmp_path / "p.json"), "--out",
                                   str(tmp_path / "ev")])
    assert "an unfinished `saropt synth ships` output" in line, line


def test_single_file_outputs_remove_their_killed_temporaries(tmp_path):
    """Before: a killed ``fuse run``/``detect predict``/``bnn embed`` left
    ``.fused.XXXXXXXX.tmp.json`` beside its output for ever (only run folders were cleaned)."""
    from saropt.utils.outdir import check_out_file

    old = tmp_path / ".fused.ab12CD34.tmp.json"   # a killed write of fused.json
    live = tmp_path / ".fused.zz99YY88.tmp.json"  # another run writing it right now
    other = tmp_path / ".other.ab12CD34.tmp.json"  # another output's
    for p in (old, live, other):
        p.write_text("partial")
    os.utime(old, (0, 0))
    os.utime(other, (0, 0))
    check_out_file(tmp_path / "fused.json")
    assert not old.exists() and live.exists() and other.exists()


def test_an_output_that_is_also_an_input_is_refused(capsys, tmp_path):
    """Before: ``fuse run pred.json --gt gt.json --out gt.json`` replaced the ground truth with
    the fused predictions and exited 0; ``detect predict --out a.json --gt-out a.json`` wrote
    both into one file."""
    from _qxs_fixtures import write_tiny_coco

    gt, pred = write_tiny_coco(tmp_path)
    before = gt.read_bytes()
    line = one_line_error(capsys, ["fuse", "run", str(pred), "--gt", str(gt), "--out",
                                   str(tmp_path / "." / "gt.json")])
    assert "is the same file as" in line and "gt.json" in line
    assert gt.read_bytes() == before
    line = one_line_error(capsys, ["detect", "predict", str(tmp_path / "c.ckpt"), "--out",
                                   str(tmp_path / "a.json"), "--gt-out", str(tmp_path / "a.json"),
                                   "--device", "cpu"])
    assert "--gt-out" in line and "is the same file as" in line


#: bare int/float flags that are right as they are: NaN is a valid nodata value of float
#: rasters; an image id may be any integer
BARE_NUMBER_FLAGS = {("detect", "scene", "--nodata"), ("detect", "scene", "--image-id")}


def test_every_number_flag_is_range_checked_where_parsed():
    """The root of kind 2 for flags: a bare ``type=int``/``type=float`` accepts NaN, inf,
    negative and huge values (``--merge-iou nan``, ``--batch-size 0``); every number flag of
    the argparse tree uses a ``saropt.cli_types`` type (a command added later is covered)."""
    import argparse

    from test_cli_faults import leaf_commands

    from saropt.cli import build_parser

    bare = []
    for words, parser in leaf_commands(build_parser()).items():
        for action in parser._actions:
            if action.type in (int, float) and action.option_strings:
                bare.append((*words, action.option_strings[0]))
    scene = leaf_commands(build_parser()).get(("detect", "scene"))
    merge = [a for a in (scene._actions if scene else []) if "--merge-iou" in a.option_strings]
    if merge and merge[0].type is float:  # typed on branch test-15 (issue 15), not merged yet
        bare = [b for b in bare if b[:2] != ("detect", "scene")]
    assert sorted(set(bare) - BARE_NUMBER_FLAGS) == []
    assert isinstance(build_parser(), argparse.ArgumentParser)


def test_detect_eval_of_no_detections_says_so(caplog, tmp_path):
    """Before: an empty predictions file gave AP 0.0 everywhere, exit 0, no word about it."""
    import json

    from _qxs_fixtures import write_tiny_coco

    gt, _ = write_tiny_coco(tmp_path)
    empty = tmp_path / "empty.json"
    empty.write_text("[]")
    assert main(["detect", "eval", "--gt", str(gt), "--pred", str(empty), "--out",
                 str(tmp_path / "ev"), "--gallery", "0"]) == 0
    assert "no detections on the ground truth's images; every AP is 0" in caplog.text
    metrics = json.loads((tmp_path / "ev" / "metrics.json").read_text())
    assert any("no detections" in w for w in metrics["warnings"])


@pytest.mark.parametrize("content", [b'{"seed": 0', b"\xff\xfe{}", b"[1, 2]"])
def test_a_damaged_split_json_is_a_one_line_error(tmp_path, content):
    from saropt.data.splits import read_split_info
    from saropt.errors import DataError

    (tmp_path / "split.json").write_bytes(content)
    with pytest.raises(DataError, match="split.json"):
        read_split_info(tmp_path)


@pytest.mark.parametrize("value, says", [
    ("0", "a device count must be >= 1"), ("-5", "a device count must be >= 1"),
    ("abc", 'give "auto", a device count'), ("[0,0]", "distinct indices"),
])
def test_trainer_devices_are_checked_with_the_config(value, says):
    """Before: ``trainer.devices=0`` passed the config, created the run folder, then failed
    inside Lightning as an unexpected MisconfigurationException (not a ValueError)."""
    from saropt.config import ConfigError, build_config
    from saropt.engine import TrainerConfig

    with pytest.raises(ConfigError, match="trainer|devices") as info:
        build_config(TrainerConfig, {}, [f"devices={value}"])
    assert says in str(info.value)
    for good, parsed in (("auto", "auto"), ("2", 2), ("-1", -1), ("[0,1]", [0, 1]),
                         ("'0,1'", [0, 1])):
        assert build_config(TrainerConfig, {}, [f"devices={good}"]).devices == parsed


def test_lightning_misconfiguration_is_a_one_line_error(monkeypatch, tmp_path):
    from lightning.fabric.utilities.exceptions import MisconfigurationException

    import saropt.engine as engine
    from saropt.errors import SaroptError

    def refuse(*args, **kwargs):
        raise MisconfigurationException("`Trainer(devices=0)` value is not a valid input")

    monkeypatch.setattr(engine, "_trainer", refuse)
    with pytest.raises(SaroptError, match="trainer settings rejected by Lightning"):
        engine.make_trainer(engine.TrainerConfig(progress_bar=False), tmp_path)


def test_input_channels_are_bounded(capsys):
    """Before: ``--in-chans 100000`` (or ``model.in_chans``) built a first conv of 100000
    planes; 64 is the most any SAR product needs."""
    from saropt.config import ConfigError, build_config
    from saropt.detect.module import ModelConfig

    line = one_line_error(capsys, ["fuse", "osd-transfer", "x.ckpt", "--in-chans", "100000"])
    assert "--in-chans: must be between 1 and 64" in line
    with pytest.raises(ConfigError, match="in_chans"):
        build_config(ModelConfig, {"name": "faster_rcnn_r18_fpn"}, ["in_chans=100000"])


def test_an_unfinished_split_is_not_read(tmp_path):
    """Before: a killed ``data split`` (train.txt written, the others not) was read as a split
    with an empty test set."""
    import json

    from saropt.data.splits import read_split
    from saropt.errors import SaroptError
    from saropt.utils.outdir import STAMP

    (tmp_path / "train.txt").write_text("1\n2\n")
    (tmp_path / "test.txt").write_text("3\n")
    assert read_split(tmp_path)["train"] == ["1", "2"]  # a published list: no stamp, read
    (tmp_path / STAMP).write_text(json.dumps({"command": "data split", "complete": False}))
    with pytest.raises(SaroptError, match="unfinished `saropt data split` output"):
        read_split(tmp_path)
