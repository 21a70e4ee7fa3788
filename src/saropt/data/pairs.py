"""True and false SAR-optical pairs for the Bridge Neural Network.

The BNN paper (003, eqs. 2-3) trains on positives ``(x_s^i, x_o^i)`` and negatives
``(x_s^i, x_o^j), i != j`` at a 1:1 ratio. :class:`TrainPairs` redraws the negatives every
epoch from ``(seed, epoch)`` only, so every DDP rank and every DataLoader worker sees the same
pairs; :class:`EvalPairs` uses a fixed list drawn once and saved with the split.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from saropt.data.qxs import QXSSAROPT, batched_samples, opt_tensor, sar_tensor
from saropt.errors import DataError

Pair = tuple[str, str, int]


def draw_negatives(n: int, count: int, seed: int, epoch: int,
                   stream: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``count`` (anchor, partner) index pairs with partner != anchor, uniform over the others.

    Anchors run through random permutations of ``range(n)`` (each SAR image is an anchor as
    evenly as the count allows); the result depends only on ``(n, count, seed, epoch, stream)``
    (numpy ``default_rng``), so every DDP rank and worker draws the same pairs.

    Returns:
        ``(anchors, partners)``, two int64 arrays of shape ``(count,)`` with values in
        ``[0, n)`` and ``partners != anchors`` elementwise.

    Raises:
        DataError: when ``n < 2`` (no other image to pair with).
    """
    if n < 2:
        raise DataError(f"false pairs need at least 2 pairs, the dataset has {n}")
    rng = np.random.default_rng([stream, seed, epoch, n])
    reps = -(-count // n) if count else 0
    anchors = np.concatenate([rng.permutation(n) for _ in range(reps)] or [np.empty(0, int)])
    anchors = anchors[:count].astype(np.int64)
    partners = (anchors + rng.integers(1, n, size=count)) % n
    return anchors, partners.astype(np.int64)


class TrainPairs(Dataset):
    """Positives ``(i, i)`` (label 1.0) then ``round(neg_per_pos * N)`` negatives (label 0.0).

    Paper 003 eqs. (2)-(3): positives ``(x_s^i, x_o^i)``, negatives ``(x_s^i, x_o^j), i != j``,
    at the 1:1 ratio of section 4.2.1 with the default ``neg_per_pos=1``.

    Call :meth:`set_epoch` at the start of each epoch (e.g. in ``on_train_epoch_start``) to
    draw new negatives. The epoch lives in shared memory, so DataLoader workers (persistent ones
    included, fork or spawn) see the change. Items: ``sar``, ``opt``, ``label``, ``sar_id``,
    ``opt_id``; ``base.transforms`` applies to the assembled pair. ``sar`` is ``(1, H, W)``,
    ``opt`` ``(3, H, W)`` in ``base.dtype``, ``label`` a float32 scalar tensor.

    Raises:
        ValueError: when ``neg_per_pos < 0``.
        DataError: when negatives are asked for and ``base`` selects fewer than 2 pairs.
    """

    def __init__(self, base: QXSSAROPT, neg_per_pos: float = 1.0, seed: int = 0) -> None:
        if neg_per_pos < 0:
            raise ValueError(f"neg_per_pos must be >= 0, got {neg_per_pos}")
        self.base, self.neg_per_pos, self.seed = base, float(neg_per_pos), int(seed)
        self.n_pos = len(base)
        self.n_neg = int(round(self.neg_per_pos * self.n_pos))
        if self.n_neg and self.n_pos < 2:
            raise DataError(f"false pairs need at least 2 pairs, {base.root} selection has "
                            f"{self.n_pos}")
        self._epoch = torch.zeros(1, dtype=torch.int64).share_memory_()
        self._drawn: tuple[int, np.ndarray, np.ndarray] | None = None

    @property
    def epoch(self) -> int:
        """The epoch whose negatives items are drawn from (shared with DataLoader workers)."""
        return int(self._epoch[0])

    def set_epoch(self, epoch: int) -> None:
        """Draw this epoch's negatives from now on (in every worker)."""
        self._epoch[0] = int(epoch)

    def negatives(self, epoch: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(anchor, partner) indices of ``epoch``'s false pairs (default: the current epoch).

        Two int64 arrays of shape ``(n_neg,)``; see :func:`draw_negatives`.
        """
        epoch = self.epoch if epoch is None else epoch
        if self._drawn is None or self._drawn[0] != epoch:
            a, p = draw_negatives(self.n_pos, self.n_neg, self.seed, epoch)
            self._drawn = (epoch, a, p)
        return self._drawn[1], self._drawn[2]

    def pair_indices(self, index: int) -> tuple[int, int, float]:
        """(SAR index, optical index, label) of item ``index`` in the current epoch.

        Raises:
            IndexError: when ``index`` is outside ``[0, len(self))``.
        """
        if not 0 <= index < len(self):
            raise IndexError(f"pair index {index} out of range [0, {len(self)})")
        if index < self.n_pos:
            return index, index, 1.0
        anchors, partners = self.negatives()
        k = index - self.n_pos
        return int(anchors[k]), int(partners[k]), 0.0

    def __len__(self) -> int:
        return self.n_pos + self.n_neg

    def __getitem__(self, index: int) -> dict[str, Any]:
        i, j, label = self.pair_indices(index)
        return _pair_sample(self.base, self.base.ids[i], self.base.ids[j], label)

    def __getitems__(self, indices: Sequence[int]) -> list[dict[str, Any]]:
        """Items ``indices`` (one DataLoader batch), batched when the base dataset can.

        See :meth:`QXSSAROPT.__getitems__`: SAR and optical are each one read in file order.
        """
        triples = [self.pair_indices(int(k)) for k in indices]
        ids = self.base.ids
        return _pair_samples(self.base, [(ids[i], ids[j], y) for i, j, y in triples])


class EvalPairs(Dataset):
    """A fixed list of ``(sar_id, opt_id, label)`` pairs, e.g. from ``val_pairs.csv``.

    Items as in :class:`TrainPairs` (``label`` 1.0 for a true pair, 0.0 for a false one).

    Raises:
        DataError: when a pair names an id outside ``base``'s selection.
    """

    def __init__(self, base: QXSSAROPT, pairs: Sequence[Pair]) -> None:
        known = set(base.ids)
        bad = [p for p in pairs if p[0] not in known or p[1] not in known]
        if bad:
            raise DataError(f"{len(bad)} evaluation pairs name ids outside the dataset selection "
                            f"of {base.root} (first: {bad[:3]})")
        self.base, self.pairs = base, [(str(s), str(o), int(y)) for s, o, y in pairs]

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, index: int) -> dict[str, Any]:
        s, o, y = self.pairs[index]
        return _pair_sample(self.base, s, o, float(y))

    def __getitems__(self, indices: Sequence[int]) -> list[dict[str, Any]]:
        """Items ``indices`` (one DataLoader batch), batched when the base dataset can."""
        return _pair_samples(self.base, [(s, o, float(y))
                                         for s, o, y in (self.pairs[k] for k in indices)])


def _pair_sample(base: QXSSAROPT, sar_id: str, opt_id: str, label: float) -> dict[str, Any]:
    if sar_id == opt_id:
        sar, opt = base.pair_u8(sar_id)
    else:
        sar, opt = base.sar_u8(sar_id), base.opt_u8(opt_id)
    sample = {"sar": sar_tensor(sar, base.dtype), "opt": opt_tensor(opt, base.dtype),
              "label": torch.tensor(label, dtype=torch.float32),
              "sar_id": sar_id, "opt_id": opt_id}
    return base.transforms(sample) if base.transforms else sample


def _pair_samples(base: QXSSAROPT, pairs: list[tuple[str, str, float]]) -> list[dict[str, Any]]:
    if not base.can_batch():
        return [_pair_sample(base, s, o, y) for s, o, y in pairs]
    sar_ids = [s for s, _, _ in pairs]
    opt_ids = [o for _, o, _ in pairs]
    sar, opt = base.batch_tensors(sar_ids, opt_ids)
    labels = torch.tensor([y for _, _, y in pairs], dtype=torch.float32)
    return batched_samples({"sar": sar, "opt": opt, "label": labels, "sar_id": sar_ids,
                            "opt_id": opt_ids})


def draw_eval_pairs(ids: Sequence[str], seed: int = 0) -> list[Pair]:
    """One true and one false pair per id (1:1), the false partner uniform over the others.

    Returns:
        ``2 * len(ids)`` tuples ``(sar_id, opt_id, label)``, label 1 then 0 for each id in
        ``ids`` order; empty for no ids. Deterministic in ``seed``.

    Raises:
        DataError: when there is exactly one id (no false partner).
    """
    ids = list(ids)
    if not ids:
        return []
    if len(ids) < 2:
        raise DataError("evaluation pairs need at least 2 ids")
    anchors, partners = draw_negatives(len(ids), len(ids), seed, epoch=0, stream=1)
    order = np.argsort(anchors, kind="stable")
    out: list[Pair] = []
    for a, p in zip(anchors[order], partners[order]):
        out += [(ids[a], ids[a], 1), (ids[a], ids[p], 0)]
    return out
