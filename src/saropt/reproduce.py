"""``saropt reproduce TABLE``: the papers' experiments, one YAML per table cell, one command.

A cell (``configs/reproduce/<table>/<cell>.yaml``) records the paper's number(s), the datasets it
needs (folders under ``--data-root``), the shell-free commands that produce it (BNN training ->
export -> detector training -> prediction -> evaluation) and where our numbers are read from.
Steps whose ``creates`` file exists are skipped, and so are cells whose result file exists, so an
interrupted run resumes. See ``docs/reproduce.md``.
"""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from saropt.config import Config, builtin_config_dir, load_config
from saropt.errors import DataError, SaroptError

TABLES = {
    "table1": "BNN optical-SAR matching on QXS-SAROPT, ResNet50 and Darknet53 (003 Table 1, "
              "002 Table II)",
    "table2": "BNN matching vs training-set size, ResNet50 (003 Table 2)",
    "table3": "ImageNet-SSD vs OSM-SSD, Faster R-CNN and YOLOv3, four SAR ship datasets (003 "
              "Table 3, 002 Table III)",
    "osd_wbf": "OSD-SSD and OSD+OSM weighted boxes fusion (000, 'Boosting ship detection ...')",
}

#: Where each dataset folder under --data-root comes from (shown when one is missing).
DATASET_HINTS = {
    "QXS-SAROPT": "QXS-SAROPT (opt_256_oc_0.2/, sar_256_oc_0.2/): https://github.com/yaoxu008/"
                  "QXS-SAROPT",
    "SSDD": "SSDD (VOC layout: Annotations/, JPEGImages/): https://github.com/CAESAR-Radi/"
            "SAR-Ship-Dataset",
    "HRSID": "HRSID (annotations/train2017.json, test2017.json, JPEGImages/): "
             "https://github.com/chaozhong2010/HRSID",
    "AIR-SARShip-1.0": "AIR-SARShip-1.0 (16-bit TIFF scenes + XML): "
                       "http://radars.ie.ac.cn/web/data/getData?dataType=SARDataset",
    "AIR-SARShip-2.0": "AIR-SARShip-2.0 (TIFF + XML): "
                       "http://radars.ie.ac.cn/web/data/getData?dataType=SARDataset",
    "DOTA": "DOTA v1 (train/ and val/ with images/ and labelTxt/): https://captain-whu.github.io/"
            "DOTA/",
    "pretrained": "local ImageNet checkpoints (no downloads at run time): resnet50_imagenet.pth "
                  "(torchvision ResNet50 IMAGENET1K_V1 state dict) and darknet53_imagenet.pth "
                  "(timm darknet53 state dict)",
}


class ReproStep(Config):
    """One command of a cell: ``name``, the command line ``run`` and the file it ``creates``.

    ``{data}``, ``{out}`` and ``{python}`` are filled in; a leading ``saropt`` runs this saropt
    (``python -m saropt.cli``). Skipped when the same command finished before (a marker under
    ``--out/.done/``) and ``creates`` (under --out) exists; a command killed half-way runs again
    (training resumes from its ``last.ckpt``).
    """

    name: str
    run: str
    creates: str | None = None


class ReproCell(Config):
    """One cell of a paper table (or one row, for the matching tables)."""

    table: str
    cell: str
    order: int = 0
    title: str
    source: str
    datasets: list[str]
    paper: dict[str, float | None]
    ours: dict[str, str]
    result: str
    steps: list[ReproStep]
    notes: str = ""


# ------------------------------------------------------------------ loading


def table_dir(table: str | Path) -> Path:
    """The folder of a built-in table (``table3``) or a folder of cell YAMLs.

    Raises:
        SaroptError: ``table`` is neither a built-in table (:data:`TABLES`) nor a folder.
    """
    p = Path(table)
    if p.is_dir():
        return p
    d = builtin_config_dir() / "reproduce" / str(table)
    if str(table) in TABLES and d.is_dir():
        return d
    raise SaroptError(f"unknown table {str(table)!r}: built-in tables are {', '.join(TABLES)} "
                      "(or give a folder of cell YAMLs)")


def load_table(table: str | Path, only: list[str] | None = None) -> list[ReproCell]:
    """The cells of ``table`` in order; ``only`` keeps the named cells.

    Raises:
        SaroptError: an unknown table, a table without cell YAMLs, or an unknown name in
            ``only``.
        ConfigError: a cell YAML that does not fit :class:`ReproCell`.
    """
    files = sorted(table_dir(table).glob("*.yaml"))
    cells = sorted((load_config(ReproCell, f) for f in files), key=lambda c: (c.order, c.cell))
    if not cells:
        raise SaroptError(f"table {table}: no cell YAMLs in {table_dir(table)}")
    if only:
        names = {c.cell for c in cells}
        unknown = [o for o in only if o not in names]
        if unknown:
            raise SaroptError(f"table {table} has no cell(s) {', '.join(unknown)}; cells: "
                              f"{', '.join(sorted(names))}")
        cells = [c for c in cells if c.cell in only]
    return cells


