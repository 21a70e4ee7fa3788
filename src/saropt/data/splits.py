"""Train / val / test splits of a pair dataset, written as text files of ids.

A split folder holds ``train.txt``, ``val.txt`` (may be empty), ``test.txt`` (one id a line),
``val_pairs.csv`` and ``test_pairs.csv`` (``sar_id,opt_id,label``: fixed 1:1 evaluation pairs
drawn once by seed) and ``split.json`` (seed, mode, sizes, dataset root).

``mode="random"`` shuffles the ids by seed and takes test, then val, then train from the front,
so for one seed and test size the test set is fixed and smaller training sets are nested in
larger ones (paper 003 Table 2's training-set-size study). ``mode="spatial"`` needs
``ROOT/manifest.csv`` (``id,scene,x,y,size``): whole blocks of each scene go to one side, and
any train/val patch whose window overlaps a test (or train overlapping val) window is dropped,
so no two overlapping patches ever sit on both sides. ``mode="release"`` keeps a release's own
assignment: the OSdataset ``train/val/test`` folders, or published split lists (``lists``: a
folder of ``train.txt``/``val.txt``/``test.txt``).

Split lists may name pairs by id (``123``) or by a path relative to the dataset root, as the
published QXS-SAROPT lists do (``opt_256_oc_0.2/123.png``); see
:func:`saropt.data.layout.entry_to_id`.
"""

from __future__ import annotations

import csv
import io
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from saropt.data.layout import entry_to_id, scan_layout, sort_ids
from saropt.data.pairs import Pair, draw_eval_pairs
from saropt.errors import DataError
from saropt.utils.io import read_json, read_text_file, write_json_atomic, write_text_atomic

SPLITS = ("train", "val", "test")
MANIFEST_COLUMNS = ("id", "scene", "x", "y", "size")


@dataclass(frozen=True)
class Window:
    """A patch's footprint in its scene: top-left corner ``x``, ``y`` and side ``size``, SAR px."""

    scene: str
    x: float
    y: float
    size: float

    def overlaps(self, other: Window) -> bool:
        """True when both windows share a scene and their squares intersect (touching: no)."""
        return (self.scene == other.scene
                and self.x < other.x + other.size and other.x < self.x + self.size
                and self.y < other.y + other.size and other.y < self.y + self.size)


# ---- sizes ------------------------------------------------------------------------------------
def _count(n: int, count: int | None, frac: float | None, name: str) -> int | None:
    if count is not None and frac is not None:
        raise DataError(f"give the {name} size as a count or as a fraction, not both")
    if frac is not None:
        if not 0.0 <= frac <= 1.0:
            raise DataError(f"{name} fraction must be in [0, 1], got {frac}")
        return int(round(frac * n))
    if count is not None and count < 0:
        raise DataError(f"{name} size must be >= 0, got {count}")
    return count


def resolve_sizes(n: int, train: int | None = None, test: int | None = None,
                  val: int | None = None,
                  train_frac: float | None = None, test_frac: float | None = None,
                  val_frac: float | None = None) -> dict[str, int]:
    """Counts of each split for ``n`` pairs, from counts or fractions of ``n``.

    Unset train or test takes the rest; with neither set, the paper's 70 % / 30 % split
    (14,000 / 6,000 of QXS-SAROPT's 20,000, paper 003 section 4). ``val`` defaults to 0.

    Returns:
        ``{"train": int, "val": int, "test": int}``.

    Raises:
        DataError: when a size is given both as a count and a fraction, a fraction is outside
            [0, 1], a count is negative, or the sizes add up to more than ``n``.
    """
    n_train = _count(n, train, train_frac, "train")
    n_test = _count(n, test, test_frac, "test")
    n_val = _count(n, val, val_frac, "val") or 0
    if n_train is None and n_test is None:
        n_train = int(round(0.7 * n))
    if n_test is None:
        n_test = n - n_train - n_val
    if n_train is None:
        n_train = n - n_test - n_val
    if n_train + n_val + n_test > n or min(n_train, n_test) < 0:
        raise DataError(f"train {n_train} + val {n_val} + test {n_test} = "
                        f"{n_train + n_val + n_test} pairs, but the dataset has {n}")
    return {"train": n_train, "val": n_val, "test": n_test}


