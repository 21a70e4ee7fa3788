"""BNN training throughput (pairs/s): the Lightning path (``saropt.engine.make_trainer`` +
``BNNModule``) against a plain PyTorch loop over the same model, data and optimiser, in one run.

    .venv/bin/python benchmarks/bench_bnn_train.py                 # CPU: R18 + R50, 256 px
    .venv/bin/python benchmarks/bench_bnn_train.py --device cuda   # + model FLOP utilisation

Each cell: ``--warmup`` steps untimed, then ``--steps`` timed steps of batch ``--batch`` (pairs);
a path's time is its fastest step (start of one step to the start of the next).
FLOPs per pair are counted once (forward + backward, both encoders) with
``torch.utils.flop_counter``; MFU = achieved FLOP/s / peak (``--peak-tflops``, or a table of
known GPUs). Set ``MALLOC_MMAP_MAX_=0 MALLOC_TRIM_THRESHOLD_=200000000000`` for CPU timings.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import tempfile
import time
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset

from saropt.bnn.config import BNNConfig
from saropt.bnn.loss import bnn_loss
from saropt.utils.table import format_table

#: dense peak TFLOP/s by GPU name fragment: (bf16 tensor core, fp32 without TF32)
PEAK_TFLOPS = {"H100": (989.0, 67.0), "H200": (989.0, 67.0), "A100": (312.0, 19.5),
               "L40S": (362.0, 91.6), "A10": (125.0, 31.2), "V100": (125.0, 15.7)}


class RandomPairs(Dataset):
    """``n`` random pairs kept in memory, so both paths time compute, not decoding."""

    def __init__(self, n: int, size: int) -> None:
        g = torch.Generator().manual_seed(0)
        self.sar = torch.rand(n, 1, size, size, generator=g)
        self.opt = torch.rand(n, 3, size, size, generator=g)
        self.label = (torch.arange(n) % 2).float()

    def __len__(self) -> int:
        return len(self.label)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {"sar": self.sar[i], "opt": self.opt[i], "label": self.label[i]}


def make_config(arch: str, size: int, precision: str, device: str) -> BNNConfig:
    return BNNConfig.model_validate({
        "model": {"arch": arch, "pool": "paper" if size >= 128 else "adaptive"},
        "data": {"patch_size": size},
        "trainer": {"precision": precision, "channels_last": precision != "32-true",
                    "accelerator": "gpu" if device == "cuda" else "cpu", "devices": 1,
                    "progress_bar": False, "max_epochs": 1, "resume": False,
                    "log_every_n_steps": 50}})


def sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


class StepTimer:
    """Lightning callback stamping the start of every training step (after a device sync)."""

    def __init__(self, device: str) -> None:
        import lightning as L

        self.stamps: list[float] = []

        class _CB(L.Callback):
            def on_train_batch_start(cb, trainer, pl_module, batch, batch_idx):  # noqa: N805
                sync(device)
                self.stamps.append(time.perf_counter())

        self.callback = _CB()


def best_step(stamps: list[float], warmup: int, steps: int) -> float:
    """Fastest of the timed steps (seconds): on a shared machine other processes only ever add
    time, so the minimum is the least noisy estimate of the path's own cost."""
    return min(b - a for a, b in zip(stamps[warmup:warmup + steps],
                                     stamps[warmup + 1:warmup + steps + 1]))


def lightning_path(cfg: BNNConfig, loader: DataLoader, warmup: int, steps: int,
                   device: str) -> float:
    """Seconds per step (best) through ``make_trainer`` + ``BNNModule`` (full step cycle:
    fetch, forward, backward, optimiser, logging and hooks)."""
    from saropt.bnn.module import BNNModule
    from saropt.engine import make_trainer

    torch.manual_seed(0)
    module = BNNModule(cfg.model_dump(mode="json"))
    timer = StepTimer(device)
    tcfg = cfg.trainer.model_copy(update={"limit_train_batches": warmup + steps + 1,
                                          "limit_val_batches": 0})
    with tempfile.TemporaryDirectory() as out:
        trainer = make_trainer(tcfg, out, extra_callbacks=[timer.callback])
        trainer.fit(module, train_dataloaders=loader)
    return best_step(timer.stamps, warmup, steps)


