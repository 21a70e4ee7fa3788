"""``BNNConfig``: every BNN setting in one validated config (see ``docs/bnn.md``).

The defaults are paper 003 section 4.2.1 where it fixes a value (SGD, 200 epochs, batch 20, lr
0.01 halved at epochs 30 and 100, 50-d codes, true:false pairs 1:1, alpha = 1); ``docs/bnn.md``
marks each setting "paper" or a choice.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from saropt.config import Config, Milestones, Seed, Workers
from saropt.engine import TrainerConfig

#: ImageNet statistics; the SAR encoder uses their grey mean (timm's rule for 1-channel inputs).
IMAGENET_MEAN = [0.485, 0.456, 0.406]
IMAGENET_STD = [0.229, 0.224, 0.225]
GREY_MEAN = [0.449]
GREY_STD = [0.226]


class DataSection(Config):
    """``data``: where the pairs come from and how they are sampled.

    The pairs of ``root`` are found as ``saropt data`` finds them: ``sar_dir`` + ``opt_dir``
    when given, else by ``layout`` (``auto`` detects it). Pairs of another size than
    ``patch_size`` (px) are an error unless ``resize`` names a policy; ``image_size`` (px)
    resizes every pair for the encoders. ``neg_per_pos`` false pairs per true pair (paper: 1),
    redrawn each epoch; ``batch_size`` pairs per step (paper: 20).
    """

    root: str | None = None
    split: str | None = None
    layout: Literal["auto", "qxs", "plain", "sen12", "osdataset"] = "auto"
    sar_dir: str | None = None
    opt_dir: str | None = None
    patch_size: int = Field(256, gt=0, le=4096)
    resize: Literal["nearest", "bilinear", "bicubic", "area", "lanczos"] | None = None
    image_size: int | None = Field(None, ge=32, le=4096)
    cache: str | None = None
    train_size: int | None = Field(None, gt=0)
    neg_per_pos: float = Field(1.0, gt=0)
    batch_size: int = Field(20, gt=0)
    eval_batch_size: int = Field(64, gt=0)
    num_workers: Workers = 0
    seed: Seed = 0
    shift_neg_frac: float = Field(0.0, ge=0, le=1, description="share of false pairs drawn as "
                                  "shifted crops of the true optical patch (0: the paper's "
                                  "random other patches only)")
    shift_min: int = Field(4, ge=1, description="smallest shift (px, Chebyshev) of a shifted "
                           "false pair")
    shift_max: int = Field(32, ge=1, description="largest shift (px); with shift_neg_frac > 0 "
                           "every training pair is a crop of side patch_size - 2 shift_max")

    @model_validator(mode="after")
    def _check_shift(self) -> DataSection:
        if self.shift_neg_frac > 0:
            if self.shift_min > self.shift_max:
                raise ValueError(f"shift_min ({self.shift_min}) must be <= shift_max "
                                 f"({self.shift_max})")
            if self.patch_size - 2 * self.shift_max < 8:
                raise ValueError(f"shift_max {self.shift_max} leaves crops of "
                                 f"{self.patch_size - 2 * self.shift_max} px from "
                                 f"{self.patch_size} px patches; use a smaller shift_max")
        return self


class ModelSection(Config):
    """``model``: encoders and heads: backbone, 1x1 conv, 4x4 average pooling, linear + sigmoid.

    Paper 003: ResNet50 or Darknet53 backbones (section 4), n = ``code_dim`` = 50 (section
    4.2.1); ``opt_arch`` gives the optical encoder another backbone. Means and standard deviations
    normalise inputs in [0, 1] (1 value for SAR, 3 for RGB). ``sar_init``/``opt_init``: local
    backbone weight files.
    """

    arch: str = "resnet50"
    opt_arch: str | None = None
    code_dim: int = Field(50, gt=0)
    conv_width: int = Field(256, gt=0)
    conv_act: Literal["relu", "none"] = "relu"
    pool: Literal["paper", "adaptive"] = "paper"
    pool_size: int = Field(4, gt=0)
    pool_grid: int = Field(2, gt=0)
    #: multiplies the code layer's initial weights; 1.0 (PyTorch's init) in the paper configs
    head_init_gain: float = Field(1.0, gt=0)
    sar_mean: list[float] = GREY_MEAN
    sar_std: list[float] = GREY_STD
    opt_mean: list[float] = IMAGENET_MEAN
    opt_std: list[float] = IMAGENET_STD
    sar_init: str | None = None
    opt_init: str | None = None

    @model_validator(mode="after")
    def _check_norm(self) -> ModelSection:
        if len(self.sar_mean) != 1 or len(self.sar_std) != 1:
            raise ValueError("sar_mean and sar_std need one value (SAR has one channel)")
        if len(self.opt_mean) != 3 or len(self.opt_std) != 3:
            raise ValueError("opt_mean and opt_std need three values (optical is RGB)")
        if min(self.sar_std + self.opt_std) <= 0:
            raise ValueError("std values must be positive")
        return self


class OptimSection(Config):
    """``optim``: SGD with a step schedule (paper 003 4.2.1: lr 0.01, halved at epochs 30, 100).

    ``gamma`` multiplies the lr at each of the ``milestones`` (epochs). Momentum 0.9 and weight
    decay 1e-4 are a choice (the paper gives them for its detectors, section 4.2.2);
    ``adamw`` is a non-paper option for short CPU runs.
    """

    name: Literal["sgd", "adamw"] = "sgd"
    lr: float = Field(0.01, gt=0)
    momentum: float = Field(0.9, ge=0)
    weight_decay: float = Field(1e-4, ge=0)
    nesterov: bool = False
    milestones: Milestones = [30, 100]
    gamma: float = Field(0.5, gt=0)


class BNNConfig(Config):
    """A BNN experiment: data, model, optimiser, loss weight, trainer and output folder.

    ``alpha``: the false-pair weight of the loss (paper 003 eq. 4, 1 in section 4.2.1);
    ``threshold``: a pair is predicted true when d < threshold; ``trainer.max_epochs`` 200 as in
    the paper. Load with :func:`saropt.config.load_config`, e.g. ``bnn/qxs_resnet50``.
    """

    name: str = "bnn"
    data: DataSection = DataSection()
    model: ModelSection = ModelSection()
    optim: OptimSection = OptimSection()
    alpha: float = Field(1.0, ge=0)
    threshold: float = Field(0.5, gt=0)
    trainer: TrainerConfig = TrainerConfig(max_epochs=200)
    out_dir: str = "runs/bnn"

    @property
    def input_size(self) -> int:
        """Side of the images the encoders see (after the optional resize)."""
        return self.data.image_size or self.data.patch_size