# ---- manifest and spatial grouping ------------------------------------------------------------
def read_manifest(path: str | Path) -> dict[str, Window]:
    """``id -> Window`` from a manifest CSV with at least ``id,scene,x,y,size``.

    ``x``, ``y`` and ``size`` are SAR pixels in the scene (as ``saropt data build`` writes).

    Raises:
        DataError: when the file is missing, lacks a column, or has a non-numeric x/y/size.
    """
    path = Path(path)
    try:
        with io.StringIO(read_text_file(path), newline="") as f:
            reader = csv.DictReader(f)
            missing = [c for c in MANIFEST_COLUMNS if c not in (reader.fieldnames or [])]
            if missing:
                raise DataError(f"{path}: manifest lacks columns {missing} (needs "
                                f"{','.join(MANIFEST_COLUMNS)})")
            out: dict[str, Window] = {}
            for line, row in enumerate(reader, start=2):
                try:
                    out[row["id"]] = Window(row["scene"], float(row["x"]), float(row["y"]),
                                            float(row["size"]))
                except (TypeError, ValueError):
                    raise DataError(f"{path}:{line}: x, y and size must be numbers, got "
                                    f"{row}") from None
    except FileNotFoundError:
        raise DataError(f"{path}: manifest not found") from None
    return out


def _cell_index(windows: dict[str, Window], cell: float) -> dict[tuple, list[str]]:
    grid: dict[tuple, list[str]] = defaultdict(list)
    for id_, w in windows.items():
        grid[(w.scene, int(w.x // cell), int(w.y // cell))].append(id_)
    return grid


def overlapping(candidates: Iterable[str], fixed: Iterable[str],
                windows: dict[str, Window]) -> set[str]:
    """The ids of ``candidates`` whose window overlaps the window of any id in ``fixed``."""
    fixed = [i for i in fixed if i in windows]
    if not fixed:
        return set()
    cell = max(windows[i].size for i in fixed)
    grid = _cell_index({i: windows[i] for i in fixed}, cell)
    hits = set()
    for c in candidates:
        w = windows[c]
        cx0, cy0 = int(w.x // cell), int(w.y // cell)
        reach = int(w.size // cell) + 1
        near = (f for dx in range(-1, reach + 1) for dy in range(-1, reach + 1)
                for f in grid.get((w.scene, cx0 + dx, cy0 + dy), ()))
        if any(windows[f].overlaps(w) for f in near):
            hits.add(c)
    return hits


def count_overlaps(a: Iterable[str], b: Iterable[str], windows: dict[str, Window]) -> int:
    """How many ids of ``a`` overlap some id of ``b`` (leakage of a split)."""
    return len(overlapping([i for i in a if i in windows], b, windows))


def _blocks(ids: Sequence[str], windows: dict[str, Window], block: float) -> list[list[str]]:
    groups: dict[tuple, list[str]] = defaultdict(list)
    for i in ids:
        w = windows[i]
        key = (w.scene, int((w.x + w.size / 2) // block), int((w.y + w.size / 2) // block))
        groups[key].append(i)
    return [groups[k] for k in sorted(groups, key=str)]


def _closer(have: int, add: int, want: int) -> bool:
    """Whether adding a group of ``add`` brings ``have`` nearer to ``want``."""
    return abs(have + add - want) < abs(have - want)


def _spatial_assign(ids: list[str], sizes: dict[str, int], windows: dict[str, Window],
                    block: float, rng: np.random.Generator) -> tuple[dict[str, list[str]], int]:
    groups = _blocks(ids, windows, block)
    order = rng.permutation(len(groups))
    out: dict[str, list[str]] = {"test": [], "val": []}
    rest: list[str] = []
    for g in order:
        target = next((s for s in ("test", "val") if _closer(len(out[s]), len(groups[g]),
                                                              sizes[s])), None)
        (out[target] if target else rest).extend(groups[g])
    dropped_val = overlapping(out["val"], out["test"], windows)
    out["val"] = [i for i in out["val"] if i not in dropped_val]
    bad = overlapping(rest, out["test"] + out["val"], windows)
    train = [i for i in rest if i not in bad]
    if len(train) > sizes["train"]:
        train = list(rng.choice(np.array(train, dtype=object), sizes["train"], replace=False))
    out["train"] = train
    return out, len(bad) + len(dropped_val)


# ---- making and reading splits ----------------------------------------------------------------
def split_mode(mode: str | None, lists: str | Path | None) -> str:
    """The split mode: ``mode`` if given, else ``release`` with published ``lists``, else random.

    Raises:
        DataError: when ``lists`` are given with a mode other than ``release`` (they would be
            ignored).
    """
    if lists is not None and mode not in (None, "release"):
        raise DataError(f"--lists is the published split: it is read with --mode release, "
                        f"not --mode {mode} (leave --mode out)")
    return mode or ("release" if lists is not None else "random")


def make_split(root: str | Path, out: str | Path, train: int | None = None,
               test: int | None = None, val: int | None = None, train_frac: float | None = None,
               test_frac: float | None = None, val_frac: float | None = None, seed: int = 0,
               mode: str | None = None, sar_dir: str | None = None, opt_dir: str | None = None,
               manifest: str | Path | None = None, block: float | None = None,
               ids: Sequence[str] | None = None, layout: str = "auto",
               lists: str | Path | None = None, overwrite: bool = False) -> dict[str, Any]:
    """Split the pairs of ``root`` and write the split folder ``out``; returns ``split.json``.

    Sizes: counts (``train``, ``test``, ``val``) or fractions of all pairs; see
    :func:`resolve_sizes`. ``mode="spatial"`` reads ``manifest`` (default ``root/manifest.csv``)
    and groups patches into square blocks of ``block`` SAR pixels (default 4 patch sizes).
    ``mode="release"`` keeps the release's assignment (``lists`` folder, else the layout's own);
    ``mode=None`` is ``release`` with ``lists``, else ``random`` (lists with another mode: error).
    The pairs are found by :func:`saropt.data.layout.scan_layout` (``sar_dir`` + ``opt_dir``, or
    ``layout``) unless ``ids`` are given. The fixed 1:1 evaluation pairs follow paper 003
    section 4.2.1 (ratio 1:1).

    Raises:
        DataError: (a SaroptError) for an unknown mode, lists with a non-release mode, pairing
            problems in ``root``, sizes that do not fit (see :func:`resolve_sizes`), a val or
            test set of exactly 1 pair, a spatial split whose pairs lack manifest rows, or
            release lists naming unknown pairs / selecting none.
        OutDirError: (a SaroptError) when ``out`` is in use or holds other output and
            ``overwrite`` is false.
    """
    mode = split_mode(mode, lists)
    if mode not in ("random", "spatial", "release"):
        raise DataError(f"split mode must be 'random', 'spatial' or 'release', got {mode!r}")
    found = None
    if ids is None:
        found = scan_layout(root, sar_dir, opt_dir, layout=layout)
        found.problems.raise_if_any(f"cannot split {found.describe()}")
        ids = found.ids
    ids = sort_ids(ids)
    if mode == "release":
        info, parts = _release_split(root, ids, found, lists, seed)
    else:
        info, parts = _random_or_spatial_split(root, ids, found, train, test, val, train_frac,
                                               test_frac, val_frac, seed, mode, sar_dir,
                                               opt_dir, manifest, block)
    from saropt.utils.outdir import prepare_out_dir

    names = [f"{n}.txt" for n in SPLITS] + ["val_pairs.csv", "test_pairs.csv", "split.json"]
    with prepare_out_dir(out, "data split", info, names, overwrite=overwrite, quiet=True) as od:
        write_split(out, parts, info, seed)
        od.finish()
    return info


def _random_or_spatial_split(root: str | Path, ids: list[str], found: Any, train: int | None,
                             test: int | None, val: int | None, train_frac: float | None,
                             test_frac: float | None, val_frac: float | None, seed: int,
                             mode: str, sar_dir: str | None, opt_dir: str | None,
                             manifest: str | Path | None, block: float | None,
                             ) -> tuple[dict[str, Any], dict[str, list[str]]]:
    """``(split.json info, parts)`` of a random or spatial split of ``ids``."""
    sizes = resolve_sizes(len(ids), train, test, val, train_frac, test_frac, val_frac)
    rng = np.random.default_rng(seed)
    manifest_path = Path(manifest) if manifest else Path(root) / "manifest.csv"
    windows = read_manifest(manifest_path) if (mode == "spatial" or manifest_path.is_file()) \
        else {}
    purged = 0
    if mode == "spatial":
        absent = [i for i in ids if i not in windows]
        if absent:
            raise DataError(f"{manifest_path}: {len(absent)} pairs have no manifest row "
                            f"(first: {absent[:3]})")
        block = block or 4 * float(np.median([windows[i].size for i in ids]))
        parts, purged = _spatial_assign(list(ids), sizes, windows, block, rng)
    else:
        perm = [ids[k] for k in rng.permutation(len(ids))]
        a, b = sizes["test"], sizes["test"] + sizes["val"]
        parts = {"test": perm[:a], "val": perm[a:b], "train": perm[b:b + sizes["train"]]}
    parts = {k: sort_ids(parts[k]) for k in SPLITS}
    for name in ("val", "test"):
        if len(parts[name]) == 1:
            raise DataError(f"the {name} set would hold 1 pair; its fixed false pairs need at "
                            f"least 2 (ask for 0 or >= 2 {name} pairs)")
    info = {
        "seed": seed, "mode": mode, "root": str(Path(root).resolve()), "sar_dir": sar_dir,
        "opt_dir": opt_dir, "layout": found.kind if found else None, "n_pairs": len(ids),
        "requested": sizes,
        "sizes": {k: len(v) for k, v in parts.items()},
        "block": block if mode == "spatial" else None, "purged_overlapping": purged,
        "manifest": str(manifest_path) if windows else None,
        "train_test_overlaps": count_overlaps(parts["train"], parts["test"], windows)
        if windows else None,
    }
    return info, parts


def _release_split(root: str | Path, ids: list[str], found: Any, lists: str | Path | None,
                   seed: int) -> tuple[dict[str, Any], dict[str, list[str]]]:
    """A split that keeps the release's train/val/test (lists folder or the layout's own)."""
    if lists is not None:
        parts = read_split(lists, root)
        source = str(lists)
    elif found is not None and found.release_split:
        parts, source = found.release_split, f"{found.kind} folders"
    else:
        kind = found.kind if found is not None else "given ids"
        raise DataError(f"{root}: the {kind} layout has no train/val/test of its own; give the "
                        "published split lists with --lists DIR (train.txt, test.txt)")
    from saropt.data.qxs import _relative_hint

    known = set(ids)
    for name in SPLITS:
        unknown = [i for i in parts[name] if i not in known]
        if unknown:
            raise DataError(f"{source}: {len(unknown)} {name} entries name no pair of {root} "
                            f"(first: {unknown[:3]})"
                            + _relative_hint(unknown[0], known, root))
    if not parts["train"] and not parts["test"]:
        raise DataError(f"{source}: the release split selects no pair")
    for name in ("val", "test"):
        if len(parts[name]) == 1:
            raise DataError(f"{source}: the {name} set holds 1 pair; its fixed false pairs need "
                            "at least 2")
    sizes = {k: len(parts[k]) for k in SPLITS}
    info = {"seed": seed, "mode": "release", "root": str(Path(root).resolve()),
            "layout": found.kind if found is not None else None, "lists": source,
            "n_pairs": len(ids), "requested": sizes, "sizes": sizes, "block": None,
            "purged_overlapping": 0, "manifest": None, "train_test_overlaps": None,
            "unassigned": len(ids) - sum(sizes.values())}
    return info, {k: sort_ids(parts[k]) for k in SPLITS}


def write_split(out: str | Path, parts: dict[str, list[str]], info: dict[str, Any],
                seed: int) -> Path:
    """Write the id lists, the fixed evaluation pairs and ``split.json`` (last) to ``out``."""
    out = Path(out)
    for name in SPLITS:
        write_text_atomic(out / f"{name}.txt", "".join(f"{i}\n" for i in parts[name]))
    for name in ("val", "test"):
        write_pairs(out / f"{name}_pairs.csv", draw_eval_pairs(parts[name], seed))
    write_json_atomic(out / "split.json", info)
    return out


def write_pairs(path: str | Path, pairs: Sequence[Pair]) -> Path:
    """Write ``(sar_id, opt_id, label)`` pairs as CSV with a header (atomically); returns path."""
    lines = ["sar_id,opt_id,label"] + [f"{s},{o},{y}" for s, o, y in pairs]
    return write_text_atomic(path, "\n".join(lines) + "\n")


def read_split(split_dir: str | Path, root: str | Path | None = None) -> dict[str, list[str]]:
    """``{"train": [...], "val": [...], "test": [...]}`` from a split folder.

    Entries are ids or paths relative to the dataset root (published lists); each becomes an
    id by :func:`saropt.data.layout.entry_to_id`. A line may hold the SAR and the optical path
    of one pair (separated by spaces or a comma); both must name the same pair. A list that
    names an id twice is an error. Absolute paths inside ``root`` (the dataset root, when
    given) are taken relative to it. ``val.txt`` may be absent (an empty list).

    Raises:
        OutDirError: (a SaroptError) when the folder is incomplete (a killed split).
        DataError: (a SaroptError) when ``train.txt`` or ``test.txt`` is missing, a line names
            two different pairs, a list repeats an id, or an id is in two lists.
    """
    from saropt.utils.outdir import require_complete

    split_dir = Path(split_dir)
    require_complete(split_dir)  # a killed `saropt data split` leaves some lists, not all
    out: dict[str, list[str]] = {}
    for name in SPLITS:
        f = split_dir / f"{name}.txt"
        if not f.is_file():
            if name == "val":
                out[name] = []
                continue
            raise DataError(f"{f}: split file not found (make one with `saropt data split`)")
        out[name] = _read_list(f, root)
    for a, b in (("train", "test"), ("train", "val"), ("val", "test")):
        both = set(out[a]) & set(out[b])
        if both:
            raise DataError(f"{split_dir}: {len(both)} ids are in both {a} and {b} "
                            f"(first: {sort_ids(both)[:3]})")
    return out


def _read_list(path: Path, root: str | Path | None = None) -> list[str]:
    ids: list[str] = []
    for n, line in enumerate(read_text_file(path).splitlines(), start=1):
        fields = [entry_to_id(t, root) for t in line.replace(",", " ").split()]
        if not fields:
            continue
        if len(set(fields)) > 1:
            raise DataError(f"{path}:{n}: the entries {line.split()} name different pairs "
                            f"({sorted(set(fields))})")
        ids.append(fields[0])
    if len(set(ids)) != len(ids):
        dup = sorted({i for i in ids if ids.count(i) > 1})[:3]
        raise DataError(f"{path}: ids listed twice (first: {dup})")
    return ids


def read_split_info(split_dir: str | Path) -> dict[str, Any]:
    """The ``split.json`` of a split folder (seed, mode, sizes, dataset root...).

    Raises:
        DataError: when the file is missing, damaged or not a JSON object.
    """
    f = Path(split_dir) / "split.json"
    if not f.is_file():
        raise DataError(f"{f}: not found")
    info = read_json(f, "split")  # damaged or not UTF-8: one line naming the file
    if not isinstance(info, dict):
        raise DataError(f"{f}: not a saropt split description (a JSON object); remake the "
                        "split with `saropt data split`")
    return info


def read_pairs(path: str | Path) -> list[Pair]:
    """``(sar_id, opt_id, label)`` tuples from a CSV with header ``sar_id,opt_id,label``.

    Raises:
        DataError: when the file is missing, the header differs, or a row is not
            ``sar_id,opt_id,0|1``.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: pairs file not found")
    with io.StringIO(read_text_file(path), newline="") as f:
        reader = csv.reader(f)
        header = next(reader, None)
        if header != ["sar_id", "opt_id", "label"]:
            raise DataError(f"{path}: header must be 'sar_id,opt_id,label', got {header}")
        pairs = []
        for line, row in enumerate(reader, start=2):
            if len(row) != 3 or row[2] not in ("0", "1"):
                raise DataError(f"{path}:{line}: expected 'sar_id,opt_id,0|1', got {row}")
            pairs.append((row[0], row[1], int(row[2])))
    return pairs
