"""The data layer's demo stage on a tiny QXS-layout folder with a manifest."""

from __future__ import annotations

from pathlib import Path

from _qxs_fixtures import make_qxs, write_manifest

from saropt.data import PairCache, read_manifest, read_split
from saropt.data.demo import run
from saropt.data.splits import count_overlaps
from saropt.demo import DemoContext
from saropt.utils.report import Report


def _ctx(tmp_path: Path) -> DemoContext:
    return DemoContext(out_dir=tmp_path / "report", seed=0,
                       report=Report(tmp_path / "report", "test"))


def test_demo_stage(tmp_path: Path) -> None:
    root = make_qxs(tmp_path / "qxs", n=40, size=16, sar_dir="sar_16_oc_0.2",
                    opt_dir="opt_16_oc_0.2")
    write_manifest(root, [(str(k + 1), f"s{k // 20}", 13 * (k % 5), 13 * ((k % 20) // 5), 16)
                          for k in range(40)])
    ctx = _ctx(tmp_path)
    ctx.artifacts["qxs_root"] = root
    run(ctx)
    split = read_split(ctx.artifacts["qxs_split"])
    assert count_overlaps(split["train"], split["test"], read_manifest(root / "manifest.csv")) == 0
    assert PairCache(ctx.artifacts["qxs_cache"]).ids == [str(i) for i in range(1, 41)]
    assert ctx.artifacts["qxs_patch_size"] == 16
    text = "\n".join(ctx.report.lines)
    assert "no problems" in text and "spatial" in text and "figures/data_batch.png" in text
    assert (ctx.out_dir / "figures" / "data_batch.png").stat().st_size > 1000


def test_demo_stage_skips_without_dataset(tmp_path: Path) -> None:
    ctx = _ctx(tmp_path)
    run(ctx)
    assert "Skipped" in "\n".join(ctx.report.lines) and "qxs_split" not in ctx.artifacts
