"""The BNN LightningDataModule on the QXS-SAROPT data layer (``saropt.data``).

Training pairs: every training patch as a true pair plus ``neg_per_pos`` false pairs per true
pair, redrawn each epoch from the epoch number (deterministic, so a resumed run sees the same
pairs); validation pairs: the split's fixed 1:1 ``val_pairs.csv`` (``test_pairs.csv`` when the
split has no validation pairs, for the training curves only).
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from saropt.bnn.config import BNNConfig
from saropt.engine import EpochShuffleSampler, training_epoch
from saropt.errors import SaroptError


def base_dataset(cfg: BNNConfig, ids: Sequence[str] | None) -> Any:
    """A ``saropt.data.QXSSAROPT`` over ``ids`` (None: all) with the configured layout and size.

    Items hold ``sar`` ``(1, S, S)`` and ``opt`` ``(3, S, S)`` float in [0, 1], S =
    ``cfg.input_size`` (px). Raises :class:`SaroptError` when ``data.root`` is not set (and the
    data layer's :class:`~saropt.errors.DataError` for unusable files).
    """
    from saropt.data import QXSSAROPT
    from saropt.data.transforms import Resize

    d = cfg.data
    if d.root is None:
        raise SaroptError("data.root is not set (give data.root=/path/to/QXS-SAROPT)")
    transforms = Resize(d.image_size) if d.image_size and d.image_size != d.patch_size else None
    return QXSSAROPT(d.root, ids=ids, sar_dir=d.sar_dir, opt_dir=d.opt_dir,
                     patch_size=d.patch_size, resize=d.resize, transforms=transforms,
                     cache=d.cache, layout=d.layout)


def read_split_dir(split: str | Path | None,
                   root: str | Path | None = None) -> dict[str, list[str]]:
    """The split's id lists ``{"train", "val", "test"}`` (``saropt.data.read_split``).

    Absolute paths inside ``root`` are taken relative to it. Raises :class:`SaroptError` when
    ``split`` is None (``data.split`` not set) or not a folder.
    """
    from saropt.data import read_split

    if split is None:
        raise SaroptError("data.split is not set (make one with `saropt data split`)")
    if not Path(split).is_dir():
        raise SaroptError(f"data.split {split} is not a folder")
    return read_split(split, root)


def eval_pairs_path(split: str | Path, which: str) -> Path | None:
    """``split/<which>_pairs.csv`` when it exists and holds pairs (not just a header), else None."""
    p = Path(split) / f"{which}_pairs.csv"
    if not p.is_file():
        return None
    with open(p) as f:
        rows = sum(1 for line in f if line.strip())
    return p if rows > 1 else None


def eval_pairs(cfg: BNNConfig, split: str | Path, which: str) -> Dataset | None:
    """The fixed evaluation pairs ``which`` (val or test) as an ``EvalPairs`` dataset, or None.

    Items: ``sar`` ``(1, S, S)``, ``opt`` ``(3, S, S)`` float in [0, 1], ``label`` 1.0 / 0.0.
    """
    from saropt.data import EvalPairs, read_pairs

    path = eval_pairs_path(split, which)
    if path is None:
        return None
    pairs = read_pairs(path)
    if not pairs:
        return None
    ids = sorted({p[0] for p in pairs} | {p[1] for p in pairs})
    return EvalPairs(base_dataset(cfg, ids), pairs)


def check_data_config(cfg: BNNConfig) -> None:
    """Fail fast, before the run folder or any model exists, on data that cannot train.

    Reads the first training pair, so a pair of another size than ``data.patch_size`` without
    ``data.resize`` is refused here rather than at the first batch.

    Raises:
        SaroptError: ``data.root`` unset or not a folder (without ``data.cache``),
            ``data.split`` unset or not a folder, or the first training pair unreadable or
            of another size (:class:`~saropt.errors.DataError`, naming the file).
    """
    d = cfg.data
    if d.root is None:
        raise SaroptError("data.root is not set (give data.root=/path/to/QXS-SAROPT)")
    if not Path(d.root).is_dir() and d.cache is None:
        raise SaroptError(f"data.root {d.root} is not a folder")
    first = read_split_dir(d.split, d.root).get("train", [])[:1]
    if first and d.cache is None:
        base_dataset(cfg, first)[0]


def select_train_ids(ids: list[str], size: int | None, seed: int) -> list[str]:
    """All training ids, or a sorted random subset of ``size`` drawn with ``seed``.

    Paper 003 Table 2 trains on 4,000 and 8,000 pairs this way. Raises :class:`SaroptError` when
    ``size`` exceeds the number of training ids.
    """
    if size is None:
        return ids
    if size > len(ids):
        raise SaroptError(f"data.train_size={size} but the split has only {len(ids)} "
                          "training pairs")
    return sorted(random.Random(seed).sample(ids, size))


class ShiftedFalsePairs(Dataset):
    """Training pairs with shifted false pairs, for position-sensitive codes (not in the paper).

    ``TrainPairs`` whose false pairs are, with probability ``frac``, the true optical patch
    shifted by (dx, dy), ``shift_min <= max(|dx|, |dy|) <= shift_max`` px, instead of another
    patch (the paper's false pairs are random other patches only).

    Every pair is cropped to side ``C = P - 2 shift_max``: the SAR at the patch centre, the
    optical at the centre (true pairs, random-partner false pairs) or shifted (shifted false
    pairs), then resized to ``out_size``. Draws depend on (seed, epoch, index) only. Items as
    :class:`saropt.data.TrainPairs`; ``opt_id`` of a shifted pair is ``"<id>@dx,dy"``.
    """

    def __init__(self, pairs: Any, frac: float, shift_min: int, shift_max: int, out_size: int,
                 seed: int = 0) -> None:
        self.pairs, self.frac, self.seed = pairs, float(frac), int(seed)
        self.shift_min, self.shift_max, self.out_size = shift_min, shift_max, out_size

    def set_epoch(self, epoch: int) -> None:
        """Draw the false pairs of ``epoch`` (passed on to the wrapped ``TrainPairs``)."""
        self.pairs.set_epoch(epoch)

    def __len__(self) -> int:
        return len(self.pairs)

    def draw(self, index: int) -> tuple[int, int, float, tuple[int, int] | None]:
        """(SAR index, optical index, label, shift or None) of item ``index`` this epoch."""
        i, j, label = self.pairs.pair_indices(index)
        if label > 0.5:
            return i, j, label, None
        rng = np.random.default_rng([self.seed, self.pairs.epoch, index, 12])
        if rng.random() >= self.frac:
            return i, j, label, None
        while True:
            dx, dy = (int(v) for v in rng.integers(-self.shift_max, self.shift_max + 1, 2))
            if max(abs(dx), abs(dy)) >= self.shift_min:
                return i, i, label, (dx, dy)

    def __getitem__(self, index: int) -> dict[str, Any]:
        from saropt.data import opt_tensor, sar_tensor
        from saropt.data.transforms import Resize

        i, j, label, shift = self.draw(index)
        base = self.pairs.base
        sid, oid = base.ids[i], base.ids[j]
        sar, opt = base.pair_u8(sid) if i == j else (base.sar_u8(sid), base.opt_u8(oid))
        m = self.shift_max
        c = sar.shape[0] - 2 * m
        dx, dy = shift or (0, 0)
        sample = {"sar": sar_tensor(np.ascontiguousarray(sar[m:m + c, m:m + c]), base.dtype),
                  "opt": opt_tensor(np.ascontiguousarray(
                      opt[m + dy:m + dy + c, m + dx:m + dx + c]), base.dtype),
                  "label": torch.tensor(label, dtype=torch.float32), "sar_id": sid,
                  "opt_id": f"{oid}@{dx},{dy}" if shift else oid}
        return Resize(self.out_size)(sample)


class BNNDataModule(L.LightningDataModule):
    """The BNN's Lightning data: training pairs (true + false, redrawn per epoch), val pairs.

    Training batches hold ``batch_size`` pairs: ``sar`` ``(B, 1, S, S)``, ``opt``
    ``(B, 3, S, S)`` float in [0, 1], ``label`` ``(B,)`` (1 true, 0 false), S =
    ``cfg.input_size`` px; the order is drawn from (seed, epoch) only, so a resumed run sees the
    same batches (:class:`saropt.engine.EpochShuffleSampler`).
    """

    def __init__(self, cfg: BNNConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.train_pairs: Any = None
        self.val_pairs: Dataset | None = None

    def setup(self, stage: str | None = None) -> None:
        """Read the split and build the datasets once (Lightning hook).

        Raises :class:`SaroptError` when the split is missing or selects no training ids.
        """
        from saropt.data import TrainPairs

        if self.train_pairs is not None:
            return
        d = self.cfg.data
        split = read_split_dir(d.split, d.root)
        train_ids = select_train_ids(split["train"], d.train_size, d.seed)
        if not train_ids:
            raise SaroptError(f"split {d.split} has no training ids")
        if d.shift_neg_frac > 0:
            plain = base_dataset(self.cfg.model_copy(update={"data": d.model_copy(
                update={"image_size": None})}), train_ids)
            self.train_pairs = ShiftedFalsePairs(
                TrainPairs(plain, neg_per_pos=d.neg_per_pos, seed=d.seed), d.shift_neg_frac,
                d.shift_min, d.shift_max, self.cfg.input_size, seed=d.seed)
        else:
            self.train_pairs = TrainPairs(base_dataset(self.cfg, train_ids),
                                          neg_per_pos=d.neg_per_pos, seed=d.seed)
        self.val_pairs = (eval_pairs(self.cfg, d.split, "val")
                          or eval_pairs(self.cfg, d.split, "test"))

    def set_epoch(self, epoch: int) -> None:
        """Draw the false pairs of ``epoch`` (no-op before :meth:`setup`)."""
        if self.train_pairs is not None:
            self.train_pairs.set_epoch(epoch)

    def _loader(self, ds: Dataset, batch_size: int, sampler: Sampler | None) -> DataLoader:
        w = self.cfg.data.num_workers
        return DataLoader(ds, batch_size=batch_size, sampler=sampler, num_workers=w,
                          persistent_workers=False, pin_memory=torch.cuda.is_available())

    def train_dataloader(self) -> DataLoader:
        """Training pairs in an order drawn from (``data.seed``, epoch) (Lightning hook)."""
        sampler = EpochShuffleSampler(len(self.train_pairs), self.cfg.data.seed,
                                      on_epoch=self.train_pairs.set_epoch,
                                      epoch_fn=lambda: training_epoch(self.trainer))
        return self._loader(self.train_pairs, self.cfg.data.batch_size, sampler)

    def val_dataloader(self) -> DataLoader | list:
        """The fixed validation pairs (Lightning hook); ``[]`` when the split has none.

        Under DDP each rank scores a disjoint share, none twice (Lightning's default sampler
        would pad with repeats, biasing the gathered metrics).
        """
        if self.val_pairs is None:
            return []
        sampler = None
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            from lightning.pytorch.overrides.distributed import UnrepeatedDistributedSampler

            sampler = UnrepeatedDistributedSampler(self.val_pairs, shuffle=False)
        return self._loader(self.val_pairs, self.cfg.data.eval_batch_size, sampler)
