"""Finding the pairs of a QXS-style folder: ``ROOT/<sar_dir>/<id>.png`` + ``ROOT/<opt_dir>/...``.

Pairs share the file stem. QXS-SAROPT names its files ``1.png .. 20000.png``; ids are sorted
numerically when every stem is an integer, otherwise in natural order.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from saropt.errors import DataError

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp"}

#: problem kinds, in the order they are reported
PROBLEM_KINDS = (
    "missing folder", "empty folder", "duplicate id", "missing counterpart", "bad name",
    "unreadable", "bad mode", "size mismatch", "wrong patch size",
)


@dataclass
class Problems:
    """Every problem found, grouped by kind; each entry names the file and what is wrong."""

    items: dict[str, list[str]] = field(default_factory=dict)

    def add(self, kind: str, message: str) -> None:
        self.items.setdefault(kind, []).append(message)

    def __bool__(self) -> bool:
        return any(self.items.values())

    def counts(self) -> dict[str, int]:
        return {k: len(self.items[k]) for k in _ordered(self.items)}

    def summary(self, examples: int = 3) -> str:
        """One line per kind: count and the first offending files."""
        lines = []
        for kind in _ordered(self.items):
            msgs = self.items[kind]
            lines.append(f"{kind}: {len(msgs)}")
            lines += [f"  {m}" for m in msgs[:examples]]
            if len(msgs) > examples:
                lines.append(f"  ... and {len(msgs) - examples} more")
        return "\n".join(lines)

    def raise_if_any(self, context: str) -> None:
        if self:
            raise DataError(f"{context}:\n{self.summary()}")


def _ordered(items: dict[str, list[str]]) -> list[str]:
    rank = {k: i for i, k in enumerate(PROBLEM_KINDS)}
    return sorted((k for k in items if items[k]), key=lambda k: rank.get(k, len(rank)))


def natural_key(name: str) -> tuple:
    """Sort key putting ``2`` before ``10`` (and ``a2`` before ``a10``)."""
    return tuple((0, int(t), "") if t.isdigit() else (1, 0, t)
                 for t in re.split(r"(\d+)", name) if t)


def sort_ids(ids: Iterable[str]) -> list[str]:
    """Integer stems numerically, anything else in natural order."""
    ids = list(ids)
    if all(i.isdigit() for i in ids):
        return sorted(ids, key=lambda i: (int(i), i))
    return sorted(ids, key=natural_key)


def qxs_name_problem(stem: str) -> str | None:
    """Why ``stem`` is not a QXS name (``1 .. N`` without zero padding), or None."""
    if not stem.isdigit():
        return "is not an integer"
    if len(stem) > 1 and stem.startswith("0"):
        return "is zero-padded"
    if int(stem) == 0:
        return "is 0 (QXS names start at 1)"
    return None


def scan_folder(folder: Path, problems: Problems) -> dict[str, Path]:
    """Image files of ``folder`` by stem; missing/empty folders and duplicate stems are problems."""
    if not folder.is_dir():
        problems.add("missing folder", f"{folder} does not exist or is not a folder")
        return {}
    files: dict[str, Path] = {}
    with os.scandir(folder) as it:
        for entry in it:
            path = Path(entry.path)
            if path.suffix.lower() not in IMAGE_SUFFIXES or entry.name.startswith("."):
                continue
            if path.stem in files:
                problems.add("duplicate id", f"{path} and {files[path.stem].name} share id "
                             f"{path.stem!r}")
                continue
            files[path.stem] = path
    if not files:
        problems.add("empty folder", f"{folder} holds no images "
                     f"({', '.join(sorted(IMAGE_SUFFIXES))})")
    return files


@dataclass
class Layout:
    """The pairs found in a dataset root."""

    root: Path
    sar_dir: Path
    opt_dir: Path
    ids: list[str]
    sar_files: dict[str, Path]
    opt_files: dict[str, Path]
    problems: Problems

    def sar_path(self, id_: str) -> Path:
        return self.sar_files[id_]

    def opt_path(self, id_: str) -> Path:
        return self.opt_files[id_]


def scan_layout(root: str | Path, sar_dir: str = "sar_256_oc_0.2",
                opt_dir: str = "opt_256_oc_0.2", qxs_names: bool = False) -> Layout:
    """List both folders and pair files by stem; every pairing problem goes to ``problems``.

    ``qxs_names=True`` also flags names that are not ``1 .. N`` (non-integer, zero-padded).
    """
    root = Path(root)
    problems = Problems()
    from saropt.utils.outdir import check_complete

    unfinished = check_complete(root)
    if unfinished:
        problems.add("incomplete dataset", unfinished)
    if not root.is_dir():
        problems.add("missing folder", f"dataset root {root} does not exist")
    sar = scan_folder(root / sar_dir, problems)
    opt = scan_folder(root / opt_dir, problems)
    if sar and opt:
        for stem in sort_ids(set(sar) - set(opt)):
            problems.add("missing counterpart", f"{sar[stem]} has no {opt_dir}/{sar[stem].name}")
        for stem in sort_ids(set(opt) - set(sar)):
            problems.add("missing counterpart", f"{opt[stem]} has no {sar_dir}/{opt[stem].name}")
    ids = sort_ids(set(sar) & set(opt))
    if qxs_names:
        for stem in sort_ids(set(sar) | set(opt)):
            why = qxs_name_problem(stem)
            if why:
                path = sar.get(stem) or opt[stem]
                problems.add("bad name", f"{path}: name {stem!r} {why} (QXS layout expects "
                             "1.png .. N.png)")
    return Layout(root, root / sar_dir, root / opt_dir, ids, sar, opt, problems)