def cell_config_path(cell: ReproCell, table: str | Path) -> Path:
    """The YAML file of ``cell`` in ``table``."""
    return table_dir(table) / f"{cell.cell}.yaml"


# ------------------------------------------------------------------ commands


def _fill(text: str, data_root: Path, out: Path, quote: bool = False) -> str:
    q = shlex.quote if quote else str
    return text.format(data=q(str(data_root)), out=q(str(out)), python=q(sys.executable))


def step_argv(step: ReproStep, data_root: Path, out: Path) -> list[str]:
    """The argument vector of a step (no shell): ``saropt`` becomes ``python -m saropt.cli``."""
    argv = shlex.split(_fill(step.run, data_root, out, quote=True))
    if argv and argv[0] == "saropt":
        argv = [sys.executable, "-m", "saropt.cli", *argv[1:]]
    return argv


def step_command(step: ReproStep, data_root: Path, out: Path) -> str:
    """The step as a user would type it."""
    return _fill(step.run, data_root, out, quote=True)


def step_marker(step: ReproStep, data_root: Path, out: Path) -> Path:
    """The file that says this exact command finished (shared by every cell that runs it)."""
    import hashlib

    key = hashlib.sha1(step_command(step, data_root, out).encode()).hexdigest()[:16]
    return out / ".done" / f"{key}.json"


def step_done(step: ReproStep, data_root: Path, out: Path) -> bool:
    """Whether ``step`` finished before: its marker is there and so is its ``creates`` file."""
    creates = out / _fill(step.creates, data_root, out) if step.creates else None
    return step_marker(step, data_root, out).is_file() and (creates is None or creates.exists())


def missing_datasets(cells: list[ReproCell], data_root: Path) -> list[str]:
    """The dataset folders ``cells`` need that ``data_root`` lacks, sorted."""
    need = sorted({d for c in cells for d in c.datasets})
    return [d for d in need if not (data_root / d).is_dir()]


def check_datasets(cells: list[ReproCell], data_root: Path) -> None:
    """Raise naming every dataset folder that ``cells`` need and ``data_root`` lacks.

    Raises:
        DataError: one line per missing folder with where the dataset comes from
            (:data:`DATASET_HINTS`) and which cells need it.
    """
    missing = missing_datasets(cells, data_root)
    if missing:
        lines = [f"  {data_root / d}/ : {DATASET_HINTS.get(d, d)}" for d in missing]
        users = {d: [c.cell for c in cells if d in c.datasets] for d in missing}
        lines += [f"  ({d} is needed by {', '.join(users[d])})" for d in missing]
        raise DataError("missing dataset folder(s) under --data-root:\n" + "\n".join(lines))


def dry_run(table: str | Path, cells: list[ReproCell], data_root: Path, out: Path
            ) -> dict[str, Any]:
    """What a run would do, without running it (``saropt reproduce --dry-run``).

    Returns:
        ``table``, ``data_root``, ``out`` and per cell its config file, the paper's numbers,
        datasets (``ok`` or ``MISSING``), the exact commands and whether each would be skipped.
    """
    missing = set(missing_datasets(cells, data_root))
    listing = []
    for c in cells:
        listing.append({
            "cell": c.cell, "title": c.title, "config": str(cell_config_path(c, table)),
            "source": c.source, "paper": c.paper,
            "datasets": {d: ("MISSING" if d in missing else "ok") for d in c.datasets},
            "result": str(out / c.result), "done": (out / "results" / f"{c.cell}.json").is_file(),
            "commands": [{"name": s.name, "command": step_command(s, data_root, out),
                          "skip": step_done(s, data_root, out)} for s in c.steps]})
    return {"table": str(table), "data_root": str(data_root), "out": str(out), "cells": listing}


def dry_run_text(listing: dict[str, Any]) -> str:
    """A :func:`dry_run` listing as Markdown-like text for people."""
    lines = [f"# saropt reproduce {listing['table']} (dry run): data root {listing['data_root']}"
             f", output {listing['out']}"]
    for c in listing["cells"]:
        paper = ", ".join(f"{k} {'not in the provided papers' if v is None else v}"
                          for k, v in c["paper"].items()) or "-"
        data = ", ".join(f"{d} ({s})" for d, s in c["datasets"].items())
        lines += ["", f"## {c['cell']}: {c['title']}{'  [done]' if c['done'] else ''}",
                  f"config: {c['config']}", f"paper ({c['source']}): {paper}",
                  f"datasets: {data}"]
        for i, s in enumerate(c["commands"], 1):
            lines.append(f"  {i}. [{s['name']}]{' (done before, skipped)' if s['skip'] else ''}")
            lines.append(f"     {s['command']}")
    return "\n".join(lines)


# ------------------------------------------------------------------ running


def _dig(obj: Any, dotted: str) -> Any:
    for part in dotted.split("."):
        if not isinstance(obj, dict) or part not in obj:
            return None
        obj = obj[part]
    return obj


