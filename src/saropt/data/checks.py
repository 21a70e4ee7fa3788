"""``saropt data check``: read every file of a pair dataset and report what is there and wrong.

Reports counts, sizes, stored image modes and pixel statistics per modality (in [0, 1], as the
reader returns them), and every problem (see :data:`saropt.data.layout.PROBLEM_KINDS`).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from saropt.data.images import open_image, opt_array, sar_array
from saropt.data.layout import (  # noqa: F401 - expected_patch_size re-exported
    Layout,
    Problems,
    expected_patch_size,
    scan_layout,
    sort_ids,
)
from saropt.errors import DataError
from saropt.utils.table import format_table


@dataclass
class _Moments:
    """Running pixel statistics of one modality (per channel)."""

    channels: int
    n: int = 0
    total: np.ndarray = field(default=None)  # type: ignore[assignment]
    total_sq: np.ndarray = field(default=None)  # type: ignore[assignment]
    lo: int = 255
    hi: int = 0

    def __post_init__(self) -> None:
        self.total = np.zeros(self.channels)
        self.total_sq = np.zeros(self.channels)

    def add(self, arr: np.ndarray) -> None:
        a = arr.reshape(-1, self.channels).astype(np.float64)
        self.n += a.shape[0]
        self.total += a.sum(0)
        self.total_sq += (a * a).sum(0)
        self.lo, self.hi = min(self.lo, int(arr.min())), max(self.hi, int(arr.max()))

    def merge(self, other: _Moments) -> None:
        self.n += other.n
        self.total += other.total
        self.total_sq += other.total_sq
        self.lo, self.hi = min(self.lo, other.lo), max(self.hi, other.hi)

    def summary(self) -> dict[str, Any]:
        if not self.n:
            return {}
        mean_c = self.total / self.n
        var_c = np.maximum(self.total_sq / self.n - mean_c**2, 0.0)
        mean = float(mean_c.mean())
        var = float((var_c + mean_c**2).mean() - mean**2)
        out = {"mean": mean / 255, "std": max(var, 0.0) ** 0.5 / 255, "min": self.lo / 255,
               "max": self.hi / 255}
        if self.channels > 1:
            out["channel_mean"] = [float(m) / 255 for m in mean_c]
            out["channel_std"] = [float(s) ** 0.5 / 255 for s in var_c]
        return out


@dataclass
class CheckResult:
    """What :func:`check_dataset` found.

    ``counts``: SAR files, optical files and pairs; ``sizes``: pairs per ``"WxH"`` size (px);
    ``modes``: Pillow modes per modality; ``stats``: per modality ``mean``, ``std``, ``min``,
    ``max`` of the pixel values scaled to [0, 1] (plus per-channel values for optical);
    ``problems``: everything wrong, by kind.
    """

    root: str
    sar_dir: str | None
    opt_dir: str | None
    patch_size: int | None
    counts: dict[str, int]
    sizes: dict[str, int]
    modes: dict[str, dict[str, int]]
    stats: dict[str, dict[str, Any]]
    problems: Problems
    layout: str = "folders"
    description: str = ""

    @property
    def ok(self) -> bool:
        """True when no problem was found."""
        return not self.problems

    def to_dict(self) -> dict[str, Any]:
        """The result as a JSON-ready dict (``saropt data check --json``)."""
        return {"root": self.root, "layout": self.layout, "sar_dir": self.sar_dir,
                "opt_dir": self.opt_dir,
                "patch_size": self.patch_size, "ok": self.ok, "counts": self.counts,
                "sizes": self.sizes, "modes": self.modes, "stats": self.stats,
                "problem_counts": self.problems.counts(), "problems": self.problems.items}

    def text(self) -> str:
        """The human-readable report: counts, sizes, modes, a statistics table, problems."""
        lines = [f"dataset {self.description or self.root}",
                 "counts: " + ", ".join(f"{k} {v}" for k, v in self.counts.items()),
                 "sizes (WxH): " + ", ".join(f"{k} x{v}" for k, v in self.sizes.items()),
                 "modes: " + "; ".join(f"{m}: " + ", ".join(f"{k} x{v}" for k, v in c.items())
                                       for m, c in self.modes.items()), ""]
        rows = [(m, s["mean"], s["std"], s["min"], s["max"])
                for m, s in self.stats.items() if s]
        if rows:
            lines += ["pixel statistics (values in [0, 1]):",
                      format_table(rows, ["modality", "mean", "std", "min", "max"]), ""]
        if self.ok:
            lines.append(f"OK: {self.counts.get('pairs', 0)} pairs, no problems")
        else:
            total = sum(self.problems.counts().values())
            lines += [f"PROBLEMS ({total}):", self.problems.summary()]
        return "\n".join(lines)


def _check_pair(id_: str, layout: Layout) -> dict[str, Any]:
    """Decode one pair; return modes, sizes, partial statistics and problems (picklable)."""
    rec: dict[str, Any] = {"id": id_, "problems": []}
    arrays = {}
    for kind, path, convert in (("sar", layout.sar_files.get(id_), sar_array),
                                ("opt", layout.opt_files.get(id_), opt_array)):
        if path is None:  # reported as a missing counterpart
            continue
        try:
            im = open_image(path)
            rec[f"{kind}_mode"] = im.mode
            rec[f"{kind}_size"] = im.size
            arrays[kind] = convert(im, path)
        except DataError as err:
            msg = str(err)
            bad_read = "unreadable" in msg or "not found" in msg
            rec["problems"].append(("unreadable" if bad_read else "bad mode", msg))
    for kind, channels in (("sar", 1), ("opt", 3)):
        if kind in arrays:
            m = _Moments(channels)
            m.add(arrays[kind])
            rec[f"{kind}_moments"] = m
    s, o = rec.get("sar_size"), rec.get("opt_size")
    if s and o and s != o:
        rec["problems"].append(("size mismatch", f"pair {id_!r}: {layout.sar_files[id_]} is "
                                f"{s[0]}x{s[1]} but {layout.opt_files[id_]} is {o[0]}x{o[1]}"))
    return rec


def check_dataset(root: str | Path, sar_dir: str | None = None, opt_dir: str | None = None,
                  patch_size: int | str | None = "auto", qxs_names: bool = True,
                  workers: int = 0, progress: bool = True, layout: str = "auto") -> CheckResult:
    """Read every pair of ``root`` and collect statistics and problems.

    The pairs are found by :func:`saropt.data.layout.scan_layout` (``sar_dir`` + ``opt_dir``, or
    ``layout``, ``"auto"`` detecting it). ``patch_size="auto"`` takes the size the layout names
    (``sar_256_oc_0.2`` -> 256, SEN1-2 256, an OSdataset size folder); when it names none, or for
    None, pairs that differ from the most common size are flagged. ``qxs_names`` flags names
    other than ``1 .. N`` (non-integer, zero-padded) in QXS folders and explicit folders.
    ``workers > 1`` decodes in a process pool (for more than 64 files).

    Problems are collected in the result, not raised (see :attr:`CheckResult.ok`).

    Raises:
        DataError: (a SaroptError) when no pair layout is found at all (as
            :func:`saropt.data.layout.scan_layout`).
    """
    from tqdm import tqdm

    found = scan_layout(root, sar_dir, opt_dir, qxs_names=qxs_names, layout=layout)
    if patch_size == "auto":
        patch_size = found.patch_size
    problems = found.problems
    stems = sort_ids(set(found.sar_files) | set(found.opt_files))  # unpaired files too
    fn = partial(_check_pair, layout=found)
    bar = partial(tqdm, total=len(stems), desc="checking pairs", unit="pair",
                  disable=not progress)
    if workers > 1 and len(stems) > 64:
        import multiprocessing as mp

        with mp.get_context("spawn").Pool(workers) as pool:
            records = list(bar(pool.imap(fn, stems, chunksize=32)))
    else:
        records = [fn(i) for i in bar(stems)]
    modes: dict[str, Counter] = {"sar": Counter(), "opt": Counter()}
    sizes: Counter = Counter()
    moments = {"sar": _Moments(1), "opt": _Moments(3)}
    for rec in records:
        for kind, msg in rec["problems"]:
            problems.add(kind, msg)
        for k in ("sar", "opt"):
            if f"{k}_mode" in rec:
                modes[k][rec[f"{k}_mode"]] += 1
            if f"{k}_moments" in rec:
                moments[k].merge(rec[f"{k}_moments"])
        size = rec.get("sar_size") or rec.get("opt_size")
        if size:
            sizes[f"{size[0]}x{size[1]}"] += 1
    _flag_sizes(records, found, patch_size, sizes, problems)
    counts = {"sar files": len(found.sar_files), "opt files": len(found.opt_files),
              "pairs": len(found.ids)}
    dirs = (found.sar_dir.name, found.opt_dir.name) if found.sar_dir != found.root else (None,
                                                                                        None)
    return CheckResult(str(root), *dirs, patch_size, counts, dict(sizes.most_common()),
                       {k: dict(v.most_common()) for k, v in modes.items()},
                       {k: m.summary() for k, m in moments.items()}, problems, found.kind,
                       found.describe())


def _flag_sizes(records: list[dict[str, Any]], layout: Layout, patch_size: int | None,
                sizes: Counter, problems: Problems) -> None:
    if patch_size is not None:
        want, why = (patch_size, patch_size), f"expected {patch_size}x{patch_size}"
    elif sizes:
        w, h = (int(v) for v in sizes.most_common(1)[0][0].split("x"))
        want, why = (w, h), f"most pairs are {w}x{h}"
    else:
        return
    for rec in records:
        for kind, files in (("sar", layout.sar_files), ("opt", layout.opt_files)):
            size = rec.get(f"{kind}_size")
            if size and tuple(size) != want:
                problems.add("wrong patch size", f"{files[rec['id']]}: {size[0]}x{size[1]} "
                             f"pixels, {why}")
                break  # one report per pair
