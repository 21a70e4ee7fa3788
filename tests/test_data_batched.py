"""Batched cache reads (``__getitems__``): same bytes, ids and order as per-sample reads and as
the PNGs, for the dataset and for TrainPairs / EvalPairs, directly and through a DataLoader."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from _qxs_fixtures import OPT_DIR, SAR_DIR, make_qxs
from PIL import Image
from torch.utils.data import DataLoader, default_collate

from saropt.data import QXSSAROPT, EvalPairs, RandomRot90, TrainPairs, build_cache, draw_eval_pairs
from saropt.data.qxs import BatchedSample

INDICES = [5, 0, 3, 3, 7, 1, -1, 5]  # unsorted, repeated, negative


@pytest.fixture(scope="module")
def qxs(tmp_path_factory) -> tuple[Path, Path]:
    root = make_qxs(tmp_path_factory.mktemp("batched") / "qxs", n=9, size=12)
    grey = np.arange(144, dtype=np.uint8).reshape(12, 12)
    Image.fromarray(grey).save(root / OPT_DIR / "4.png")  # grayscale optical
    Image.fromarray(np.dstack([grey] * 3 + [grey])).save(root / SAR_DIR / "5.png")  # RGBA SAR
    return root, build_cache(root, root.parent / "cache", progress=False)


def _same(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for k, v in b.items():
        if isinstance(v, torch.Tensor):
            assert a[k].dtype == v.dtype and a[k].shape == v.shape and torch.equal(a[k], v), k
        else:
            assert a[k] == v, k


def _png(root: Path, id_: str, dtype: str) -> tuple[torch.Tensor, torch.Tensor]:
    sar = np.asarray(Image.open(root / SAR_DIR / f"{id_}.png").convert("L"))[None]
    opt = np.asarray(Image.open(root / OPT_DIR / f"{id_}.png").convert("RGB")).transpose(2, 0, 1)
    sar, opt = torch.from_numpy(sar.copy()), torch.from_numpy(opt.copy())
    if dtype == "float32":
        sar = torch.from_numpy(sar.numpy().astype(np.float32) / np.float32(255))
        opt = torch.from_numpy(opt.numpy().astype(np.float32) / np.float32(255))
    return sar, opt


@pytest.mark.parametrize("dtype", ["uint8", "float32"])
def test_dataset_batched_equals_per_sample_and_pngs(qxs, dtype: str) -> None:
    root, cache = qxs
    ids = [str(i) for i in (9, 2, 5, 4, 7, 3, 8, 6)]  # dataset index k != cache position k
    ds = QXSSAROPT(root, patch_size=12, cache=cache, dtype=dtype, ids=ids)
    assert ds.can_batch()
    batch = ds.__getitems__(INDICES)
    assert len(batch) == len(INDICES) and all(type(s) is BatchedSample for s in batch)
    assert [s["id"] for s in batch] == [ds.ids[i] for i in INDICES]
    for s, i in zip(batch, INDICES):
        _same(s, ds[i])
        sar, opt = _png(root, s["id"], dtype)
        assert torch.equal(s["sar"], sar) and torch.equal(s["opt"], opt)
    collated = default_collate(batch)  # the batch tensors themselves, no stacking
    assert type(collated) is dict and collated["sar"].data_ptr() == batch[0]["sar"].data_ptr()
    _same(collated, default_collate([ds[i] for i in INDICES]))
    assert ds.__getitems__([]) == []


def test_collate_falls_back_for_other_lists(qxs) -> None:
    root, cache = qxs
    ds = QXSSAROPT(root, patch_size=12, cache=cache, dtype="uint8")
    batch = ds.__getitems__(INDICES)
    for other in (batch[::-1], batch[:3], batch + batch[:1]):
        _same(default_collate(other), default_collate([dict(s) for s in other]))
    batch[2]["sar"] = torch.zeros_like(batch[2]["sar"])  # a changed value: stacked afresh
    collated = default_collate(batch)
    assert not collated["sar"][2].any() and torch.equal(collated["opt"][2], ds[INDICES[2]]["opt"])
    batch[3]["sar"].fill_(7)  # in place: the batch tensor holds the change either way
    assert (default_collate(batch)["sar"][3] == 7).all()


def test_fallbacks_read_per_sample(qxs) -> None:
    root, cache = qxs
    png = QXSSAROPT(root, patch_size=12)
    resized = QXSSAROPT(root, patch_size=6, resize="area", cache=cache)
    torch.manual_seed(0)
    augmented = QXSSAROPT(root, patch_size=12, cache=cache, transforms=RandomRot90())
    for ds in (png, resized, augmented):
        assert not ds.can_batch()
        torch.manual_seed(3)
        batch = ds.__getitems__(INDICES)
        torch.manual_seed(3)
        ref = [ds[i] for i in INDICES]
        assert all(type(s) is dict for s in batch)
        for s, r in zip(batch, ref):
            _same(s, r)


@pytest.mark.parametrize("dtype", ["uint8", "float32"])
def test_pairs_batched_equal_per_sample(qxs, dtype: str) -> None:
    root, cache = qxs
    base = QXSSAROPT(root, patch_size=12, cache=cache, dtype=dtype)
    train = TrainPairs(base, neg_per_pos=1.5, seed=4)
    train.set_epoch(3)
    evals = EvalPairs(base, draw_eval_pairs(base.ids, seed=2))
    for ds, idx in ((train, [20, 2, 9, 15, 15, 0, 11]), (evals, [17, 3, 3, 0, 8, -1])):
        batch = ds.__getitems__(idx)
        assert all(type(s) is BatchedSample for s in batch)
        for s, i in zip(batch, idx):
            _same(s, ds[i])
            sar, _ = _png(root, s["sar_id"], dtype)
            _, opt = _png(root, s["opt_id"], dtype)
            assert torch.equal(s["sar"], sar) and torch.equal(s["opt"], opt)
        _same(default_collate(batch), default_collate([ds[i] for i in idx]))
    assert {float(train[k]["label"]) for k in (20, 2)} == {0.0, 1.0}
    with pytest.raises(IndexError):
        train.__getitems__([0, len(train)])


@pytest.mark.parametrize("workers", [0, 1])
def test_dataloader_batches_equal_per_sample(qxs, workers: int) -> None:
    root, cache = qxs
    base = QXSSAROPT(root, patch_size=12, cache=cache, dtype="uint8")
    train = TrainPairs(base, seed=1)
    train.set_epoch(2)
    evals = EvalPairs(base, draw_eval_pairs(base.ids, seed=0))
    order = [int(i) for i in torch.randperm(len(train), generator=torch.Generator().manual_seed(0))]
    for ds, sampler in ((base, [4, 1, 1, 7, 0, 8, 2]), (train, order), (evals, None)):
        sampler = sampler or list(range(len(ds)))
        loader = DataLoader(ds, batch_size=4, sampler=sampler, num_workers=workers)
        batches = list(loader)
        assert len(batches) == -(-len(sampler) // 4)
        for b, start in zip(batches, range(0, len(sampler), 4)):
            _same(b, default_collate([ds[i] for i in sampler[start:start + 4]]))
