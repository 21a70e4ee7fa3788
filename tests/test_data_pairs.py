"""TrainPairs / EvalPairs: labels, ratios, per-epoch redraws, determinism across ranks/workers."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from _qxs_fixtures import make_qxs
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.utils.data import DataLoader, DistributedSampler

from saropt.data import (
    QXSSAROPT,
    EvalPairs,
    RandomRot90,
    TrainPairs,
    draw_eval_pairs,
    draw_negatives,
)
from saropt.errors import DataError


@pytest.fixture(scope="module")
def base(tmp_path_factory) -> QXSSAROPT:
    root = make_qxs(tmp_path_factory.mktemp("pairs") / "qxs", n=10, size=8)
    return QXSSAROPT(root, patch_size=8)


@settings(max_examples=50, deadline=None)
@given(n=st.integers(2, 200), ratio=st.floats(0, 3), seed=st.integers(0, 2**32 - 1),
       epoch=st.integers(0, 10_000))
def test_negatives_never_positive_and_balanced(n: int, ratio: float, seed: int,
                                               epoch: int) -> None:
    count = int(round(ratio * n))
    a, p = draw_negatives(n, count, seed, epoch)
    assert len(a) == len(p) == count
    assert np.all(a != p) and np.all((0 <= p) & (p < n))
    counts = np.bincount(a, minlength=n)
    assert counts.max() - counts.min() <= 1  # every anchor used as evenly as possible
    b, q = draw_negatives(n, count, seed, epoch)
    assert np.array_equal(a, b) and np.array_equal(p, q)


def test_partners_are_uniform_over_the_others() -> None:
    a, p = draw_negatives(5, 50_000, seed=0, epoch=0)
    offsets = np.bincount((p - a) % 5, minlength=5)
    assert offsets[0] == 0
    assert np.allclose(offsets[1:] / offsets[1:].sum(), 0.25, atol=0.01)


def test_train_pairs_items_and_epochs(base: QXSSAROPT) -> None:
    tp = TrainPairs(base)
    assert len(tp) == 20  # 1:1 as in the paper
    items = [tp[i] for i in range(len(tp))]
    assert all(float(it["label"]) == 1.0 and it["sar_id"] == it["opt_id"] for it in items[:10])
    assert all(float(it["label"]) == 0.0 and it["sar_id"] != it["opt_id"] for it in items[10:])
    assert [it["sar_id"] for it in items[:10]] == base.ids
    s = items[12]
    assert torch.equal(s["sar"], base.get(s["sar_id"])["sar"])
    assert torch.equal(s["opt"], base.get(s["opt_id"])["opt"])
    e0 = [tp.pair_indices(i) for i in range(10, 20)]
    tp.set_epoch(1)
    e1 = [tp.pair_indices(i) for i in range(10, 20)]
    assert e0 != e1
    tp.set_epoch(0)
    assert [tp.pair_indices(i) for i in range(10, 20)] == e0
    assert e0 != [TrainPairs(base, seed=1).pair_indices(i) for i in range(10, 20)]
    with pytest.raises(IndexError):
        tp.pair_indices(20)


def test_ratio(base: QXSSAROPT) -> None:
    assert len(TrainPairs(base, neg_per_pos=0.5)) == 15
    assert len(TrainPairs(base, neg_per_pos=3)) == 40
    assert len(TrainPairs(base, neg_per_pos=0)) == 10
    with pytest.raises(ValueError):
        TrainPairs(base, neg_per_pos=-1)
    one = QXSSAROPT(base.root, ids=["1"], patch_size=8)
    with pytest.raises(DataError, match="at least 2"):
        TrainPairs(one)


def test_ranks_see_one_draw(base: QXSSAROPT) -> None:
    """DDP: each rank holds its own copy; the union of what the ranks read is one epoch."""
    ranks = [TrainPairs(base, seed=7) for _ in range(2)]
    seen = []
    for rank, tp in enumerate(ranks):
        tp.set_epoch(3)
        sampler = DistributedSampler(tp, num_replicas=2, rank=rank, shuffle=True, seed=7)
        sampler.set_epoch(3)
        seen += [(k, tp.pair_indices(k)) for k in sampler]
    reference = TrainPairs(base, seed=7)
    reference.set_epoch(3)
    assert sorted(seen) == [(k, reference.pair_indices(k)) for k in range(len(reference))]


def _labels_and_ids(loader: DataLoader) -> list[tuple[str, str]]:
    return [(s, o) for b in loader for s, o in zip(b["sar_id"], b["opt_id"])]


def test_set_epoch_reaches_persistent_workers(base: QXSSAROPT) -> None:
    tp = TrainPairs(base, seed=0)
    loader = DataLoader(tp, batch_size=5, num_workers=1, persistent_workers=True)
    tp.set_epoch(0)
    first = _labels_and_ids(loader)
    tp.set_epoch(1)
    second = _labels_and_ids(loader)
    tp.set_epoch(1)
    assert second == [(base.ids[i], base.ids[j]) for i, j, _ in map(tp.pair_indices,
                                                                     range(len(tp)))]
    assert first != second


def test_joint_transform_on_pairs(base: QXSSAROPT) -> None:
    rot = QXSSAROPT(base.root, patch_size=8, transforms=RandomRot90())
    torch.manual_seed(0)
    s = TrainPairs(rot)[0]
    k = next(k for k in range(4)
             if torch.equal(s["sar"], torch.rot90(base[0]["sar"], k, (-2, -1))))
    assert torch.equal(s["opt"], torch.rot90(base[0]["opt"], k, (-2, -1)))


def test_eval_pairs(base: QXSSAROPT) -> None:
    pairs = draw_eval_pairs(base.ids, seed=0)
    assert pairs == draw_eval_pairs(base.ids, seed=0) != draw_eval_pairs(base.ids, seed=1)
    assert len(pairs) == 20 and sum(y for *_, y in pairs) == 10
    ev = EvalPairs(base, pairs)
    for k in range(len(ev)):
        it = ev[k]
        assert (it["sar_id"] == it["opt_id"]) == (float(it["label"]) == 1.0)
    batch = next(iter(DataLoader(ev, batch_size=4)))
    assert batch["sar"].shape == (4, 1, 8, 8) and batch["label"].dtype == torch.float32
    with pytest.raises(DataError, match="outside the dataset"):
        EvalPairs(base, [("1", "99", 0)])
