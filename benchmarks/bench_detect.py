"""Ship-detector speed (images/s): training steps (forward + backward + SGD) and inference, for
every registered detector at 512 px and at the paper's input sizes.

    MALLOC_MMAP_MAX_=0 MALLOC_TRIM_THRESHOLD_=200000000000 \\
        .venv/bin/python benchmarks/bench_detect.py                   # all detectors, CPU
    .venv/bin/python benchmarks/bench_detect.py --detectors faster_rcnn_r18_fpn yolov3_r18 \\
        --sizes 512 --threads 1 --json
    .venv/bin/python benchmarks/bench_detect.py --device cuda --batch 8 --steps 10

Each cell: ``--warmup`` untimed steps, then ``--steps`` timed steps of ``--batch`` one-channel
images with 3 ships each. Paper sizes (paper 003 sec. 4.1): Faster R-CNN 800 x 800 (HRSID as is)
and 1000 x 600 (SSDD), YOLOv3 416 x 416. ``--threads 1`` is much faster than 2 on shared,
oversubscribed CPUs.
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

import torch

from saropt.detect.models import REGISTRY, create_detector, list_detectors
from saropt.utils.table import format_table

PAPER_SIZES = {"faster_rcnn": [(800, 800), (1000, 600)], "yolov3": [(416, 416)]}


def _batch(b: int, w: int, h: int, device: str) -> tuple[list[torch.Tensor], list[dict]]:
    g = torch.Generator().manual_seed(0)
    images = [torch.rand(1, h, w, generator=g).to(device) for _ in range(b)]
    box = torch.tensor([[0.1 * w, 0.1 * h, 0.2 * w, 0.15 * h], [0.5 * w, 0.5 * h, 0.56 * w,
                        0.62 * h], [0.7 * w, 0.2 * h, 0.74 * w, 0.3 * h]], device=device)
    targets = [{"boxes": box, "labels": torch.ones(3, dtype=torch.int64, device=device)}
               for _ in range(b)]
    return images, targets


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def _options(family: str, w: int, h: int) -> dict[str, Any]:
    if family == "faster_rcnn":
        return {"min_size": min(w, h), "max_size": max(w, h)}
    return {"input_size": max(w, h), "train_sizes": None}


def bench_one(name: str, w: int, h: int, batch: int, steps: int, warmup: int,
              device: str) -> dict[str, Any]:
    """Train and inference images/s of one detector at one input size."""
    model, _ = create_detector(name, in_chans=1, **_options(REGISTRY[name].family, w, h))
    model.to(device)
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=1e-4,
                          momentum=0.9)
    images, targets = _batch(batch, w, h, device)
    model.train()
    for i in range(warmup + steps):
        if i == warmup:
            _sync(device)
            t0 = time.perf_counter()
        loss = sum(model(images, targets).values())
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    _sync(device)
    train_ips = batch * steps / (time.perf_counter() - t0)
    model.eval()
    with torch.no_grad():
        for i in range(warmup + steps):
            if i == warmup:
                _sync(device)
                t0 = time.perf_counter()
            model(images)
    _sync(device)
    infer_ips = batch * steps / (time.perf_counter() - t0)
    params = sum(p.numel() for p in model.parameters()) / 1e6
    return {"detector": name, "size": f"{w}x{h}", "batch": batch, "params_M": params,
            "train_img_s": train_ips, "infer_img_s": infer_ips}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--detectors", nargs="*", default=list_detectors())
    p.add_argument("--sizes", nargs="*", type=int, default=[512],
                   help="square sizes to test besides the paper sizes")
    p.add_argument("--no-paper-sizes", action="store_true")
    p.add_argument("--batch", type=int, default=2)
    p.add_argument("--steps", type=int, default=2)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: leave as is)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    rows = []
    for name in args.detectors:
        sizes = [(s, s) for s in args.sizes]
        if not args.no_paper_sizes:
            sizes += [s for s in PAPER_SIZES[REGISTRY[name].family] if s not in sizes]
        for w, h in sizes:
            r = bench_one(name, w, h, args.batch, args.steps, args.warmup, args.device)
            rows.append(r)
            print(f"  {name} {w}x{h}: train {r['train_img_s']:.2f} img/s, "
                  f"inference {r['infer_img_s']:.2f} img/s", flush=True)
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        print(f"\ndevice {args.device}, torch threads {torch.get_num_threads()}, batch "
              f"{args.batch}, {args.steps} timed steps after {args.warmup} warm-up")
        print(format_table([[r["detector"], r["size"], r["params_M"], r["train_img_s"],
                             r["infer_img_s"]] for r in rows],
                           ["detector", "input", "params (M)", "train img/s", "infer img/s"],
                           floatfmt=".2f"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
