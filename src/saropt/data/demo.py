"""Demo stage: check the synthetic QXS-layout pairs, split them 70/30, cache them, draw a batch."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from saropt.data.checks import check_dataset, expected_patch_size
from saropt.errors import DataError


def find_pair_dirs(root: Path) -> tuple[str, str]:
    """The ``sar_*`` and ``opt_*`` folders of a QXS-layout root (``sar``/``opt`` also work).

    Raises:
        DataError: when ``root`` has no ``sar*`` or no ``opt*`` folder.
    """
    sar = sorted(p.name for p in root.iterdir() if p.is_dir() and p.name.startswith("sar"))
    opt = sorted(p.name for p in root.iterdir() if p.is_dir() and p.name.startswith("opt"))
    if not sar or not opt:
        raise DataError(f"{root}: no sar*/opt* folders found")
    return sar[0], opt[0]


def _reading_speed(ds: Any, n: int = 40) -> float:
    t0 = time.perf_counter()
    for k in range(min(n, len(ds))):
        ds[k]
    return min(n, len(ds)) / (time.perf_counter() - t0)


def run(ctx: Any) -> None:
    """Demo stage: check, split 70/30 (paper 003 section 4), cache and plot the synthetic pairs.

    Reads ``ctx.artifacts["qxs_root"]`` (from the synthetic-world stage; skipped without it)
    and adds ``qxs_split``, ``qxs_cache``, ``qxs_sar_dir``, ``qxs_opt_dir`` and
    ``qxs_patch_size`` to ``ctx.artifacts``.
    """
    from saropt.data.cache import build_cache
    from saropt.data.qxs import QXSSAROPT
    from saropt.data.splits import make_split

    rep = ctx.report
    rep.section("QXS-SAROPT data layer")
    root = ctx.artifacts.get("qxs_root")
    if not root or not Path(root).is_dir():
        rep.text("Skipped: no QXS-layout dataset from the synthetic-world stage "
                 "(`ctx.artifacts['qxs_root']`).")
        return
    root = Path(root)
    sar_dir, opt_dir = find_pair_dirs(root)
    size = expected_patch_size(sar_dir)
    res = check_dataset(root, sar_dir, opt_dir, patch_size=size, progress=False)
    rep.text(f"`saropt data check {root}`: {res.counts['pairs']} pairs, sizes "
             f"{res.sizes}, modes {res.modes['sar']} (SAR) / {res.modes['opt']} (optical), "
             + ("no problems." if res.ok else f"problems: {res.problems.counts()}."))
    rep.table([(m, s["mean"], s["std"], s["min"], s["max"]) for m, s in res.stats.items() if s],
              ["modality", "mean", "std", "min", "max"])
    split_dir = _split(ctx, root, sar_dir, opt_dir, make_split)
    cache = build_cache(root, ctx.path("data", "cache", "index.json").parent, sar_dir, opt_dir,
                        size, progress=False)
    png_ds = QXSSAROPT(root, sar_dir=sar_dir, opt_dir=opt_dir, patch_size=size)
    cache_ds = QXSSAROPT(root, sar_dir=sar_dir, opt_dir=opt_dir, patch_size=size, cache=cache)
    png_speed, cache_speed = _reading_speed(png_ds), _reading_speed(cache_ds)
    rep.text(f"Decode-once cache `{cache}`: {cache_speed:.0f} pairs/s against "
             f"{png_speed:.0f} pairs/s from PNG ({cache_speed / png_speed:.1f}x, main process, "
             "float32 samples).")
    from saropt.data.splits import read_split

    test_ids = read_split(split_dir)["test"][:8]
    fig = cache_ds.plot_batch([cache_ds.ids.index(i) for i in test_ids],
                              suptitle="test pairs: optical (top), SAR (bottom)")
    rep.figure(fig, "data_batch.png", "Synthetic QXS-layout test pairs, optical above SAR as in "
               "the paper's Fig. 5.")
    ctx.artifacts.update({"qxs_split": split_dir, "qxs_cache": cache, "qxs_sar_dir": sar_dir,
                          "qxs_opt_dir": opt_dir, "qxs_patch_size": size})


def _split(ctx: Any, root: Path, sar_dir: str, opt_dir: str, make_split: Any) -> Path:
    """The paper's 70/30 split (spatial when a manifest exists) and the leakage it avoids."""
    has_manifest = (root / "manifest.csv").is_file()
    split_dir = ctx.path("data", "split", "split.json").parent
    info = make_split(root, split_dir, train_frac=0.7, seed=ctx.seed,
                      mode="spatial" if has_manifest else "random", sar_dir=sar_dir,
                      opt_dir=opt_dir)
    s = info["sizes"]
    text = (f"Split ({info['mode']}, seed {ctx.seed}) in `{split_dir}`: train {s['train']}, "
            f"test {s['test']}, with fixed 1:1 evaluation pairs in `test_pairs.csv`.")
    if has_manifest:
        rnd = make_split(root, ctx.path("data", "split_random", "split.json").parent,
                         train_frac=0.7, seed=ctx.seed, sar_dir=sar_dir, opt_dir=opt_dir)
        text += (f" A random 70/30 split of the same pairs would put "
                 f"{rnd['train_test_overlaps']} training patches over a test patch "
                 f"(overlapping windows); the spatial split has {info['train_test_overlaps']} "
                 f"and dropped {info['purged_overlapping']} border patches to get there.")
    ctx.report.text(text)
    return split_dir
