"""The BNN LightningDataModule on the QXS-SAROPT data layer (``saropt.data``).

Training pairs: every training patch as a true pair plus ``neg_per_pos`` false pairs per true
pair, redrawn each epoch from the epoch number (deterministic, so a resumed run sees the same
pairs); validation pairs: the split's fixed 1:1 ``val_pairs.csv`` (``test_pairs.csv`` when the
split has no validation pairs, for the training curves only).
"""

from __future__ import annotations

import random
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import lightning as L
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from saropt.bnn.config import BNNConfig
from saropt.errors import SaroptError


class EpochShuffleSampler(Sampler[int]):
    """A permutation of ``range(n)`` drawn from ``(seed, epoch)``; Lightning calls ``set_epoch``."""

    def __init__(self, n: int, seed: int = 0) -> None:
        self.n, self.seed, self.epoch = n, seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self) -> Iterator[int]:
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        return iter(torch.randperm(self.n, generator=g).tolist())

    def __len__(self) -> int:
        return self.n


def base_dataset(cfg: BNNConfig, ids: Sequence[str] | None) -> Any:
    """A ``saropt.data.QXSSAROPT`` over ``ids`` with the configured folders, size and resize."""
    from saropt.data import QXSSAROPT
    from saropt.data.transforms import Resize

    d = cfg.data
    if d.root is None:
        raise SaroptError("data.root is not set (give data.root=/path/to/QXS-SAROPT)")
    transforms = Resize(d.image_size) if d.image_size and d.image_size != d.patch_size else None
    return QXSSAROPT(d.root, ids=ids, sar_dir=d.sar_dir, opt_dir=d.opt_dir,
                     patch_size=d.patch_size, transforms=transforms, cache=d.cache)


def read_split_dir(split: str | Path | None) -> dict[str, list[str]]:
    """The split's id lists (``saropt.data.read_split``), with a clear error when missing."""
    from saropt.data import read_split

    if split is None:
        raise SaroptError("data.split is not set (make one with `saropt data split`)")
    if not Path(split).is_dir():
        raise SaroptError(f"data.split {split} is not a folder")
    return read_split(split)


def eval_pairs_path(split: str | Path, which: str) -> Path | None:
    """``split/<which>_pairs.csv`` when it exists and holds pairs (not just a header)."""
    p = Path(split) / f"{which}_pairs.csv"
    if not p.is_file():
        return None
    with open(p) as f:
        rows = sum(1 for line in f if line.strip())
    return p if rows > 1 else None


def eval_pairs(cfg: BNNConfig, split: str | Path, which: str) -> Dataset | None:
    """The fixed evaluation pairs ``which`` (val or test) as a dataset, or None if absent."""
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
    """Fail fast, before any model is built, on a missing dataset root or split folder."""
    d = cfg.data
    if d.root is None:
        raise SaroptError("data.root is not set (give data.root=/path/to/QXS-SAROPT)")
    if not Path(d.root).is_dir() and d.cache is None:
        raise SaroptError(f"data.root {d.root} is not a folder")
    read_split_dir(d.split)


def select_train_ids(ids: list[str], size: int | None, seed: int) -> list[str]:
    """All training ids, or a random subset of ``size`` (paper Table 2: 4,000 / 8,000)."""
    if size is None:
        return ids
    if size > len(ids):
        raise SaroptError(f"data.train_size={size} but the split has only {len(ids)} "
                          "training pairs")
    return sorted(random.Random(seed).sample(ids, size))


class BNNDataModule(L.LightningDataModule):
    """Training pairs (true + false, redrawn per epoch) and fixed validation pairs."""

    def __init__(self, cfg: BNNConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.train_pairs: Any = None
        self.val_pairs: Dataset | None = None

    def setup(self, stage: str | None = None) -> None:
        from saropt.data import TrainPairs

        if self.train_pairs is not None:
            return
        d = self.cfg.data
        split = read_split_dir(d.split)
        train_ids = select_train_ids(split["train"], d.train_size, d.seed)
        if not train_ids:
            raise SaroptError(f"split {d.split} has no training ids")
        self.train_pairs = TrainPairs(base_dataset(self.cfg, train_ids),
                                      neg_per_pos=d.neg_per_pos, seed=d.seed)
        self.val_pairs = (eval_pairs(self.cfg, d.split, "val")
                          or eval_pairs(self.cfg, d.split, "test"))

    def set_epoch(self, epoch: int) -> None:
        if self.train_pairs is not None:
            self.train_pairs.set_epoch(epoch)

    def _loader(self, ds: Dataset, batch_size: int, sampler: Sampler | None) -> DataLoader:
        w = self.cfg.data.num_workers
        return DataLoader(ds, batch_size=batch_size, sampler=sampler, num_workers=w,
                          persistent_workers=False, pin_memory=torch.cuda.is_available())

    def train_dataloader(self) -> DataLoader:
        sampler = EpochShuffleSampler(len(self.train_pairs), self.cfg.data.seed)
        return self._loader(self.train_pairs, self.cfg.data.batch_size, sampler)

    def val_dataloader(self) -> DataLoader | list:
        """The fixed validation pairs; under DDP each rank scores a disjoint share, none twice
        (Lightning's default sampler would pad with repeats, biasing the gathered metrics)."""
        if self.val_pairs is None:
            return []
        sampler = None
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            from lightning.pytorch.overrides.distributed import UnrepeatedDistributedSampler

            sampler = UnrepeatedDistributedSampler(self.val_pairs, shuffle=False)
        return self._loader(self.val_pairs, self.cfg.data.eval_batch_size, sampler)