def plain_path(cfg: BNNConfig, loader: DataLoader, warmup: int, steps: int,
               device: str) -> float:
    """Seconds per step (best) of a hand-written loop over the same model (same cycle)."""
    from saropt.bnn.model import BNN

    torch.manual_seed(0)
    model = BNN.from_config(cfg).to(device).train()
    fmt = torch.channels_last if cfg.trainer.channels_last else torch.contiguous_format
    model = model.to(memory_format=fmt)
    o = cfg.optim
    opt = torch.optim.SGD(model.parameters(), lr=o.lr, momentum=o.momentum,
                          weight_decay=o.weight_decay)
    amp = (torch.autocast(device, dtype=torch.bfloat16) if cfg.trainer.precision == "bf16-mixed"
           else contextlib.nullcontext())
    stamps: list[float] = []
    for i, batch in enumerate(loader):
        sync(device)
        stamps.append(time.perf_counter())
        if i == warmup + steps:
            break
        sar = batch["sar"].to(device, non_blocking=True).contiguous(memory_format=fmt)
        opt_img = batch["opt"].to(device, non_blocking=True).contiguous(memory_format=fmt)
        with amp:
            d = model(sar, opt_img)
        loss = bnn_loss(d, batch["label"].to(device))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return best_step(stamps, warmup, steps)


def flops_per_pair(cfg: BNNConfig, size: int) -> float:
    """Forward + backward FLOPs of both encoders for one pair, counted on the meta device."""
    from torch.utils.flop_counter import FlopCounterMode

    from saropt.bnn.model import BNN

    model = BNN.from_config(cfg)
    model = model.to_empty(device="meta")
    sar = torch.empty(2, 1, size, size, device="meta")
    opt = torch.empty(2, 3, size, size, device="meta")
    with FlopCounterMode(display=False) as counter:
        model(sar, opt).sum().backward()
    return counter.get_total_flops() / 2


def peak_tflops(device: str, precision: str, override: float | None) -> float | None:
    if override:
        return override
    if device != "cuda":
        return None
    name = torch.cuda.get_device_name()
    for key, (bf16, fp32) in PEAK_TFLOPS.items():
        if key in name:
            return bf16 if "bf16" in precision else fp32
    return None


def run_cell(arch: str, precision: str, args: argparse.Namespace) -> dict[str, Any]:
    cfg = make_config(arch, args.size, precision, args.device)
    n = args.batch * (args.warmup + args.steps + 2)
    loader = DataLoader(RandomPairs(n, args.size), batch_size=args.batch, shuffle=False,
                        num_workers=0, pin_memory=args.device == "cuda")
    pairs = args.batch
    t_plain = plain_path(cfg, loader, args.warmup, args.steps, args.device)
    t_light = lightning_path(cfg, loader, args.warmup, args.steps, args.device)
    row = {"arch": arch, "precision": precision, "size": args.size,
           "plain_pairs_s": pairs / t_plain, "lightning_pairs_s": pairs / t_light,
           "lightning_loss_pct": 100 * (t_light - t_plain) / t_plain}
    flops = flops_per_pair(cfg, args.size)
    row["gflop_per_pair"] = flops / 1e9
    peak = peak_tflops(args.device, precision, args.peak_tflops)
    if peak:
        row["mfu_lightning_pct"] = 100 * flops * row["lightning_pairs_s"] / (peak * 1e12)
        row["mfu_plain_pct"] = 100 * flops * row["plain_pairs_s"] / (peak * 1e12)
    print(json.dumps(row), file=sys.stderr, flush=True)
    return row


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    p.add_argument("--archs", nargs="+", default=["resnet18", "resnet50"])
    p.add_argument("--precisions", nargs="+", default=["32-true", "bf16-mixed"])
    p.add_argument("--size", type=int, default=256)
    p.add_argument("--batch", type=int, default=20)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--peak-tflops", type=float, default=None,
                   help="peak TFLOP/s for MFU (default: known GPUs; none on CPU)")
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    if args.device == "cuda" and not torch.cuda.is_available():
        p.error("--device cuda but no CUDA device is visible")
    if args.device == "cuda":
        torch.backends.cudnn.benchmark = True
    rows = [run_cell(a, prec, args) for a in args.archs for prec in args.precisions]
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    headers = ["arch", "precision", "px", "plain pairs/s", "Lightning pairs/s",
               "Lightning loss %", "GFLOP/pair"]
    has_mfu = any("mfu_lightning_pct" in r for r in rows)
    headers += ["MFU Lightning %", "MFU plain %"] if has_mfu else []
    table = []
    for r in rows:
        cells = [r["arch"], r["precision"] + (" +CL" if r["precision"] != "32-true" else ""),
                 r["size"], r["plain_pairs_s"], r["lightning_pairs_s"],
                 f"{r['lightning_loss_pct']:+.1f}", f"{r['gflop_per_pair']:.1f}"]
        if has_mfu:
            cells += [f"{r.get('mfu_lightning_pct', float('nan')):.1f}",
                      f"{r.get('mfu_plain_pct', float('nan')):.1f}"]
        table.append(cells)
    device = torch.cuda.get_device_name() if args.device == "cuda" else \
        f"CPU, {torch.get_num_threads()} threads"
    print(f"# BNN training throughput, batch {args.batch}, best of {args.steps} timed steps "
          f"after {args.warmup} warm-up, {device}")
    print(format_table(table, headers, floatfmt=".2f"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
