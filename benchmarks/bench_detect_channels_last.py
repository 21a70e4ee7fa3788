"""Why the detectors use channels_last on CUDA only: one CPU training step of a Faster R-CNN
R18-FPN in contiguous and in channels_last memory, same weights and batch.

    MALLOC_MMAP_MAX_=0 MALLOC_TRIM_THRESHOLD_=200000000000 OMP_NUM_THREADS=1 \\
        .venv/bin/python benchmarks/bench_detect_channels_last.py [--size 256]

Prints the four losses and whether the gradients are bit-identical in both layouts, then the
fastest of ``--steps`` forward + backward steps of each (2 images, fp32).
"""

from __future__ import annotations

import argparse
import copy
import time

import torch


def main() -> None:
    from saropt.detect.module import DetectModule

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=256, help="image side (px)")
    ap.add_argument("--steps", type=int, default=4, help="timed steps per layout")
    args = ap.parse_args()
    size = args.size
    cfg = {"model": {"name": "faster_rcnn_r18_fpn", "in_chans": 1,
                     "options": {"min_size": size, "max_size": size}},
           "data": {"dataset": "hrsid", "root": "unused"}}
    torch.manual_seed(0)
    contiguous = DetectModule(cfg, train_image_size=(size, size)).model
    last = copy.deepcopy(contiguous).to(memory_format=torch.channels_last)
    g = torch.Generator().manual_seed(1)
    images = [torch.rand(1, size, size, generator=g) for _ in range(2)]
    boxes = torch.tensor([[10.0, 20.0, 60.0, 40.0], [100.0, 100.0, 120.0, 180.0]])
    targets = [{"boxes": boxes, "labels": torch.tensor([1, 1])} for _ in images]

    def step(model: torch.nn.Module) -> dict[str, float]:
        torch.manual_seed(5)  # the same RPN / RoI sampling in both layouts
        model.zero_grad()
        losses = model(images, targets)
        sum(losses.values()).backward()
        return {k: round(float(v), 9) for k, v in losses.items()}

    for name, model in (("contiguous", contiguous), ("channels_last", last)):
        print(f"{name:14s} losses {step(model)}")
    grads = [(a.grad, b.grad) for a, b in zip(contiguous.parameters(), last.parameters())
             if a.grad is not None]
    same = all(torch.equal(a, b) for a, b in grads)
    worst = max(float((a - b).abs().max()) for a, b in grads)
    print(f"gradients bit-identical: {same} (largest difference {worst:.2e})")
    for name, model in (("contiguous", contiguous), ("channels_last", last)):
        times = []
        for _ in range(args.steps):
            t = time.perf_counter()
            step(model)
            times.append(time.perf_counter() - t)
        print(f"{name:14s} fastest step {min(times):.3f} s ({size} px, 2 images, fp32, "
              f"{torch.get_num_threads()} thread(s))")


if __name__ == "__main__":
    main()