def read_our_numbers(cell: ReproCell, out: Path) -> dict[str, float | None]:
    """Our numbers from the cell's result file (dotted paths in ``cell.ours``).

    Returns:
        One value per key of ``cell.ours``; ``None`` where the path is absent or not a number.

    Raises:
        SaroptError: the result file was not written.
        DataError: the result file is not valid JSON.
    """
    path = out / cell.result
    if not path.is_file():
        raise SaroptError(f"cell {cell.cell}: its last step did not write {path}")
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise DataError(f"{path}: not valid JSON ({err})") from None
    values = {k: _dig(data, v) for k, v in cell.ours.items()}
    return {k: float(v) if isinstance(v, (int, float)) else None for k, v in values.items()}


def run_step(cell: ReproCell, step: ReproStep, data_root: Path, out: Path) -> float:
    """Run one step, its output going to ``out/logs/<cell>/<step>.log``; seconds taken.

    On success a marker under ``out/.done/`` records the command (see :func:`step_done`).

    Raises:
        SaroptError: the command exited non-zero; the message ends with its log's last lines.
    """
    from saropt.utils.io import atomic_path, write_json_atomic

    argv = step_argv(step, data_root, out)
    log = out / "logs" / cell.cell / f"{step.name.replace(' ', '_').replace('/', '_')}.log"
    print(f"[reproduce] {cell.cell} / {step.name}: {step_command(step, data_root, out)}",
          flush=True)
    t0 = time.perf_counter()
    with atomic_path(log) as tmp, open(tmp, "w") as fh:
        rc = subprocess.run(argv, stdout=fh, stderr=subprocess.STDOUT).returncode
    if rc != 0:
        tail = "\n".join(log.read_text().splitlines()[-15:])
        raise SaroptError(f"cell {cell.cell}, step {step.name!r} failed (exit {rc}); log "
                          f"{log}:\n{tail}")
    seconds = time.perf_counter() - t0
    write_json_atomic(step_marker(step, data_root, out),
                      {"command": step_command(step, data_root, out), "seconds": seconds,
                       "cell": cell.cell, "finished": time.strftime("%Y-%m-%d %H:%M:%S")})
    return seconds


def run_cell(cell: ReproCell, data_root: Path, out: Path) -> dict[str, Any]:
    """Run a cell's steps (skipping those whose output exists) and save its numbers."""
    from saropt.utils.io import write_json_atomic

    done = out / "results" / f"{cell.cell}.json"
    if done.is_file():
        print(f"[reproduce] {cell.cell}: done before ({done}), skipped", flush=True)
        return json.loads(done.read_text())
    seconds = {}
    for step in cell.steps:
        if step_done(step, data_root, out):
            print(f"[reproduce] {cell.cell} / {step.name}: done before, skipped")
            continue
        seconds[step.name] = run_step(cell, step, data_root, out)
    record = {"cell": cell.cell, "title": cell.title, "paper": cell.paper,
              "ours": read_our_numbers(cell, out), "result": str(out / cell.result),
              "seconds": seconds}
    write_json_atomic(done, record)
    return record


def markdown_table(table: str, cells: list[ReproCell], records: dict[str, dict[str, Any]]
                   ) -> str:
    """Our numbers beside the paper's, one row per cell ("-" where a number is absent)."""
    from saropt.utils.table import format_table

    paper_keys = list(dict.fromkeys(k for c in cells for k in c.paper))
    our_keys = list(dict.fromkeys(k for c in cells for k in c.ours))
    headers = ["cell", "experiment", *[f"paper {k}" for k in paper_keys],
               *[f"ours {k}" for k in our_keys]]
    rows = []
    for c in cells:
        ours = records.get(c.cell, {}).get("ours", {})
        rows.append([c.cell, c.title, *[_num(c.paper.get(k)) for k in paper_keys],
                     *[_num(ours.get(k)) for k in our_keys]])
    title = f"# {table}: {TABLES.get(str(table), str(table))}\n\n"
    return title + format_table(rows, headers, markdown=True) + "\n"


def _num(v: float | None) -> str:
    return "-" if v is None else f"{v:.4f}"


def run_table(table: str | Path, data_root: Path, out: Path,
              only: list[str] | None = None) -> dict[str, Any]:
    """Check datasets, run every cell in order (resumable), write ``out/<table>.md``.

    The implementation of ``saropt reproduce TABLE``. ``out`` is locked while it runs.

    Returns:
        ``table`` (name), ``markdown`` (path of the table of our numbers beside the paper's)
        and ``cells`` (per cell: the paper's numbers, ours, the seconds of each step run).

    Raises:
        SaroptError: an unknown table or cell, a failed step, or ``out`` in use by another run.
        DataError: dataset folders missing under ``data_root`` (checked before any step).
    """
    from saropt.utils.io import write_text_atomic
    from saropt.utils.outdir import folder_lock

    cells = load_table(table, only)
    check_datasets(cells, data_root)
    records = {}
    out.mkdir(parents=True, exist_ok=True)
    with folder_lock(out, "reproduce"):
        for c in cells:
            records[c.cell] = run_cell(c, data_root, out)
    name = Path(str(table)).name
    md = write_text_atomic(out / f"{name}.md", markdown_table(name, cells, records))
    return {"table": name, "markdown": str(md), "cells": records}
