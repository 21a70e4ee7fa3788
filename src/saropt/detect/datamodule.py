"""The detection LightningDataModule: train/val readers, loaders and the exact-resume sampler.

:class:`DetectDataModule` is the detectors' counterpart of the BNN's
:class:`saropt.bnn.data.BNNDataModule` (the pattern of torchgeo's datamodules): it builds the
training and validation readers of a :class:`saropt.detect.module.DetectConfig` once, keeps the
first ``data.max_train_images`` / ``data.max_val_images`` images of each
(:class:`DetectionSubset`, whose records, categories and COCO ground truth match what it
serves) and makes the loaders with :func:`saropt.detect.datasets.collate_detection`.

The training order is an :class:`saropt.engine.EpochShuffleSampler` drawn from
``(trainer.seed, epoch)`` only, so a resumed run (with or without workers) sees the batches of
an uninterrupted one. Under DDP Lightning splits that order over the ranks (its distributed
sampler wrapper, as for the BNN's training pairs); the validation loader is a plain sequential
one that Lightning shards the same way; images it pads a rank with are scored once, since
:class:`saropt.detect.module.DetectModule` gathers the ranks' detections by image id.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import lightning as L
from torch.utils.data import DataLoader, Dataset

if TYPE_CHECKING:
    from saropt.detect.datasets.base import DetectionDataset, Record, Sample
    from saropt.detect.module import DataConfig, DetectConfig


class DetectionSubset(Dataset):
    """The first ``limit`` images of a detection reader, with their own records and COCO dict.

    ``records`` (one per image or tile) and ``gt`` (COCO ground truth, the reader's
    ``to_coco()`` restricted to those images) describe exactly the samples served;
    ``categories`` are the reader's. ``limit=None`` (or at least the reader's length) keeps
    every image and the reader's whole ``to_coco()``.

    Args:
        reader: a detection reader (:func:`saropt.detect.datasets.build_dataset`).
        limit: how many of its first images to keep (None: all).
    """

    def __init__(self, reader: DetectionDataset, limit: int | None = None) -> None:
        self.reader = reader
        n = len(reader) if limit is None else min(limit, len(reader))
        self.records: list[Record] = list(reader.records[:n])
        self.categories: list[dict[str, Any]] = reader.categories
        gt = reader.to_coco()
        if n < len(reader):
            keep = {int(r.image_id) for r in self.records}
            gt = {**gt, "images": [i for i in gt["images"] if i["id"] in keep],
                  "annotations": [a for a in gt["annotations"] if a["image_id"] in keep]}
        self.gt: dict[str, Any] = gt

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index: int) -> Sample:
        if not -len(self) <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} images")
        return self.reader[index % len(self)]


def make_dataset(data: DataConfig, split: str, in_chans: int,
                 limit: int | None = None) -> DetectionSubset:
    """The ``split`` of the reader ``data`` names, its first ``limit`` images (None: all).

    Images have ``in_chans`` channels unless ``data.options`` (the reader options) say otherwise.

    Raises:
        DataError: the reader cannot read ``data.root`` or rejects an option
            (:func:`saropt.detect.datasets.build_dataset`).
    """
    from saropt.detect.datasets import build_dataset

    opts = {"in_chans": in_chans, **data.options}
    return DetectionSubset(build_dataset(data.dataset, data.root, split, **opts), limit)


def detection_loader(ds: Any, batch_size: int, num_workers: int, shuffle: bool,
                     sampler: Any = None) -> DataLoader:
    """A DataLoader of ``(images, targets)`` lists (:func:`collate_detection`).

    ``sampler`` (e.g. :class:`saropt.engine.EpochShuffleSampler`) replaces ``shuffle``;
    workers persist across epochs when there are any.
    """
    from saropt.detect.datasets import collate_detection

    return DataLoader(ds, batch_size=batch_size, shuffle=shuffle and sampler is None,
                      sampler=sampler, num_workers=num_workers, collate_fn=collate_detection,
                      persistent_workers=num_workers > 0)


class DetectDataModule(L.LightningDataModule):
    """Training and validation images of a detector run (see the module docstring).

    :meth:`setup` reads both splits once (later calls do nothing), so a caller may set it up
    before the Trainer does, to size anchors or record the training image size from
    :attr:`train_set` before building the model.

    Args:
        cfg: the run's config (``data`` for the readers and loaders, ``model.in_chans`` for the
            image channels, ``trainer.seed`` for the training order).
    """

    def __init__(self, cfg: DetectConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.train_set: DetectionSubset | None = None
        self.val_set: DetectionSubset | None = None

    def setup(self, stage: str | None = None) -> None:
        """Read the training and validation splits (once).

        Raises:
            DataError: a split cannot be read (:func:`make_dataset`).
        """
        if self.train_set is not None:
            return
        d, in_chans = self.cfg.data, self.cfg.model.in_chans
        self.train_set = make_dataset(d, d.train_split, in_chans, d.max_train_images)
        self.val_set = make_dataset(d, d.val_split, in_chans, d.max_val_images)

    @property
    def val_gt(self) -> dict[str, Any]:
        """The validation images' COCO ground truth (after :meth:`setup`)."""
        return self._ready(self.val_set).gt

    @property
    def categories(self) -> list[dict[str, Any]]:
        """The validation reader's COCO categories; label ``i + 1`` is ``categories[i]``."""
        return self._ready(self.val_set).categories

    @property
    def train_records(self) -> list[Record]:
        """The training images' records (boxes, sizes), e.g. for k-means anchors."""
        return self._ready(self.train_set).records

    def _ready(self, ds: DetectionSubset | None) -> DetectionSubset:
        if ds is None:
            raise RuntimeError("DetectDataModule.setup() has not run")
        return ds

    def train_dataloader(self) -> DataLoader:
        """Shuffled from ``(trainer.seed, epoch)`` only, so resume is exact."""
        from saropt.engine import EpochShuffleSampler, training_epoch

        ds = self._ready(self.train_set)
        sampler = EpochShuffleSampler(len(ds), self.cfg.trainer.seed,
                                      epoch_fn=lambda: training_epoch(self.trainer))
        return detection_loader(ds, self.cfg.data.batch_size, self.cfg.data.num_workers, True,
                                sampler)

    def val_dataloader(self) -> DataLoader:
        """The validation images in reader order."""
        d = self.cfg.data
        return detection_loader(self._ready(self.val_set), d.batch_size, d.num_workers, False)
