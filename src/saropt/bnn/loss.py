"""The BNN loss (paper 003, eqs. 2-4)."""

from __future__ import annotations

import torch


def bnn_loss_terms(d: torch.Tensor, label: torch.Tensor,
                   alpha: float = 1.0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(l, l_p, l_n)`` with l_p = mean over true pairs of d^2, l_n = mean over false pairs of
    (d - 1)^2 and l = (l_p + alpha * l_n) / (1 + alpha).

    A batch without true (or false) pairs drops that term and renormalises the weights, so l is
    the mean of the terms present (l = l_n when there are no true pairs); an empty batch gives 0.
    Computed without host synchronisation (masks, no ``if``), in float32.
    """
    if d.shape != label.shape:
        raise ValueError(f"d {tuple(d.shape)} and label {tuple(label.shape)} differ in shape")
    d = d.float()
    pos = (label > 0.5).float()
    neg = 1.0 - pos
    n_pos, n_neg = pos.sum(), neg.sum()
    l_p = (d.pow(2) * pos).sum() / n_pos.clamp(min=1)
    l_n = ((d - 1).pow(2) * neg).sum() / n_neg.clamp(min=1)
    w_p = (n_pos > 0).float()
    w_n = alpha * (n_neg > 0).float()
    total = (w_p * l_p + w_n * l_n) / (w_p + w_n).clamp(min=1e-12)
    return total, l_p, l_n


def bnn_loss(d: torch.Tensor, label: torch.Tensor, alpha: float = 1.0) -> torch.Tensor:
    """The BNN loss l (eq. 4); see :func:`bnn_loss_terms`."""
    return bnn_loss_terms(d, label, alpha)[0]
