"""``saropt demo``: every pipeline stage on a small synthetic world, ending in a report folder.

Stages run in order; each lives beside its code as ``saropt/<part>/demo.py:run(ctx)`` and adds a
section to the report and artifacts (paths, numbers) to ``ctx.artifacts`` for later stages.
The data are synthetic: the report says so, and its numbers say nothing about real SAR.
"""

from __future__ import annotations

import importlib
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from saropt.errors import SaroptError
from saropt.utils.report import Report

#: (stage name, module with ``run(ctx)``); a stage whose module is absent is skipped.
STAGES: list[tuple[str, str]] = [
    ("synthetic world", "saropt.synth.demo"),
    ("QXS-SAROPT data layer", "saropt.data.demo"),
    ("dataset construction", "saropt.build.demo"),
    ("Bridge Neural Network", "saropt.bnn.demo"),
    ("SAR ship detection", "saropt.detect.demo"),
    ("OSD pretraining and fusion", "saropt.fuse.demo"),
    ("ships in a whole scene", "saropt.detect.scene.demo"),
]


@dataclass
class DemoContext:
    """What the stages share: the report folder, seed, report and each stage's artifacts.

    Attributes:
        out_dir: the report folder.
        seed: the seed every stage derives its randomness from.
        report: the Markdown report each stage adds a section to.
        artifacts: paths and numbers a stage leaves for later stages (e.g. the BNN export the
            detection stage loads).
        timings: seconds per stage name.
    """

    out_dir: Path
    seed: int
    report: Report
    artifacts: dict[str, Any] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)

    def path(self, *parts: str) -> Path:
        """``out_dir/parts...``, its parent folder created."""
        p = self.out_dir.joinpath(*parts)
        p.parent.mkdir(parents=True, exist_ok=True)
        return p


def run_demo(out_dir: str | Path, seed: int = 0, only: list[str] | None = None) -> DemoContext:
    """Run the stages into ``out_dir`` and write its report (``saropt demo``).

    ``out_dir`` is locked while the demo runs: a second demo into the same folder is refused,
    naming the first.

    Args:
        out_dir: the report folder (created).
        seed: seed of the synthetic world and of every stage.
        only: run only the stages whose module name contains one of these words.

    Returns:
        The context after the last stage (artifacts and timings).

    Raises:
        SaroptError: a word of ``only`` that names no stage, or ``out_dir`` in use by another
            run.
    """
    from saropt.utils.outdir import folder_lock

    unknown = [o for o in only or [] if not any(o in module for _, module in STAGES)]
    if unknown:  # a typo would otherwise leave an empty report and exit 0
        modules = ", ".join(module for _, module in STAGES)
        raise SaroptError(f"--only {' '.join(unknown)}: no demo stage's module name contains "
                          f"it (stages: {modules})")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    with folder_lock(out_dir, "demo"):
        return _run_demo(out_dir, seed, only)


def _run_demo(out_dir: Path, seed: int, only: list[str] | None) -> DemoContext:
    report = Report(out_dir, "saropt demo report (synthetic data)")
    report.text("**All data in this report are synthetic**, rendered by `saropt.synth` from a "
                "scene model whose truth is known. The numbers show that every stage runs end to "
                "end; they say nothing about performance on real SAR or optical images.")
    ctx = DemoContext(out_dir=out_dir, seed=seed, report=report)
    t_start = time.perf_counter()
    for name, module in STAGES:
        mod = importlib.import_module(module)
        if only and not any(o in module for o in only):
            continue
        print(f"[saropt demo] stage: {name}", flush=True)
        t0 = time.perf_counter()
        mod.run(ctx)
        ctx.timings[name] = time.perf_counter() - t0
        report.write()  # a partial report is still a readable report
    total = time.perf_counter() - t_start
    report.section("Wall time")
    report.table([(k, f"{v:.1f}") for k, v in ctx.timings.items()] + [("total", f"{total:.1f}")],
                 ["stage", "seconds"])
    path = report.write()
    print(f"[saropt demo] report: {path} ({total:.0f} s)")
    return ctx
