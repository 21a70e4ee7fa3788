"""Does the paper's BNN recipe learn at CPU scale, and if not, why? Learning curves per recipe.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_bnn_recipe.py --out bench_out/bnn_recipe

Trains the synthetic CPU-scale BNN (``bnn/synthetic_resnet18``: two ResNet18 encoders, 64 px,
adaptive 2x2 pooling, 50-d sigmoid codes) on ``--pairs`` synthetic QXS-layout training pairs
plus as many false pairs redrawn every epoch (1:1, as the paper), batch 20, fp32, with each
recipe in ``--recipes`` from the same initial weights and the same batches:

- ``paper``: SGD lr 0.01, momentum 0.9, weight decay 1e-4 (the paper configs' defaults);
- ``paper_gain10``: the same, the code layer's initial weights x 10
  (``model.head_init_gain=10``): initial codes that depend on the input;
- ``adamw``: the demo's AdamW lr 0.003 (reference);
- (not run by default) ``paper_bn_eval``: BatchNorm statistics frozen at their init;
  ``paper_head_lr``: the code head at lr / 10; ``paper_warmup``: linear warm-up over 3 epochs.

Per epoch it records the training loss, the mean d of true and of false training pairs, the
fraction of code units saturated (``|z - 0.5| > 0.49``), how much the codes depend on the
input (their standard deviation over the batch, mean over units), and on ``--val`` fixed
held-out pairs the ROC-AUC and accuracy at d < 0.5. Writes ``curves.png``, ``results.json``
and a table.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from saropt.bnn.config import BNNConfig
from saropt.bnn.loss import bnn_loss_terms
from saropt.bnn.metrics import matching_metrics
from saropt.bnn.model import BNN, distance
from saropt.config import load_config
from saropt.data.pairs import draw_negatives
from saropt.utils.table import format_table

RECIPES = ("paper", "paper_gain10", "adamw", "paper_bn_eval", "paper_head_lr", "paper_warmup")
DEFAULT_RECIPES = ("paper", "paper_gain10", "adamw")


def load_pairs(n: int, seed: int, size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` synthetic co-registered pairs (SAR (n,1,s,s), optical (n,3,s,s)) in [0, 1]."""
    from saropt.data.qxs import QXSSAROPT
    from saropt.synth import write_qxs_pairs

    with tempfile.TemporaryDirectory() as tmp:
        root = write_qxs_pairs(tmp, n, seed=seed, patch_size=size, scene_size=512,
                               progress=False)
        ds = QXSSAROPT(root, sar_dir=f"sar_{size}_oc_0.2", opt_dir=f"opt_{size}_oc_0.2",
                       patch_size=size)
        samples = [ds[i] for i in range(len(ds))]
    return torch.stack([s["sar"] for s in samples]), torch.stack([s["opt"] for s in samples])


def make_model(seed: int, size: int, recipe: str = "paper") -> BNN:
    gain = 10.0 if recipe == "paper_gain10" else 1.0
    cfg = load_config(BNNConfig, "bnn/synthetic_resnet18", [f"data.patch_size={size}",
                                                             f"model.head_init_gain={gain}"])
    torch.manual_seed(seed)
    return BNN.from_config(cfg)


def optimiser(model: BNN, recipe: str) -> torch.optim.Optimizer:
    if recipe == "adamw":
        return torch.optim.AdamW(model.parameters(), lr=0.003, weight_decay=1e-4)
    head = [p for n, p in model.named_parameters() if ".head." in n]
    body = [p for n, p in model.named_parameters() if ".head." not in n]
    head_lr = 0.001 if recipe == "paper_head_lr" else 0.01
    return torch.optim.SGD([{"params": body, "lr": 0.01}, {"params": head, "lr": head_lr}],
                           momentum=0.9, weight_decay=1e-4)


@torch.no_grad()
def evaluate(model: BNN, sar: torch.Tensor, opt: torch.Tensor) -> dict[str, float]:
    """Fixed 1:1 pairs: (i, i) true, (i, i+1) false."""
    model.eval()
    n = len(sar)
    d_true = model(sar, opt)
    d_false = model(sar, opt[(torch.arange(n) + 1) % n])
    d = torch.cat([d_true, d_false]).numpy()
    y = np.r_[np.ones(n), np.zeros(n)]
    m = matching_metrics(d, y, 0.5)
    return {"val_auc": float(m["roc_auc"]), "val_acc": float(m["accuracy"])}


def set_bn_eval(model: BNN) -> None:
    for m in model.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            m.eval()


