"""DDP on CPU (gloo, 2 processes), launched as a user launches it (a script; Lightning re-runs
it for rank 1): a BNN run and a detector run with ``trainer.strategy=ddp trainer.devices=2``.
Each rank sees other training pairs, false pairs change across epochs, validation metrics are
computed on the pairs of both ranks (equal to the metrics of the whole set), and a second
launch resumes from the checkpoint."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

HERE = Path(__file__).resolve().parent
SRC = HERE.parent / "src"
DDP = ["trainer.strategy=ddp", "trainer.devices=2", "trainer.accelerator=cpu",
       "trainer.precision=32-true", "trainer.channels_last=false", "trainer.progress_bar=false",
       "trainer.log_every_n_steps=1"]
PATCH = 32

pytestmark = pytest.mark.slow  # two DDP launches of 2 processes each: ~36 s on 2 cores


def _launch(kind: str, rec: Path, config: str, args: list[str]) -> list[dict]:
    env = {**os.environ, "PYTHONPATH": f"{SRC}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
           "OMP_NUM_THREADS": "1", "PL_DISABLE_FORK": "1"}
    # own process group: on a timeout (this one or pytest-timeout's) both ranks are killed, not
    # only rank 0 (Lightning's rank 1 would wait in gloo, orphaned)
    with subprocess.Popen([sys.executable, str(HERE / "_ddp_run.py"), kind, str(rec), config,
                           *args, *DDP], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          text=True, start_new_session=True) as child:
        try:
            out, err = child.communicate(timeout=300)
        except BaseException:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(child.pid, signal.SIGKILL)
            raise
    proc = subprocess.CompletedProcess(child.args, child.returncode, out, err)
    assert proc.returncode == 0, proc.stderr[-3000:]
    ranks = [json.loads((rec / f"rank{r}.json").read_text()) for r in range(2)]
    assert all(r["world_size"] == 2 for r in ranks)
    return ranks


@pytest.fixture(scope="module")
def bnn_data(tmp_path_factory):
    from saropt.data import make_split
    from saropt.synth.writers import write_qxs_pairs

    base = tmp_path_factory.mktemp("ddp_bnn")
    root = write_qxs_pairs(base / "qxs", 30, seed=0, patch_size=PATCH, scene_size=256,
                           max_calm_fraction=0.2, progress=False)
    make_split(root, base / "split", train=16, val=7, test=7, seed=0,
               sar_dir=f"sar_{PATCH}_oc_0.2", opt_dir=f"opt_{PATCH}_oc_0.2")
    val = base / "split" / "val_pairs.csv"  # an odd count: 2 ranks cannot split it evenly
    lines = val.read_text().splitlines()
    val.write_text("\n".join(lines[:-1]) + "\n")
    return base, root


def test_bnn_ddp_epochs_metrics_and_resume(bnn_data) -> None:
    from saropt.bnn.export import load_module
    from saropt.bnn.metrics import matching_metrics
    from saropt.data import QXSSAROPT, EvalPairs, read_pairs

    base, root = bnn_data
    out = base / "run"
    args = [f"data.root={root}", f"data.split={base / 'split'}", f"out_dir={out}",
            "model.arch=test_resnet", "model.conv_width=16", f"data.patch_size={PATCH}",
            f"data.sar_dir=sar_{PATCH}_oc_0.2", f"data.opt_dir=opt_{PATCH}_oc_0.2",
            "data.batch_size=4", "data.eval_batch_size=4", "optim.name=adamw",
            "trainer.max_epochs=1"]
    first = _launch("bnn", base / "rec1", "bnn/synthetic_resnet18", args)
    # resume: a second launch to 2 epochs continues from last.ckpt (epoch 1 only)
    args[-1] = "trainer.max_epochs=2"
    second = _launch("bnn", base / "rec2", "bnn/synthetic_resnet18", args)
    assert {p[0] for r in second for p in r["pairs"]} == {1}
    assert torch.load(out / "checkpoints" / "last.ckpt", weights_only=False)["epoch"] == 1

    def false_pairs(ranks: list[dict], rank: int) -> set:
        return {(p[1], p[2]) for p in ranks[rank]["pairs"] if p[3] == 0.0}

    for ranks in (first, second):  # 16 true + 16 false pairs split over the ranks
        seen = [{(p[1], p[2], p[3]) for p in r["pairs"]} for r in ranks]
        assert len(seen[0]) == len(seen[1]) == 16 and seen[0] != seen[1]
        assert false_pairs(ranks, 0) and false_pairs(ranks, 1)
        assert len(seen[0] | seen[1]) == 32
    assert (false_pairs(first, 0) | false_pairs(first, 1)) != \
        (false_pairs(second, 0) | false_pairs(second, 1))  # new false pairs per epoch
    # validation: each rank scored its share, none twice; both report the metrics of the whole
    # set of 13 val pairs (those of the checkpoint's model on all of them)
    val = [r["val"][-1] for r in second]
    assert val[0]["metrics"] == val[1]["metrics"]
    assert sorted(v["n_scored"] for v in val) == [6, 7]
    module = load_module(out / "checkpoints" / "last.ckpt")
    cfg = module.cfg
    pairs = read_pairs(base / "split" / "val_pairs.csv")
    assert len(pairs) == 13
    ds = EvalPairs(QXSSAROPT(root, sar_dir=cfg.data.sar_dir, opt_dir=cfg.data.opt_dir,
                             patch_size=PATCH), pairs)
    items = [ds[i] for i in range(len(ds))]
    with torch.no_grad():
        d = module(torch.stack([x["sar"] for x in items]), torch.stack([x["opt"] for x in items]))
    whole = matching_metrics(d.numpy(), np.array([x["label"] for x in items]), 0.5)
    for k in ("roc_auc", "accuracy", "fpr_at_95tpr"):
        assert val[0]["metrics"][k] == pytest.approx(float(whole[k]), abs=1e-6), k


def test_detector_ddp_epoch_gathers_validation(tmp_path) -> None:
    from test_detect_train import TINY, write_toy_hrsid

    root = write_toy_hrsid(tmp_path / "hrsid", n_train=8, n_test=6)
    tiny = [a for a in TINY if not a.startswith(("trainer.", "data.batch_size"))]
    args = [f"data.root={root}", f"out_dir={tmp_path / 'run'}", "trainer.max_epochs=1",
            "data.batch_size=2", "data.num_workers=0", *tiny]
    ranks = _launch("detect", tmp_path / "rec", "detect/synthetic_faster_rcnn_r18", args)
    seen = [{p[1] for p in r["pairs"]} for r in ranks]
    assert len(seen[0]) == len(seen[1]) == 4 and not seen[0] & seen[1]  # 8 chips, split
    val = [r["val"][-1] for r in ranks]
    assert val[0]["n_scored"] + val[1]["n_scored"] == 6 and val[0]["n_scored"] < 6
    assert val[0]["metrics"] == val[1]["metrics"] and val[0]["metrics"]
    assert (tmp_path / "run" / "checkpoints" / "last.ckpt").is_file()
