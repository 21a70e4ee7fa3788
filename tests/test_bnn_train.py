"""BNN end to end on synthetic co-registered pairs: training through the CLI beats chance on
held-out pairs, a killed run resumes exactly, eval / export / embed work on the result."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch

from saropt.cli import main

pytestmark = pytest.mark.slow  # one 12-epoch training shared by all tests: ~14 s on 2 cores

PATCH = 32
#: a small encoder on small patches, AdamW and a step decay: learns in ~12 short epochs on CPU
TRAIN_ARGS = [
    "bnn/synthetic_resnet18", "model.arch=test_resnet", "model.conv_width=64",
    f"data.patch_size={PATCH}", f"data.sar_dir=sar_{PATCH}_oc_0.2",
    f"data.opt_dir=opt_{PATCH}_oc_0.2", "optim.name=adamw", "optim.lr=0.003",
    "optim.milestones=[8,10]", "optim.gamma=0.3", "trainer.max_epochs=12",
    "trainer.progress_bar=false", "trainer.log_every_n_steps=4", "trainer.precision=32-true",
    "trainer.channels_last=false"]


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    """300 synthetic QXS-layout pairs and a 160 / 40 / 100 split."""
    from saropt.data import make_split
    from saropt.synth.writers import write_qxs_pairs

    base = tmp_path_factory.mktemp("bnn_synth")
    root = write_qxs_pairs(base / "qxs", 300, seed=0, patch_size=PATCH, scene_size=384,
                           max_calm_fraction=0.2, progress=False)
    make_split(root, base / "split", train=160, val=40, test=100, seed=0,
               sar_dir=f"sar_{PATCH}_oc_0.2", opt_dir=f"opt_{PATCH}_oc_0.2")
    return root, base / "split"


#: intra-op threads of the training below: float sums (and so the trained weights) depend on the
#: thread count, so the learned numbers are pinned to one count, whatever the machine has
TRAIN_THREADS = 2


@pytest.fixture(scope="module")
def run(synthetic, tmp_path_factory):
    root, split = synthetic
    out = tmp_path_factory.mktemp("bnn_run") / "run"
    args = TRAIN_ARGS + [f"data.root={root}", f"data.split={split}", f"out_dir={out}"]
    _train(args)
    return out, args


def _train(args: list[str]) -> None:
    """``saropt bnn train ARGS`` on :data:`TRAIN_THREADS` threads."""
    old = torch.get_num_threads()
    torch.set_num_threads(TRAIN_THREADS)
    try:
        assert main(["bnn", "train", *args]) == 0
    finally:
        torch.set_num_threads(old)


def test_training_beats_chance_on_held_out_pairs(run, synthetic):
    from saropt.bnn.evaluate import evaluate

    out, _ = run
    res = evaluate(out / "checkpoints" / "last.ckpt", synthetic[1], out / "eval_test",
                   figures=False)
    t = res["test"]
    assert t["n_pairs"] == 200
    assert t["roc_auc"] > 0.7 and t["accuracy"] > 0.65, t  # chance is 0.5
    assert res["retrieval"]["sar2opt_mrr"] > 2 * np.log(100) / 100  # chance MRR ~ ln(N)/N


def test_resume_after_a_kill_continues_exactly(run, tmp_path):
    """A run killed after epoch 11 (its checkpoint copied as last.ckpt) and restarted ends with
    the same weights as the uninterrupted run."""
    out, args = run
    resumed = tmp_path / "resumed"
    (resumed / "checkpoints").mkdir(parents=True)
    shutil.copy(out / "checkpoints" / "epoch010.ckpt", resumed / "checkpoints" / "last.ckpt")
    args = [a for a in args if not a.startswith("out_dir=")] + [f"out_dir={resumed}"]
    _train(args)
    a = torch.load(out / "checkpoints" / "last.ckpt", weights_only=False)
    b = torch.load(resumed / "checkpoints" / "last.ckpt", weights_only=False)
    assert (a["epoch"], b["epoch"]) == (11, 11)
    for k, v in a["state_dict"].items():
        assert torch.equal(v, b["state_dict"][k]), k


def test_cli_eval_export_embed(run, synthetic, tmp_path, capsys):
    from saropt.bnn.export import load_encoder, load_module

    out, _ = run
    root, split = synthetic
    ckpt = out / "checkpoints" / "last.ckpt"
    capsys.readouterr()
    assert main(["bnn", "eval", str(ckpt), "--split", str(split), "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["val_threshold"]["n_val_pairs"] == 80  # threshold chosen on val pairs
    for name in ("metrics.json", "curves.png", "roc.png", "histograms.png", "gallery.png"):
        assert (out / "eval" / name).is_file(), name
    assert main(["bnn", "export", str(ckpt), "--out", str(tmp_path / "enc")]) == 0
    meta = json.loads((tmp_path / "enc" / "sar_encoder.json").read_text())
    assert meta["metrics"]["roc_auc"] == pytest.approx(res["test"]["roc_auc"])
    assert main(["bnn", "embed", str(tmp_path / "enc" / "sar_encoder.safetensors"),
                 str(root / f"sar_{PATCH}_oc_0.2"), "--modality", "sar",
                 "--out", str(tmp_path / "codes.npy")]) == 0
    codes = np.load(tmp_path / "codes.npy")
    names = (tmp_path / "codes.txt").read_text().split()
    assert codes.shape == (300, 50) and names[:2] == ["1.png", "2.png"]
    from saropt.bnn.embed import read_patch

    x = torch.stack([read_patch(root / f"sar_{PATCH}_oc_0.2" / n, 1, PATCH) for n in names[:4]])
    with torch.no_grad():
        ref = load_module(ckpt).model.sar(x).numpy()
        assert np.allclose(load_encoder(tmp_path / "enc" / "sar_encoder.safetensors")(x).numpy(),
                           ref)
    assert np.allclose(codes[:4], ref, atol=1e-6)
    assert main(["bnn", "eval", str(ckpt), "--split", str(tmp_path / "nowhere")]) == 2


def test_eval_localise_reports_bnn_and_baselines(run, synthetic, tmp_path, capsys):
    out, _ = run
    _, split = synthetic
    ckpt = out / "checkpoints" / "last.ckpt"
    capsys.readouterr()
    assert main(["bnn", "eval", str(ckpt), "--split", str(split), "--out", str(tmp_path),
                 "--localise", "4", "--localise-n", "6", "--json"]) == 0
    loc = json.loads(capsys.readouterr().out)["localise"]
    assert loc["radius"] == 4 and loc["template_px"] == PATCH - 8
    assert set(loc["methods"]) == {"bnn", "ncc", "ncc_grad", "mi"}
    for name, m in loc["methods"].items():
        errs = np.array([r[name]["error_px"] for r in loc["records"]])
        assert m["n"] == 6 and m["mean_px"] == pytest.approx(errs.mean())
        assert m["within_1px"] <= m["within_2px"] <= m["within_3px"] <= m["within_5px"]
        assert m["within_1px"] == pytest.approx((errs <= 1).mean())
    for name in ("localise_errors.png", "localise_dmaps.png"):
        assert (tmp_path / name).is_file(), name
    assert main(["bnn", "eval", str(ckpt), "--split", str(split), "--localise", "4",
                 "--localise-methods", "bnn,sift"]) == 2