def train(recipe: str, data: dict[str, torch.Tensor], epochs: int, seed: int,
          batch: int = 20) -> list[dict[str, float]]:
    model = make_model(seed, data["sar"].shape[-1], recipe)
    opt = optimiser(model, recipe)
    base_lrs = [g["lr"] for g in opt.param_groups]
    n = len(data["sar"])
    steps_per_epoch = -(-2 * n // batch)
    curve = []
    step = 0
    for epoch in range(epochs):
        model.train()
        if recipe == "paper_bn_eval":
            set_bn_eval(model)
        a, b = draw_negatives(n, n, seed, epoch)
        s_idx = torch.from_numpy(np.r_[np.arange(n), a])
        o_idx = torch.from_numpy(np.r_[np.arange(n), b])
        label = torch.from_numpy(np.r_[np.ones(n), np.zeros(n)]).float()
        order = torch.randperm(2 * n, generator=torch.Generator().manual_seed(seed * 1000 + epoch))
        losses, d_pos, d_neg, sat, spread = [], [], [], [], []
        t0 = time.perf_counter()
        for i in range(0, 2 * n, batch):
            if recipe == "paper_warmup":
                f = min(1.0, (step + 1) / (3 * steps_per_epoch))
                for g, lr in zip(opt.param_groups, base_lrs):
                    g["lr"] = lr * f
            j = order[i:i + batch]
            z_s = model.sar(data["sar"][s_idx[j]])
            z_o = model.opt(data["opt"][o_idx[j]])
            d = distance(z_s, z_o)
            loss = bnn_loss_terms(d, label[j])[0]
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            step += 1
            losses.append(loss.item())
            y = label[j] > 0.5
            d_pos += d[y].detach().tolist()
            d_neg += d[~y].detach().tolist()
            z = torch.cat([z_s, z_o]).detach()
            sat.append(float(((z - 0.5).abs() > 0.49).float().mean()))
            spread.append(float((z_s.detach().std(0).mean() + z_o.detach().std(0).mean()) / 2))
        row = {"epoch": epoch + 1, "loss": float(np.mean(losses)),
               "d_true": float(np.mean(d_pos)), "d_false": float(np.mean(d_neg)),
               "saturated": float(np.mean(sat)), "code_std": float(np.mean(spread)),
               "seconds": time.perf_counter() - t0,
               **evaluate(model, data["val_sar"], data["val_opt"])}
        curve.append(row)
        print(f"{recipe:14s} epoch {row['epoch']:3d} loss {row['loss']:.4f} "
              f"d true {row['d_true']:.3f} false {row['d_false']:.3f} sat {row['saturated']:.2f} "
              f"code std {row['code_std']:.3f}"
              f" val AUC {row['val_auc']:.3f} ({row['seconds']:.0f} s)", flush=True)
    return curve


def plot(results: dict[str, list[dict[str, float]]], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 5, figsize=(21, 3.8))
    for recipe, curve in results.items():
        ep = [r["epoch"] for r in curve]
        axes[0].plot(ep, [r["loss"] for r in curve], label=recipe)
        axes[1].plot(ep, [r["d_true"] for r in curve], label=f"{recipe} true")
        axes[1].plot(ep, [r["d_false"] for r in curve], "--", color=axes[1].lines[-1].get_color())
        axes[2].plot(ep, [r["code_std"] for r in curve], label=recipe)
        axes[3].plot(ep, [r["saturated"] for r in curve], label=recipe)
        axes[4].plot(ep, [r["val_auc"] for r in curve], label=recipe)
    axes[0].axhline(0.25, color="grey", lw=0.8, ls=":")
    for ax, t in zip(axes, ("training loss (0.25: d = 0.5 for all)",
                            "mean d: true (solid), false (dashed)",
                            "code std over inputs (mean over units)",
                            "code units saturated (|z-0.5|>0.49)", "held-out ROC-AUC")):
        ax.set_title(t, fontsize=9)
        ax.set_xlabel("epoch")
    axes[4].legend(fontsize=7)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default="bench_out/bnn_recipe")
    p.add_argument("--recipes", nargs="+", default=list(DEFAULT_RECIPES), choices=RECIPES)
    p.add_argument("--pairs", type=int, default=300)
    p.add_argument("--val", type=int, default=100)
    p.add_argument("--epochs", type=int, default=15)
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args(argv)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(1)
    sar, opt = load_pairs(a.pairs + a.val, a.seed, a.size)
    data = {"sar": sar[:a.pairs], "opt": opt[:a.pairs], "val_sar": sar[a.pairs:],
            "val_opt": opt[a.pairs:]}
    results: dict[str, list[dict[str, float]]] = {}
    for r in a.recipes:  # saved after each recipe, so a killed run keeps what it finished
        results[r] = train(r, data, a.epochs, a.seed)
        (out / "results.json").write_text(json.dumps({"args": vars(a), "curves": results}))
    rows = [[r, c[-1]["loss"], c[-1]["d_true"], c[-1]["d_false"], c[-1]["code_std"],
             c[-1]["saturated"],
             max(x["val_auc"] for x in c), c[-1]["val_auc"], c[-1]["val_acc"]]
            for r, c in results.items()]
    table = format_table(rows, ["recipe", "loss", "d true", "d false", "code std", "saturated",
                                "best val AUC", "last val AUC", "last val acc"])
    print(table)
    title = (f"BNN resnet18 {a.size} px, {a.pairs} train pairs + {a.pairs} false/epoch, "
             f"batch 20, {a.epochs} epochs, {a.val} held-out pairs, seed {a.seed}")
    plot(results, out / "curves.png", title)
    summary = {"args": vars(a), "curves": results, "table": table}
    (out / "results.json").write_text(json.dumps(summary, indent=1))
    return summary


if __name__ == "__main__":
    main()
