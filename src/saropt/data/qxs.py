"""The QXS-SAROPT dataset reader: SAR-optical patch pairs as torch samples.

QXS-SAROPT (Huang et al. 2021; paper 002 section II, paper 003 section 3) holds 20,000
co-registered Gaofen-3 SAR / Google Earth optical 256x256 px patch pairs at 1 m x 1 m in
``ROOT/opt_256_oc_0.2/{1..N}.png`` + ``ROOT/sar_256_oc_0.2/``. Other layouts (SEN1-2,
OSdataset, ``sar/`` + ``opt/``) are read the same way (see :mod:`saropt.data.layout`).

Modelled on torchgeo's ``NonGeoDataset`` classes: samples are dicts, ``plot()`` draws one.

Batched reads: with a cache and no transforms, ``__getitems__`` (called by PyTorch's DataLoader
with the indices of one batch) reads all pairs of a batch from the memory maps in file order into
batch tensors at once; its samples are views into them, and the default collate function returns
those batch tensors without stacking (see :class:`BatchedSample`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset

from saropt.data.cache import PairCache
from saropt.data.images import RESAMPLING, read_opt, read_sar, resize_array
from saropt.data.layout import Layout, Problems, scan_layout, sort_ids
from saropt.errors import DataError

Sample = dict[str, Any]


class _Batch:
    """The collated form of samples read together, plus what identifies them unmodified.

    ``collated`` is what ``default_collate`` would build; the samples are identified without a
    reference back to them.
    """

    __slots__ = ("collated", "sample_ids", "snapshot")

    def __init__(self, collated: dict[str, Any], samples: list[Sample]) -> None:
        self.collated = collated
        self.sample_ids = [id(s) for s in samples]
        self.snapshot = [tuple(s.items()) for s in samples]

    def matches(self, batch: Sequence[Sample]) -> bool:
        """``batch`` is exactly these samples, in this order, none of them modified."""
        if len(batch) != len(self.sample_ids):
            return False
        for s, sid, snap in zip(batch, self.sample_ids, self.snapshot):
            if id(s) != sid or len(s) != len(snap) or any(s.get(k) is not v for k, v in snap):
                return False
        return True


class BatchedSample(dict):
    """A sample read by ``__getitems__``: a sample dict whose tensors view the batch tensors.

    ``default_collate`` (registered for this type) returns those batch tensors
    as they are when it is handed exactly the samples of one read, in order and unmodified;
    any other list (a subset, reordered, a changed value) is collated the ordinary way.
    """

    __slots__ = ("_batch",)


def _collate_batched(batch: Sequence[Sample], *, collate_fn_map: Any = None) -> Any:
    from torch.utils.data._utils.collate import collate

    whole = getattr(batch[0], "_batch", None)
    if whole is not None and whole.matches(batch):
        return dict(whole.collated)
    return collate([dict(s) for s in batch], collate_fn_map=collate_fn_map)


def _register_collate() -> None:
    try:  # torch's documented extension point for default_collate
        from torch.utils.data._utils.collate import default_collate_fn_map
    except ImportError:  # pragma: no cover - other torch versions: ordinary (stacking) collate
        return
    default_collate_fn_map[BatchedSample] = _collate_batched


_register_collate()


def batched_samples(collated: dict[str, Any]) -> list[Sample]:
    """Per-sample dicts (views) of a collated batch ``{key: tensor (N, ...) or list (N)}``.

    They are marked so that the default collate function hands ``collated`` back without
    copying (see :class:`BatchedSample`).
    """
    n = len(next(iter(collated.values())))
    samples: list[Sample] = []
    for k in range(n):
        s = BatchedSample({key: v[k] for key, v in collated.items()})
        samples.append(s)
    whole = _Batch(collated, samples)
    for s in samples:
        s._batch = whole
    return samples


def _empty_pair(n: int, h: int, w: int,
                dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    """Uninitialised SAR (n, 1, h, w) and optical (n, 3, h, w) batch tensors, both contiguous.

    In a DataLoader worker they share one block of shared memory (as the default collate
    allocates), so handing the batch to the main process copies nothing and passes one file
    descriptor instead of two.
    """
    if torch.utils.data.get_worker_info() is None:
        return torch.empty((n, 1, h, w), dtype=dtype), torch.empty((n, 3, h, w), dtype=dtype)
    plane = n * h * w
    storage = torch.UntypedStorage._new_shared(4 * plane * torch.empty(0, dtype=dtype).itemsize)
    sar = torch.empty(0, dtype=dtype).set_(storage, 0, (n, 1, h, w))
    opt = torch.empty(0, dtype=dtype).set_(storage, plane, (n, 3, h, w))
    return sar, opt


def sar_tensor(arr: np.ndarray, dtype: str = "float32") -> torch.Tensor:
    """uint8 ``(H, W)`` -> ``(1, H, W)``: float32 in [0, 1] (one numpy pass) or uint8 as stored.

    ``dtype`` is ``"float32"`` (divide by 255) or anything else for uint8 unchanged.
    """
    out = np.empty((1, *arr.shape), np.float32 if dtype == "float32" else np.uint8)
    if dtype == "float32":
        np.divide(arr, np.float32(255), out=out[0], dtype=np.float32)
    else:
        out[0] = arr
    return torch.from_numpy(out)


def opt_tensor(arr: np.ndarray, dtype: str = "float32") -> torch.Tensor:
    """uint8 ``(H, W, 3)`` -> ``(3, H, W)``: float32 in [0, 1] or uint8 as stored.

    OpenCV's ``cv2.split`` de-interleaves the channels, the fastest HWC -> CHW route measured
    (see benchmarks/). ``dtype`` as in :func:`sar_tensor`; channel order is kept (RGB).
    """
    out = np.empty((3, *arr.shape[:2]), np.float32 if dtype == "float32" else np.uint8)
    for c, plane in enumerate(cv2.split(np.ascontiguousarray(arr))):
        out[c] = plane
    if dtype == "float32":
        out /= np.float32(255)
    return torch.from_numpy(out)


def to_float(batch: dict[str, Any]) -> dict[str, Any]:
    """Convert the uint8 images of a sample or batch (``dtype="uint8"``) to float32 in [0, 1].

    Meant e.g. for the GPU after transfer: 4x less data through the DataLoader than float32
    samples. Only ``sar`` and ``opt`` uint8 tensors change (new float32 tensors, divided by
    255); other keys pass through. Returns a new dict; the input is not modified.
    """
    return {k: (v.float().div_(255.0) if k in ("sar", "opt") and isinstance(v, torch.Tensor)
                and v.dtype == torch.uint8 else v) for k, v in batch.items()}


def _relative_hint(unknown: str, known: set[str],
                   root: str | Path | None = None) -> str:
    """A hint when an id with folders is known relative to another folder level.

    E.g. an OSdataset ``256/train/12``: the split was made for a parent of this root. The
    folders dropped from the
    id must be those the root's own path ends in (``.../256`` for ``256/train/12``), so that
    ``train/1`` is never offered as the ``1`` of a ``test`` root.
    """
    parts = unknown.split("/")
    tail = Path(root).resolve().parts if root is not None else None
    for k in range(1, len(parts)):
        rest = "/".join(parts[k:])
        if rest in known and (tail is None or tuple(tail[len(tail) - k:]) == tuple(parts[:k])):
            return (f"; ids are relative to the dataset root and {unknown!r} is {rest!r} "
                    "here: give the root the split was made for")
    return ""


class QXSSAROPT(Dataset):
    """SAR-optical patch pairs sharing a file name in two folders.

    Samples are dicts ``{"sar": (1, H, W), "opt": (3, H, W) RGB, "id": str}`` (before
    ``transforms``), float32 in [0, 1] or uint8 0..255 by ``dtype``; ``H = W = patch_size``
    px unless ``patch_size`` is None. QXS-SAROPT itself is 256 px at 1 m (paper 002 section
    II.F).

    Args:
        root: dataset folder holding ``sar_dir`` and ``opt_dir``.
        ids: subset of pair ids (file stems) to use, e.g. from :func:`read_split`; all if None.
        sar_dir, opt_dir: the two folder names (both or neither); None finds the pairs by
            ``layout``.
        layout: ``"auto"`` (detect) or a layout name: ``qxs``, ``plain``, ``sen12``,
            ``osdataset`` (see :mod:`saropt.data.layout`).
        patch_size: expected side length; None accepts any size (pairs must still match).
        resize: None makes other sizes an error; a policy (``"bilinear"``, ``"area"``,
            ``"bicubic"``, ``"nearest"``, ``"lanczos"``) resizes them to ``patch_size``.
        transforms: callable on the sample dict (see :mod:`saropt.data.transforms`).
        cache: folder written by :func:`build_cache` / ``saropt data cache``; pairs are then
            read from its memory maps instead of decoding PNGs. When ``root`` is absent (a
            cache copied to a GPU node alone) the cache's ids are used as they are.
        check_cache: compare the cache's file sizes and mtimes with the sources (stale = error).
        dtype: ``"float32"`` (default, values in [0, 1]) or ``"uint8"`` (raw values 0..255, a
            quarter of the bytes through DataLoader workers; convert with :func:`to_float`).
            Transforms see the tensors in this dtype (the joint geometric ones work on both).

    Raises:
        ValueError: for an unknown ``dtype`` or ``resize`` policy, or ``resize`` without
            ``patch_size``.
        DataError: (a SaroptError) when the folder has pairing problems (missing partners,
            no layout found), ``ids`` names a pair not there or repeats one, or the cache is
            stale (``check_cache``). Reading a pair later raises DataError for an unreadable
            file or a size other than ``patch_size`` without ``resize``.
    """

    def __init__(self, root: str | Path, ids: Sequence[str] | None = None,
                 sar_dir: str | None = None, opt_dir: str | None = None,
                 patch_size: int | None = 256, resize: str | None = None,
                 transforms: Callable[[Sample], Sample] | None = None,
                 cache: str | Path | None = None, check_cache: bool = True,
                 dtype: str = "float32", layout: str = "auto") -> None:
        if dtype not in ("float32", "uint8"):
            raise ValueError(f"dtype must be 'float32' or 'uint8', got {dtype!r}")
        if resize is not None and resize not in RESAMPLING:
            raise ValueError(f"unknown resize policy {resize!r}; choose one of "
                             f"{sorted(RESAMPLING)} or None")
        if resize is not None and patch_size is None:
            raise ValueError("a resize policy needs a patch_size to resize to")
        self.root = Path(root)
        self.sar_dir, self.opt_dir, self.layout_name = sar_dir, opt_dir, layout
        self.patch_size, self.resize, self.transforms = patch_size, resize, transforms
        self.dtype = dtype
        self.cache = PairCache(cache) if cache is not None else None
        self.layout = self._scan(check_cache)
        available = self.cache.ids if self.layout is None else self.layout.ids
        self.ids: list[str] = self._select(available, ids)

    def _scan(self, check_cache: bool) -> Layout | None:
        if self.cache is not None and not self.root.exists():
            return None  # cache-only use
        layout = scan_layout(self.root, self.sar_dir, self.opt_dir, layout=self.layout_name)
        layout.problems.raise_if_any(f"dataset {layout.describe()}")
        if self.cache is not None and check_cache:
            self.cache.check_source(layout)
        return layout

    def _select(self, available: list[str], ids: Sequence[str] | None) -> list[str]:
        if ids is None:
            return list(available)
        ids = [str(i) for i in ids]
        known = set(available)
        unknown = [i for i in ids if i not in known]
        if unknown:
            raise DataError(f"dataset {self.root}: {len(unknown)} requested ids have no pair "
                            f"(first: {unknown[:5]})"
                            + _relative_hint(unknown[0], known, self.root))
        if len(set(ids)) != len(ids):
            raise DataError(f"dataset {self.root}: the requested ids contain duplicates")
        return sort_ids(ids)

    # ---- raw access -------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.ids)

    def sar_path(self, id_: str) -> Path:
        """The SAR file of pair ``id_`` (where it would be, for a cache used without ``root``)."""
        if self.layout:
            return self.layout.sar_path(id_)
        return self.root / str(self.cache.source.get("sar_dir") or "sar") / f"{id_}.png"

    def opt_path(self, id_: str) -> Path:
        """The optical file of pair ``id_`` (as :meth:`sar_path`)."""
        if self.layout:
            return self.layout.opt_path(id_)
        return self.root / str(self.cache.source.get("opt_dir") or "opt") / f"{id_}.png"

    def _fit(self, arr: np.ndarray, id_: str, kind: str) -> np.ndarray:
        size = self.patch_size
        if size is None or arr.shape[:2] == (size, size):
            return arr
        if self.resize is None:
            path = self.sar_path(id_) if kind == "sar" else self.opt_path(id_)
            raise DataError(f"{path}: {arr.shape[1]}x{arr.shape[0]} pixels, expected "
                            f"{size}x{size} (give a resize policy: --resize bilinear on the "
                            f"command line, data.resize=bilinear in a `saropt bnn train` "
                            f"config, resize='bilinear' in Python; or patch_size="
                            f"{arr.shape[1]} where the size is free)")
        return resize_array(np.ascontiguousarray(arr), size, self.resize)

    def _raw_sar(self, id_: str) -> np.ndarray:
        return self.cache.sar(id_) if self.cache else read_sar(self.sar_path(id_))

    def _raw_opt(self, id_: str) -> np.ndarray:
        return self.cache.opt(id_) if self.cache else read_opt(self.opt_path(id_))

    def sar_u8(self, id_: str) -> np.ndarray:
        """SAR patch ``id_`` as uint8 (H, W) at the configured size (cache or PNG)."""
        return self._fit(self._raw_sar(id_), id_, "sar")

    def opt_u8(self, id_: str) -> np.ndarray:
        """Optical patch ``id_`` as uint8 (H, W, 3) at the configured size (cache or PNG)."""
        return self._fit(self._raw_opt(id_), id_, "opt")

    def pair_u8(self, id_: str) -> tuple[np.ndarray, np.ndarray]:
        """Both patches of pair ``id_``: uint8 ``(H, W)`` SAR and ``(H, W, 3)`` optical.

        Raises:
            DataError: when the two files differ in size, or (see :meth:`sar_u8`) a file is
                unreadable or of the wrong size.
        """
        sar, opt = self._raw_sar(id_), self._raw_opt(id_)
        if sar.shape != opt.shape[:2]:
            raise DataError(f"pair {id_!r}: {self.sar_path(id_)} is {sar.shape[1]}x{sar.shape[0]}"
                            f" but {self.opt_path(id_)} is {opt.shape[1]}x{opt.shape[0]} pixels")
        return self._fit(sar, id_, "sar"), self._fit(opt, id_, "opt")

    # ---- samples ----------------------------------------------------------------------------
    def get(self, id_: str) -> Sample:
        """The sample of pair ``id_`` (transforms applied); see the class docstring.

        Raises:
            KeyError: when the folder has no pair ``id_``.
        """
        if self.layout is not None and id_ not in self.layout.sar_files:
            raise KeyError(f"no pair with id {id_!r} in {self.root}")
        sar, opt = self.pair_u8(id_)
        sample: Sample = {"sar": sar_tensor(sar, self.dtype), "opt": opt_tensor(opt, self.dtype),
                          "id": id_}
        return self.transforms(sample) if self.transforms else sample

    def __getitem__(self, index: int) -> Sample:
        return self.get(self.ids[index])

    def __getitems__(self, indices: Sequence[int]) -> list[Sample]:
        """The samples of ``indices`` (one DataLoader batch), equal to ``[self[i] for i in ...]``.

        With a cache, no transforms and cached pairs at ``patch_size``, all pairs are
        read at once (memory maps in file order, one conversion per batch); otherwise sample by
        sample.
        """
        ids = [self.ids[i] for i in indices]
        if not self.can_batch():
            return [self.get(i) for i in ids]
        sar, opt = self.batch_tensors(ids, ids)
        return batched_samples({"sar": sar, "opt": opt, "id": ids})

    def can_batch(self) -> bool:
        """Whether :meth:`batch_tensors` applies: a cache, no transforms, no resizing needed."""
        if self.cache is None or self.transforms is not None:
            return False
        return self.patch_size is None or self.cache.pair_shape == (self.patch_size,) * 2

    def batch_tensors(self, sar_ids: Sequence[str],
                      opt_ids: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """SAR of ``sar_ids`` ``(N, 1, H, W)`` and optical of ``opt_ids`` ``(N, 3, H, W)``.

        Read from the cache (:meth:`can_batch` must hold), in this dataset's dtype; byte for
        byte what :func:`sar_tensor` / :func:`opt_tensor` give per sample.
        """
        assert self.cache is not None
        pos = self.cache.position
        sar_pos = [pos[i] for i in sar_ids]
        opt_pos = [pos[i] for i in opt_ids]
        n, (h, w) = len(sar_pos), self.cache.pair_shape
        sar, opt = _empty_pair(n, h, w, torch.uint8 if self.dtype == "uint8" else torch.float32)
        sar_np, opt_np = sar.numpy(), opt.numpy()
        self.cache.read_sar_into(sar_pos, sar_np[:, 0])
        self.cache.read_opt_into(opt_pos, opt_np)
        if self.dtype == "float32":  # values cast exactly, then one float32 division each
            np.divide(sar_np, np.float32(255), out=sar_np)
            np.divide(opt_np, np.float32(255), out=opt_np)
        return sar, opt

    def problems(self) -> Problems:
        """Pairing problems of the folder (empty unless a check was skipped)."""
        return self.layout.problems if self.layout else Problems()

    def plot(self, sample: Sample, show_titles: bool = True, suptitle: str | None = None) -> Any:
        """A matplotlib Figure of one sample: optical left, SAR right."""
        from saropt.data.plot import plot_pair

        return plot_pair(sample, show_titles, suptitle)

    def plot_batch(self, samples: Sequence[Sample] | Sample | Sequence[int] | None = None,
                   n: int = 8, show_titles: bool = True, suptitle: str | None = None) -> Any:
        """A matplotlib Figure: optical row above SAR row (paper 003 Fig. 5).

        ``samples``: sample dicts, a collated batch, or indices; None draws the first ``n``
        pairs.
        """
        from saropt.data.plot import plot_batch

        if samples is None:
            samples = list(range(min(n, len(self))))
        if isinstance(samples, Sequence) and samples and isinstance(samples[0], int):
            samples = [self[i] for i in samples]
        return plot_batch(samples, show_titles, suptitle)

    def __repr__(self) -> str:
        src = f", cache={self.cache.path}" if self.cache else ""
        return (f"QXSSAROPT(root={self.root}, pairs={len(self)}, patch_size={self.patch_size}, "
                f"resize={self.resize}{src})")
