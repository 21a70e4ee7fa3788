"""BNN encoders and the two-encoder model with its distance (paper 003, section 2.1, eq. 1).

Each encoder is a timm backbone followed by the paper's head: 1x1 conv, 4x4 average pooling,
linear layer with sigmoid to an n-dimensional code (n = 50 in section 4.2.1). The SAR and the
optical encoder share no weights (unlike a Siamese network); a pair's distance is
d = ||z_s - z_o||_2 / sqrt(n), in [0, 1] for codes in [0, 1]^n. The loss on d is in
:mod:`saropt.bnn.loss`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from saropt.errors import SaroptError

#: Backbones tried and documented; any timm model with ``forward_features`` also works.
KNOWN_ARCHS = ("resnet50", "darknet53", "resnet18", "resnet34", "cspdarknet53")


def distance(z_s: torch.Tensor, z_o: torch.Tensor) -> torch.Tensor:
    """The BNN distance d = ``||z_s - z_o||_2 / sqrt(n)`` per row (paper 003, eq. 1), float32.

    ``z_s`` and ``z_o`` are codes ``(B, n)`` (any ``(..., n)``), d is ``(B,)`` (``(...)``);
    codes in [0, 1]^n give d in [0, 1]. Raises ``ValueError`` when the shapes differ.

    The gradient at d = 0 (identical codes, which happens: sigmoid codes saturate to exactly
    1.0 under bf16 autocast) is 0, not NaN: the square root only sees positive sums (the
    double-``where`` form, since ``sqrt'(0)`` is infinite and 0 * inf = NaN).
    """
    if z_s.shape != z_o.shape:
        raise ValueError(f"code shapes differ: {tuple(z_s.shape)} vs {tuple(z_o.shape)}")
    diff = z_s.float() - z_o.float()
    sq = diff.pow(2).sum(-1)
    pos = sq > 0
    root = torch.where(pos, sq, torch.ones_like(sq)).sqrt()
    return torch.where(pos, root, torch.zeros_like(sq)) / math.sqrt(z_s.shape[-1])


def create_backbone(arch: str, in_chans: int) -> nn.Module:
    """A timm model without classifier and global pooling (``forward_features`` -> feature map).

    Built with random weights (``pretrained=False``: nothing is downloaded; ``saropt bnn train``
    loads local weights from ``model.sar_init`` / ``opt_init``).
    Raises :class:`SaroptError` when ``arch`` is not a timm model name.
    """
    import timm

    try:
        return timm.create_model(arch, pretrained=False, num_classes=0, global_pool="",
                                 in_chans=in_chans)
    except RuntimeError as err:  # timm: "Unknown model (...)"
        raise SaroptError(f"model.arch {arch!r} is not a timm model ({err}); "
                          f"tried and documented: {', '.join(KNOWN_ARCHS)}") from None


class Head(nn.Module):
    """The BNN head: 1x1 conv -> (ReLU) -> average pooling -> flatten -> linear -> sigmoid.

    Paper 003 section 2.1: a 1x1 convolution and a 4x4 average pooling on the backbone's
    feature map, then a linear layer with sigmoid to the n-dimensional code. Not fixed by the
    paper (docs/bnn.md): ``conv_width`` (256), the ReLU (``conv_act="none"`` drops it) and the
    pooling stride (``pool="paper"``: a ``pool_size`` window with stride ``pool_size``, so an 8x8
    map becomes 2x2; ``pool="adaptive"``: ``pool_grid`` x ``pool_grid`` cells for small inputs).
    Raises :class:`SaroptError` when the feature map ``feat_hw`` (h, w) is smaller than the
    ``pool="paper"`` window.

    ``init_gain`` multiplies the linear layer's initial weights (PyTorch's default init: 1.0,
    the paper configs). At init the codes barely depend on the input (std over inputs ~0.02
    at CPU scale), which leaves SGD on the d = 0.5 plateau (docs/bnn.md, "Does the paper's
    recipe learn?"); a larger gain spreads the initial codes.
    """

    def __init__(self, in_channels: int, feat_hw: tuple[int, int], code_dim: int = 50,
                 conv_width: int = 256, conv_act: str = "relu", pool: str = "paper",
                 pool_size: int = 4, pool_grid: int = 2, init_gain: float = 1.0) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, conv_width, kernel_size=1)
        self.act = nn.ReLU(inplace=True) if conv_act == "relu" else nn.Identity()
        if pool == "paper":
            if min(feat_hw) < pool_size:
                raise SaroptError(
                    f"feature map {feat_hw[0]}x{feat_hw[1]} is smaller than the {pool_size}x"
                    f"{pool_size} pooling; use larger images or model.pool=adaptive")
            self.pool: nn.Module = nn.AvgPool2d(pool_size, stride=pool_size)
            out_hw = (feat_hw[0] // pool_size, feat_hw[1] // pool_size)
        else:
            self.pool = nn.AdaptiveAvgPool2d(pool_grid)
            out_hw = (pool_grid, pool_grid)
        self.fc = nn.Linear(conv_width * out_hw[0] * out_hw[1], code_dim)
        if init_gain != 1.0:
            with torch.no_grad():
                self.fc.weight.mul_(init_gain)

    def forward(self, fmap: torch.Tensor) -> torch.Tensor:
        """Codes ``(B, code_dim)`` in [0, 1] of a feature map ``(B, in_channels, h, w)``."""
        x = self.pool(self.act(self.conv(fmap)))
        return torch.sigmoid(self.fc(torch.flatten(x, 1)))


class Encoder(nn.Module):
    """One modality's network f(x) of the BNN: normalise, backbone, head -> code in [0, 1]^n.

    Input ``(B, in_chans, image_size, image_size)`` float in [0, 1] (1 channel for SAR, 3 for
    RGB optical), normalised with ``mean``/``std`` inside the model; output ``(B, n)`` codes.
    ``code_dim`` is n, ``image_size`` the side (px) the head was sized for. Raises
    :class:`SaroptError` for ``mean``/``std`` not of length ``in_chans``, an unknown ``arch``,
    or a feature map too small for the pooling.
    """

    def __init__(self, arch: str, in_chans: int, image_size: int, mean: Sequence[float],
                 std: Sequence[float], **head_kwargs: object) -> None:
        super().__init__()
        if len(mean) != in_chans or len(std) != in_chans:
            raise SaroptError(f"{arch}: need {in_chans} mean/std values, got {mean} / {std}")
        self.arch, self.in_chans, self.image_size = arch, in_chans, image_size
        self.backbone = create_backbone(arch, in_chans)
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1))
        feat_c, feat_hw = self._feature_shape(image_size)
        self.head = Head(feat_c, feat_hw, **head_kwargs)  # type: ignore[arg-type]
        self.code_dim = self.head.fc.out_features

    @torch.no_grad()
    def _feature_shape(self, size: int) -> tuple[int, tuple[int, int]]:
        was_training = self.backbone.training
        self.backbone.eval()
        fmap = self.backbone.forward_features(torch.zeros(1, self.in_chans, size, size))
        self.backbone.train(was_training)
        return fmap.shape[1], (fmap.shape[2], fmap.shape[3])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Codes ``(B, n)`` in [0, 1] of images ``(B, in_chans, H, W)`` float in [0, 1].

        H = W = ``image_size`` (the head's linear layer is sized for it; ``pool="adaptive"``
        accepts other sizes). Raises ``ValueError`` for another rank or channel count.
        """
        if x.ndim != 4 or x.shape[1] != self.in_chans:
            raise ValueError(f"{self.arch} encoder expects Bx{self.in_chans}xHxW, "
                             f"got {tuple(x.shape)}")
        x = (x - self.mean) / self.std
        return self.head(self.backbone.forward_features(x))


def create_encoder(arch: str, in_chans: int, code_dim: int = 50, image_size: int = 256,
                   mean: Sequence[float] | None = None, std: Sequence[float] | None = None,
                   conv_width: int = 256, conv_act: str = "relu", pool: str = "paper",
                   pool_size: int = 4, pool_grid: int = 2, head_init_gain: float = 1.0
                   ) -> Encoder:
    """A BNN :class:`Encoder`; ``in_chans`` 1 (SAR) or 3 (optical), codes of ``code_dim``.

    Default normalisation: ImageNet's mean/std for 3 channels, their grey mean/std for 1
    (timm's rule for 1-channel inputs, :data:`saropt.bnn.config.GREY_MEAN`). ``image_size``
    (px) is the input side the head is sized for; the head arguments are :class:`Head`'s
    (``head_init_gain`` is its ``init_gain``). Raises :class:`SaroptError` as :class:`Encoder`.
    """
    from saropt.bnn.config import GREY_MEAN, GREY_STD, IMAGENET_MEAN, IMAGENET_STD

    mean = list(mean) if mean is not None else (GREY_MEAN if in_chans == 1 else IMAGENET_MEAN)
    std = list(std) if std is not None else (GREY_STD if in_chans == 1 else IMAGENET_STD)
    return Encoder(arch, in_chans, image_size, mean, std, code_dim=code_dim,
                   conv_width=conv_width, conv_act=conv_act, pool=pool, pool_size=pool_size,
                   pool_grid=pool_grid, init_gain=head_init_gain)


class BNN(nn.Module):
    """The Bridge Neural Network: two separate encoders and the distance d of eq. 1 (paper 003).

    ``sar`` (1 channel) and ``opt`` (3 channels) share no weights; ``forward`` gives the
    distances ``(B,)`` in [0, 1] of B pairs, true pairs trained towards 0 and false pairs
    towards 1 (:mod:`saropt.bnn.loss`). Raises :class:`SaroptError` when the two code sizes
    differ.
    """

    def __init__(self, sar: Encoder, opt: Encoder) -> None:
        super().__init__()
        if sar.code_dim != opt.code_dim:
            raise SaroptError(f"code sizes differ: SAR {sar.code_dim}, optical {opt.code_dim}")
        self.sar, self.opt = sar, opt

    @classmethod
    def from_config(cls, cfg: object) -> BNN:
        """Build both encoders from a :class:`saropt.bnn.config.BNNConfig` (random weights)."""
        m, size = cfg.model, cfg.input_size  # type: ignore[attr-defined]
        common = dict(code_dim=m.code_dim, image_size=size, conv_width=m.conv_width,
                      conv_act=m.conv_act, pool=m.pool, pool_size=m.pool_size,
                      pool_grid=m.pool_grid, head_init_gain=m.head_init_gain)
        sar = create_encoder(m.arch, 1, mean=m.sar_mean, std=m.sar_std, **common)
        opt = create_encoder(m.opt_arch or m.arch, 3, mean=m.opt_mean, std=m.opt_std, **common)
        return cls(sar, opt)

    def forward(self, x_s: torch.Tensor, x_o: torch.Tensor) -> torch.Tensor:
        """Distances d ``(B,)`` in [0, 1] of the pairs (x_s[i], x_o[i]) (paper 003, eq. 1).

        ``x_s``: SAR ``(B, 1, H, W)``, ``x_o``: optical ``(B, 3, H, W)``, float in [0, 1].
        """
        return distance(self.sar(x_s), self.opt(x_o))
