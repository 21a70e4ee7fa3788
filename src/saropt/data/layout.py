"""Finding the SAR-optical pairs of a dataset root, in any of the layouts the releases use.

Layouts (``LAYOUTS``; detected from the root in this order, or forced by name):

- ``qxs``: QXS-SAROPT, ``ROOT/sar_256_oc_0.2/<id>.png`` + ``ROOT/opt_256_oc_0.2/<id>.png`` (any
  ``sar_<size>_oc_<overlap>`` folder pair, as ``saropt data build`` writes them); id = file stem.
- ``plain``: ``ROOT/sar/`` + ``ROOT/opt/`` (or ``optical/``), pairs share the file name; id = stem.
- ``sen12``: SEN1-2 (Schmitt et al. 2018),
  ``ROOT/ROIs1158_spring/s1_1/ROIs1158_spring_s1_1_p30.png`` with its twin
  ``.../s2_1/ROIs1158_spring_s2_1_p30.png`` (ROOT may also be one ``ROIs*`` folder);
  id = the stem without ``s1_``: ``ROIs1158_spring_1_p30``.
- ``osdataset``: OSdataset (Xiang et al. 2020), ``ROOT/{256,512}/{train,val,test}/sarN.png`` +
  ``optN.png`` in the same folder (ROOT may also be a size or split folder); id = the folder
  relative to ROOT plus N: ``256/train/12``. The release's own train/val/test assignment is kept
  (``Layout.release_split``).

Explicit ``sar_dir``/``opt_dir`` folder names pair files by stem in those two folders (kind
``folders``). Ids are sorted numerically when every id is an integer, otherwise in natural order.
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
        """Record one problem of ``kind`` (see :data:`PROBLEM_KINDS`)."""
        self.items.setdefault(kind, []).append(message)

    def __bool__(self) -> bool:
        return any(self.items.values())

    def counts(self) -> dict[str, int]:
        """Number of problems per kind, in :data:`PROBLEM_KINDS` order (empty kinds left out)."""
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
        """Raise a DataError (a SaroptError) ``"context:"`` + :meth:`summary` if any problem."""
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


def expected_patch_size(folder_name: str) -> int | None:
    """The patch size written in a QXS folder name (``sar_256_oc_0.2`` -> 256), else None."""
    m = re.search(r"(?:^|_)(\d{2,5})(?:_|$)", folder_name)
    return int(m.group(1)) if m else None


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


#: pair layouts detected by :func:`scan_layout`, in detection order, with what each looks like
LAYOUTS: dict[str, str] = {
    "qxs": "QXS-SAROPT sar_256_oc_0.2/N.png + opt_256_oc_0.2/N.png",
    "plain": "sar/ + opt/ with the same file names",
    "sen12": "SEN1-2 ROIs*/s1_N/*_s1_N_pK.png + s2_N twin",
    "osdataset": "OSdataset {256,512}/{train,val,test}/sarN.png + optN.png",
}
_QXS_DIR = re.compile(r"^(sar|opt)_(\d+_oc_[\d.]+)$", re.IGNORECASE)
_PLAIN_SAR, _PLAIN_OPT = ("sar",), ("opt", "optical")
_SEN12_DIR = re.compile(r"^s1_(\d+)$")
_SEN12_FILE = re.compile(r"^(?P<head>.+)_s(?P<m>[12])_(?P<n>\d+)_p(?P<p>\d+)$")
_OS_FILE = re.compile(r"^(sar|opt)(\d+)$", re.IGNORECASE)
_RELEASE_PARTS = {"train": "train", "val": "val", "validation": "val", "test": "test"}


@dataclass
class Layout:
    """The pairs found in a dataset root.

    ``kind``: the layout (a key of :data:`LAYOUTS`, or ``folders`` for explicit folder names);
    ``patch_size``: the size the layout names (``sar_256_oc_0.2`` -> 256), else None;
    ``release_split``: the release's own ``{"train"|"val"|"test": ids}`` (OSdataset), else None.
    """

    root: Path
    sar_dir: Path
    opt_dir: Path
    ids: list[str]
    sar_files: dict[str, Path]
    opt_files: dict[str, Path]
    problems: Problems
    kind: str = "folders"
    patch_size: int | None = None
    release_split: dict[str, list[str]] | None = None

    def sar_path(self, id_: str) -> Path:
        """The SAR image file of pair ``id_`` (KeyError for an unknown id)."""
        return self.sar_files[id_]

    def opt_path(self, id_: str) -> Path:
        """The optical image file of pair ``id_`` (KeyError for an unknown id)."""
        return self.opt_files[id_]

    def describe(self) -> str:
        """``ROOT (layout: where the SAR and optical files are)`` for messages."""
        if self.kind in ("qxs", "plain", "folders"):
            return f"{self.root} ({self.sar_dir.name} + {self.opt_dir.name})"
        return f"{self.root} ({self.kind} layout)"


def _subdirs(folder: Path) -> list[Path]:
    try:
        with os.scandir(folder) as it:
            return sorted((Path(e.path) for e in it if e.is_dir() and not e.name.startswith(".")),
                          key=lambda p: natural_key(p.name))
    except OSError:
        return []


def _qxs_dirs(root: Path) -> tuple[str, str] | None:
    """The ``sar_<S>_oc_<O>`` / ``opt_<S>_oc_<O>`` pair of ``root`` (the twin of a lone one)."""
    found: dict[str, dict[str, str]] = {}
    for d in _subdirs(root):
        m = _QXS_DIR.match(d.name)
        if m:
            found.setdefault(m.group(2), {})[m.group(1).lower()] = d.name
    if not found:
        return None
    if len(found) > 1:
        names = ", ".join(f"sar_{k} + opt_{k}" for k in found)
        raise DataError(f"{root}: several QXS folder pairs ({names}); choose one with "
                        "--sar-dir and --opt-dir")
    (suffix, sides), = found.items()
    return sides.get("sar", f"sar_{suffix}"), sides.get("opt", f"opt_{suffix}")


def _plain_dirs(root: Path) -> tuple[str, str] | None:
    names = {d.name.lower(): d.name for d in _subdirs(root)}
    sar = next((names[n] for n in _PLAIN_SAR if n in names), None)
    opt = next((names[n] for n in _PLAIN_OPT if n in names), None)
    return (sar, opt) if sar and opt else None


def _sen12_dirs(root: Path) -> list[Path]:
    """The ``s1_N`` folders of a SEN1-2 root (``ROOT/ROIs*/s1_N`` or ``ROOT/s1_N``)."""
    own = [d for d in _subdirs(root) if _SEN12_DIR.match(d.name)]
    if own:
        return own
    return [d for season in _subdirs(root) if season.name.lower().startswith("rois")
            for d in _subdirs(season) if _SEN12_DIR.match(d.name)]


def _os_folders(root: Path) -> list[Path]:
    """Folders up to two levels below ``root`` (and ``root``) holding ``sarN``/``optN`` images."""
    levels = [[root]]
    for _ in range(2):
        levels.append([d for f in levels[-1] for d in _subdirs(f)])
    out = []
    for folder in (f for level in levels for f in level):
        try:
            with os.scandir(folder) as it:
                if any(_OS_FILE.match(Path(e.name).stem) and Path(e.name).suffix.lower()
                       in IMAGE_SUFFIXES for e in it):
                    out.append(folder)
        except OSError:
            continue
    return out


def detect_layout(root: str | Path) -> str:
    """The name of the layout ``root`` holds (a key of :data:`LAYOUTS`).

    Raises:
        DataError: when ``root`` is not a folder, holds several QXS folder pairs, or fits no
            layout (the message names the layouts looked for).
    """
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"dataset root {root} does not exist or is not a folder")
    if _qxs_dirs(root):
        return "qxs"
    if _plain_dirs(root):
        return "plain"
    if _sen12_dirs(root):
        return "sen12"
    if _os_folders(root):
        return "osdataset"
    looked = "; ".join(f"{k}: {v}" for k, v in LAYOUTS.items())
    raise DataError(f"{root}: no SAR-optical pair layout found (looked for {looked}); point "
                    "at the folder holding them, or give --sar-dir and --opt-dir")


def scan_layout(root: str | Path, sar_dir: str | None = None, opt_dir: str | None = None,
                qxs_names: bool = False, layout: str = "auto") -> Layout:
    """The pairs of ``root``; every pairing problem goes to ``problems``.

    ``sar_dir`` and ``opt_dir`` (both or neither) name the two folders explicitly; otherwise
    ``layout`` (``"auto"`` or a key of :data:`LAYOUTS`) says how to find the pairs.
    ``qxs_names=True`` also flags names that are not ``1 .. N`` (QXS and explicit folders only).

    Raises:
        DataError: only one of the folder names given, an unknown layout name, a root that is
            not a folder (auto), several QXS folder pairs, or no layout found.
    """
    root = Path(root)
    if (sar_dir is None) != (opt_dir is None):
        raise DataError("give both --sar-dir and --opt-dir, or neither (the layout is then "
                        "detected)")
    if sar_dir is not None:
        return _scan_folders(root, sar_dir, opt_dir, qxs_names, "folders")
    if layout not in ("auto", *LAYOUTS):
        raise DataError(f"unknown layout {layout!r}; choose auto or one of {sorted(LAYOUTS)}")
    kind = detect_layout(root) if layout == "auto" else layout
    if kind == "qxs":
        dirs = _qxs_dirs(root) or ("sar_256_oc_0.2", "opt_256_oc_0.2")
        return _scan_folders(root, *dirs, qxs_names, "qxs")
    if kind == "plain":
        return _scan_folders(root, *(_plain_dirs(root) or ("sar", "opt")), False, "plain")
    if kind == "sen12":
        return _scan_sen12(root)
    return _scan_osdataset(root)


def _scan_folders(root: Path, sar_dir: str, opt_dir: str, qxs_names: bool, kind: str) -> Layout:
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
    if qxs_names and kind in ("qxs", "folders"):
        for stem in sort_ids(set(sar) | set(opt)):
            why = qxs_name_problem(stem)
            if why:
                path = sar.get(stem) or opt[stem]
                problems.add("bad name", f"{path}: name {stem!r} {why} (QXS layout expects "
                             "1.png .. N.png)")
    size = expected_patch_size(Path(sar_dir).name) if kind in ("qxs", "folders") else None
    return Layout(root, root / sar_dir, root / opt_dir, ids, sar, opt, problems, kind, size)


def _pair_by_id(sar: dict[str, Path], opt: dict[str, Path], problems: Problems) -> list[str]:
    for id_ in sort_ids(set(sar) - set(opt)):
        problems.add("missing counterpart", f"{sar[id_]} has no optical twin")
    for id_ in sort_ids(set(opt) - set(sar)):
        problems.add("missing counterpart", f"{opt[id_]} has no SAR twin")
    return sort_ids(set(sar) & set(opt))


def _add_file(files: dict[str, Path], id_: str, path: Path, problems: Problems) -> None:
    if id_ in files:
        problems.add("duplicate id", f"{path} and {files[id_].name} share id {id_!r}")
    else:
        files[id_] = path


def _scan_sen12(root: Path) -> Layout:
    problems = Problems()
    sar: dict[str, Path] = {}
    opt: dict[str, Path] = {}
    s1_dirs = _sen12_dirs(root)
    if not s1_dirs:
        problems.add("missing folder", f"{root} holds no SEN1-2 s1_N folders "
                     "(ROIs*/s1_N/ or s1_N/)")
    for s1 in s1_dirs:
        s2 = s1.parent / f"s2_{_SEN12_DIR.match(s1.name).group(1)}"
        for folder, files, want in ((s1, sar, "1"), (s2, opt, "2")):
            for stem, path in scan_folder(folder, problems).items():
                m = _SEN12_FILE.match(stem)
                if not m or m.group("m") != want:
                    problems.add("bad name", f"{path}: not a SEN1-2 s{want} patch name "
                                 f"(<ROI>_s{want}_<N>_p<K>)")
                    continue
                _add_file(files, sen12_id(m), path, problems)
    ids = _pair_by_id(sar, opt, problems)
    return Layout(root, root, root, ids, sar, opt, problems, "sen12", 256)


def sen12_id(m: re.Match) -> str:
    """``ROIs1158_spring_s1_1_p30`` -> ``ROIs1158_spring_1_p30`` (same for its ``s2`` twin)."""
    return f"{m.group('head')}_{m.group('n')}_p{m.group('p')}"


def _scan_osdataset(root: Path) -> Layout:
    problems = Problems()
    sar: dict[str, Path] = {}
    opt: dict[str, Path] = {}
    release: dict[str, list[str]] = {}
    sizes = set()
    folders = _os_folders(root)
    if not folders:
        problems.add("missing folder", f"{root} holds no OSdataset sarN/optN images "
                     "({256,512}/{train,val,test}/)")
    for folder in folders:
        rel = folder.relative_to(root).as_posix()
        parts = [] if rel == "." else rel.split("/")
        part = next((_RELEASE_PARTS[p.lower()] for p in reversed(parts)
                     if p.lower() in _RELEASE_PARTS), None)
        sizes.add(next((int(p) for p in parts if p.isdigit()), None))
        for stem, path in scan_folder(folder, problems).items():
            m = _OS_FILE.match(stem)
            if not m:
                problems.add("bad name", f"{path}: not an OSdataset name (sarN / optN)")
                continue
            id_ = "/".join([*parts, m.group(2)])
            _add_file(sar if m.group(1).lower() == "sar" else opt, id_, path, problems)
            if part and m.group(1).lower() == "sar":
                release.setdefault(part, []).append(id_)
    ids = _pair_by_id(sar, opt, problems)
    paired = set(ids)
    split = {k: sort_ids(i for i in release.get(k, []) if i in paired) for k in
             ("train", "val", "test")} if release else None
    size = sizes.pop() if len(sizes) == 1 else None
    return Layout(root, root, root, ids, sar, opt, problems, "osdataset", size, split)


def entry_to_id(entry: str, root: str | Path | None = None) -> str:
    """The pair id a split-list entry names.

    An id stays as it is (``SARShip-1.0-3``); a path relative to the dataset root becomes its
    id (``opt_256_oc_0.2/123.png`` -> ``123``;
    ``ROIs1158_spring/s1_1/ROIs1158_spring_s1_1_p30.png`` -> ``ROIs1158_spring_1_p30``;
    ``256/train/opt12.png`` -> ``256/train/12``). An entry is a path only when it ends in a
    known image suffix, and only that suffix is stripped. An absolute path inside ``root`` is
    taken relative to it (``/data/OS/256/train/opt12.png`` with root ``/data/OS`` ->
    ``256/train/12``).
    """
    text = entry.strip().replace("\\", "/")
    name = text.rsplit("/", 1)[-1]
    suffix = Path(name).suffix.lower()
    if suffix not in IMAGE_SUFFIXES:  # an id (OSdataset ids hold slashes: 256/train/12)
        return text
    if root is not None and text.startswith("/"):
        text = _relative_to_root(text, Path(root))
    stem = name[: -len(suffix)]
    parents = [p for p in text.split("/")[:-1] if p not in ("", ".")]
    m = _SEN12_FILE.match(stem)
    if m:
        return sen12_id(m)
    m = _OS_FILE.match(stem)
    if m and not (parents and _QXS_DIR.match(parents[-1])) and not (
            parents and parents[-1].lower() in _PLAIN_SAR + _PLAIN_OPT):
        return ("/" if text.startswith("/") else "") + "/".join([*parents, m.group(2)])
    return stem


def _relative_to_root(path: str, root: Path) -> str:
    """``path`` (absolute) relative to ``root`` as given or resolved, else as it is."""
    for base in (root.absolute(), root.resolve()):
        try:
            return Path(path).relative_to(base).as_posix()
        except ValueError:
            continue
    try:
        return Path(path).resolve().relative_to(root.resolve()).as_posix()
    except (ValueError, OSError):
        return path
