"""Decode-once cache: every pair decoded into uint8 memory-mapped arrays plus an index.

Layout of a cache folder::

    sar.u8      raw uint8, C order, shape (N, H, W)
    opt.u8      raw uint8, C order, shape (N, H, W, 3)
    index.json  ids, shapes, source root and folders, per-file sizes and mtimes (staleness)

The arrays are written to temporary files beside their final names and ``index.json`` last, all
renamed into place only after every pair was decoded: a failing or killed rerun leaves the
previous cache whole, and its temporaries are removed on the next start. The folder is locked
while it is written (:func:`saropt.utils.outdir.prepare_out_dir`), so two runs into one folder
cannot both succeed, and a folder holding another dataset's cache is refused unless
``overwrite``. Reading a pair is a slice of a memory map
(no PNG decoding), and the operating system's page cache shares the bytes between workers.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from saropt.data.images import read_opt, read_sar, resize_array
from saropt.data.layout import Layout, scan_layout
from saropt.errors import DataError
from saropt.utils.io import atomic_path
from saropt.utils.outdir import config_hash, prepare_out_dir

CACHE_VERSION = 1


def _file_stamp(path: Path) -> list[int]:
    st = path.stat()
    return [st.st_size, st.st_mtime_ns]


def _decode_pair(layout: Layout, id_: str, size: int | None,
                 resize: str | None) -> tuple[np.ndarray, np.ndarray]:
    sar, opt = read_sar(layout.sar_path(id_)), read_opt(layout.opt_path(id_))
    if sar.shape != opt.shape[:2]:
        raise DataError(f"pair {id_!r}: {layout.sar_path(id_)} is {sar.shape[1]}x{sar.shape[0]} "
                        f"but {layout.opt_path(id_)} is {opt.shape[1]}x{opt.shape[0]} pixels")
    if size is not None and sar.shape != (size, size):
        if resize is None:
            raise DataError(f"{layout.sar_path(id_)}: {sar.shape[1]}x{sar.shape[0]} pixels, "
                            f"expected {size}x{size} (choose a resize policy to resize)")
        sar, opt = resize_array(sar, size, resize), resize_array(opt, size, resize)
    return sar, opt


def build_cache(root: str | Path, out: str | Path, sar_dir: str | None = None,
                opt_dir: str | None = None, patch_size: int | None = None,
                resize: str | None = None, ids: Sequence[str] | None = None,
                progress: bool = True, layout: str = "auto",
                overwrite: bool = False) -> Path:
    """Decode every pair of ``root`` once into ``out`` (see the module docstring); returns ``out``.

    The pairs are found as :func:`saropt.data.layout.scan_layout` finds them (``sar_dir`` and
    ``opt_dir``, or ``layout``: ``"auto"`` detects it).

    All pairs must share one size: ``patch_size`` px (or the first pair's size when None),
    unless a ``resize`` policy (a key of :data:`saropt.data.images.RESAMPLING`) brings them to
    ``patch_size``. Needs about ``4 * N * H * W`` bytes on disk (1 for SAR, 3 for optical).

    Raises:
        DataError: (a SaroptError) when the folder has pairing problems, an id of ``ids`` has
            no pair, a file is unreadable, a pair's two images differ in size, a size differs
            from ``patch_size`` (or the first pair's) without ``resize``, or the disk has too
            little free space.
        OutDirError: (a SaroptError) when ``out`` is in use, a file, or holds other output
            and ``overwrite`` is false.
    """
    layout = scan_layout(root, sar_dir, opt_dir, layout=layout)
    layout.problems.raise_if_any(f"cannot cache {layout.describe()}")
    ids = list(layout.ids if ids is None else ids)
    missing = [i for i in ids if i not in layout.sar_files or i not in layout.opt_files]
    if missing:
        raise DataError(f"{root}: {len(missing)} requested ids have no pair (first: {missing[:3]})")
    out = Path(out)
    source = {"root": str(Path(root).resolve()), "layout": layout.kind,
              "sar_dir": _folder_name(layout, layout.sar_dir),
              "opt_dir": _folder_name(layout, layout.opt_dir),
              "patch_size": patch_size, "resize": resize}
    with prepare_out_dir(out, "data cache", {**source, "ids": config_hash(ids)}, CACHE_FILES,
                         overwrite=overwrite, quiet=True) as od:
        _write_cache(layout, ids, out, patch_size, resize, source, progress)
        od.finish()
    return out


#: what ``saropt data cache`` writes
CACHE_FILES = ["sar.u8", "opt.u8", "index.json"]


def _write_cache(layout: Layout, ids: list[str], out: Path, patch_size: int | None,
                 resize: str | None, source: dict[str, Any], progress: bool) -> None:
    from tqdm import tqdm

    first_sar, _ = _decode_pair(layout, ids[0], patch_size, resize)
    h, w = first_sar.shape
    _check_space(out, len(ids) * h * w * 4)
    stamps: dict[str, list[list[int]]] = {"sar": [], "opt": []}
    # contexts exit in reverse order: the arrays are renamed into place first, index.json last
    with atomic_path(out / "index.json") as index_tmp, atomic_path(out / "sar.u8") as sar_tmp, \
            atomic_path(out / "opt.u8") as opt_tmp:
        sar_mm = np.memmap(sar_tmp, np.uint8, "w+", shape=(len(ids), h, w))
        opt_mm = np.memmap(opt_tmp, np.uint8, "w+", shape=(len(ids), h, w, 3))
        for n, id_ in enumerate(tqdm(ids, desc="caching pairs", unit="pair", disable=not progress)):
            sar, opt = _decode_pair(layout, id_, patch_size, resize)
            if sar.shape != (h, w):
                raise DataError(f"{layout.sar_path(id_)}: {sar.shape[1]}x{sar.shape[0]} pixels, "
                                f"but the cache holds {w}x{h} pairs (pass a patch size and a "
                                "resize policy to bring all pairs to one size)")
            sar_mm[n], opt_mm[n] = sar, opt
            stamps["sar"].append(_file_stamp(layout.sar_path(id_)))
            stamps["opt"].append(_file_stamp(layout.opt_path(id_)))
        sar_mm.flush()
        opt_mm.flush()
        del sar_mm, opt_mm
        index = {"version": CACHE_VERSION, "ids": ids, "sar_shape": [len(ids), h, w],
                 "opt_shape": [len(ids), h, w, 3], "dtype": "uint8", "source": source,
                 "stamps": stamps}
        index_tmp.write_text(json.dumps(index))


def _check_space(out: Path, need: int) -> None:
    """Refuse before writing when the disk cannot hold the cache.

    A memory map on a full disk dies with a bus error instead of an OSError.
    """
    import shutil

    free = shutil.disk_usage(out).free
    if free < need * 1.02 + (16 << 20):
        raise DataError(f"{out}: the cache needs {need / 2**20:.0f} MB but only "
                        f"{free / 2**20:.0f} MB are free on that disk; free space or choose "
                        "another --out")


def _folder_name(layout: Layout, folder: Path) -> str | None:
    """The folder name of a two-folder layout, None for layouts spread over many folders."""
    return folder.name if layout.kind in ("qxs", "plain", "folders") else None


class PairCache:
    """Read access to a cache folder; the memory maps open lazily (once per DataLoader worker).

    ``ids`` lists the cached pair ids in file order, ``position`` maps an id to its row.

    Raises:
        DataError: (a SaroptError) when ``path`` has no ``index.json``, the index is corrupt or
            of another cache version, or ``sar.u8`` / ``opt.u8`` are missing or of the wrong
            byte size.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        index_path = self.path / "index.json"
        if not index_path.is_file():
            raise DataError(f"{self.path}: not a saropt cache (no index.json; build one with "
                            "`saropt data cache ROOT --out CACHE`)")
        try:
            self.index: dict[str, Any] = json.loads(index_path.read_text())
        except json.JSONDecodeError as err:
            raise DataError(f"{index_path}: corrupt cache index ({err})") from None
        if self.index.get("version") != CACHE_VERSION:
            raise DataError(f"{index_path}: cache version {self.index.get('version')} is not "
                            f"{CACHE_VERSION}; rebuild it")
        self.ids: list[str] = self.index["ids"]
        self.position = {id_: n for n, id_ in enumerate(self.ids)}
        self._check_sizes()
        self._sar: np.ndarray | None = None
        self._opt: np.ndarray | None = None

    def _check_sizes(self) -> None:
        for name, key in (("sar.u8", "sar_shape"), ("opt.u8", "opt_shape")):
            f = self.path / name
            want = int(np.prod(self.index[key]))
            if not f.is_file() or f.stat().st_size != want:
                got = f.stat().st_size if f.is_file() else "missing"
                raise DataError(f"{f}: expected {want} bytes for shape {self.index[key]}, got "
                                f"{got}; rebuild the cache")

    @property
    def source(self) -> dict[str, Any]:
        """What the cache was built from: root, layout, folder names, patch size, resize."""
        return self.index["source"]

    def _maps(self) -> tuple[np.ndarray, np.ndarray]:
        if self._sar is None or self._opt is None:
            self._sar = np.memmap(self.path / "sar.u8", np.uint8, "r",
                                  shape=tuple(self.index["sar_shape"]))
            self._opt = np.memmap(self.path / "opt.u8", np.uint8, "r",
                                  shape=tuple(self.index["opt_shape"]))
        return self._sar, self._opt

    def sar(self, id_: str) -> np.ndarray:
        """The SAR patch of ``id_`` as a read-only uint8 (H, W) view."""
        return self._maps()[0][self.position[id_]]

    def opt(self, id_: str) -> np.ndarray:
        """The optical patch of ``id_`` as a read-only uint8 (H, W, 3) view."""
        return self._maps()[1][self.position[id_]]

    @property
    def pair_shape(self) -> tuple[int, int]:
        """(H, W) of every cached pair."""
        return int(self.index["sar_shape"][1]), int(self.index["sar_shape"][2])

    def read_sar_into(self, positions: Sequence[int], out: np.ndarray) -> np.ndarray:
        """Copy the SAR patches at cache ``positions`` into ``out`` and return it.

        ``out`` is ``(N, H, W)``, uint8 or a wider type the values are cast to; row ``k`` comes
        from ``positions[k]``. The memory map is read in ascending file order.
        """
        sar = np.asarray(self._maps()[0])
        for k in np.argsort(positions, kind="stable"):
            out[k] = sar[positions[k]]
        return out

    def read_opt_into(self, positions: Sequence[int], out: np.ndarray) -> np.ndarray:
        """Copy the optical patches at cache ``positions`` into ``out`` and return it.

        ``out`` is channel-first ``(N, 3, H, W)``, uint8 or a wider type; the ``(H, W, 3)``
        cached patches are de-interleaved by OpenCV (``cv2.split``) in file order.
        """
        opt = np.asarray(self._maps()[1])
        scratch = None if out.dtype == np.uint8 else np.empty(out.shape[1:], np.uint8)
        for k in np.argsort(positions, kind="stable"):
            dst = out[k] if scratch is None else scratch
            planes = cv2.split(opt[positions[k]], [dst[0], dst[1], dst[2]])
            if planes[0].ctypes.data != dst[0].ctypes.data:  # OpenCV allocated: copy over
                for c in range(3):
                    dst[c] = planes[c]
            if scratch is not None:
                out[k] = scratch
        return out

    def check_source(self, layout: Layout) -> None:
        """Raise a DataError unless every pair of ``layout`` is cached from unchanged files.

        Files are compared by size and modification time (see :meth:`stale_files`).

        A cache built from another dataset root says so (its root and layout), rather than
        listing every file as changed.
        """
        missing = [i for i in layout.ids if i not in self.position]
        stale = self.stale_files(layout)
        if not missing and not stale:
            return
        src = self.source
        built = Path(str(src.get("root", "")))
        if built.resolve() != layout.root.resolve():
            raise DataError(f"cache {self.path} was built from {built} ("
                            f"{src.get('layout') or 'folders'} layout), not from {layout.root}; "
                            f"pass the cache of this dataset (`saropt data cache {layout.root} "
                            "--out CACHE`) or none")
        what = stale[:3] + [f"id {i!r} not cached" for i in missing[:3]]
        raise DataError(f"cache {self.path} is stale for {layout.root}: {len(stale)} changed, "
                        f"{len(missing)} uncached (" + "; ".join(what) + "); rebuild it with "
                        "`saropt data cache`")

    def stale_files(self, layout: Layout) -> list[str]:
        """Source files whose size or mtime changed since caching (or that vanished).

        Returns one message per file (``"PATH changed"`` or ``"sar file of id ... is gone"``).
        """
        stale = []
        for n, id_ in enumerate(self.ids):
            for kind, files in (("sar", layout.sar_files), ("opt", layout.opt_files)):
                path = files.get(id_)
                if path is None or not os.path.exists(path):
                    stale.append(f"{kind} file of id {id_!r} is gone")
                elif _file_stamp(path) != self.index["stamps"][kind][n]:
                    stale.append(f"{path} changed")
        return stale

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_sar"] = state["_opt"] = None  # each worker maps the files itself
        return state
