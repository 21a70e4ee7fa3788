"""The BNN loss: paper 003 section 2.1, equations (2)-(4).

The Bridge Neural Network is Xu, Xiang and Huang, "Task-driven common representation learning
via bridge neural network", AAAI 2019 (cited as [33] in paper 003 and [31] in paper 002); paper
003 applies it to QXS-SAROPT. For a batch of SAR-optical pairs with distances
d = ||f_s(x_s) - f_o(x_o)||_2 / sqrt(n) (eq. 1, :func:`saropt.bnn.model.distance`), true pairs
S_p (same place, label 1) and false pairs S_n (different places, label 0)::

    l_p   = 1/|S_p| * sum over (x_s, x_o) in S_p of (d - 0)^2          (eq. 2)
    l_n   = 1/|S_n| * sum over (x_s, x_o) in S_n of (d - 1)^2          (eq. 3)
    l_BNN = (l_p + alpha * l_n) / (1 + alpha)                          (eq. 4)

Training minimises l_BNN over both encoders' weights (eq. 5). The paper's setting (section
4.2.1): alpha = 1 with true and false pairs 1:1 (``alpha`` and ``data.neg_per_pos`` of
:class:`saropt.bnn.config.BNNConfig`).
"""

from __future__ import annotations

import torch


def bnn_loss_terms(d: torch.Tensor, label: torch.Tensor,
                   alpha: float = 1.0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The BNN loss and its two terms ``(l, l_p, l_n)`` (paper 003, eqs. 2-4).

    l_p = mean over true pairs of d^2 (eq. 2), l_n = mean over false pairs of (d - 1)^2
    (eq. 3), l = (l_p + alpha * l_n) / (1 + alpha) (eq. 4).

    A batch without true (or false) pairs drops that term and renormalises the weights, so l is
    the mean of the terms present (l = l_n when there are no true pairs); an empty batch gives 0.
    Computed without host synchronisation (masks, no ``if``), in float32.

    Args:
        d: Pair distances ``(B,)`` in [0, 1] (eq. 1); any shape equal to ``label``'s.
        label: ``(B,)`` 1.0 for a true pair, 0.0 for a false pair (> 0.5 counts as true).
        alpha: Weight of the false-pair term (paper section 4.2.1: 1).

    Returns:
        Three float32 scalars (0-d tensors) ``(l, l_p, l_n)``; an absent term is 0.

    Raises:
        ValueError: ``d`` and ``label`` differ in shape.
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
    """The BNN loss l_BNN (paper 003, eq. 4): a float32 scalar; see :func:`bnn_loss_terms`."""
    return bnn_loss_terms(d, label, alpha)[0]
