"""Ship-detector training: :class:`DetectConfig` and the Lightning task of ``saropt detect train``.

:class:`DetectModule` adds to :class:`saropt.task.BaseTask` the detector, its losses, the
validation AP and the warm-up schedule; the optimiser, channels_last and checkpoint loading come
from the base, the data from :class:`saropt.detect.datamodule.DetectDataModule`.

The recipe (paper 003 section 4.2.2) is SGD with momentum and weight decay, a linear warm-up over
the first ``warmup_iters`` iterations and the learning rate divided by ``1 / gamma`` at each
epoch in ``milestones``. Validation runs the detector on the validation split every epoch and logs
AP@0.5 three ways (``val/ap50`` is the COCO 101-point value, pycocotools).
"""

from __future__ import annotations

import math
from typing import Any, Literal, Self

import torch
from pydantic import Field, field_validator

from saropt.config import Config, Milestones, Workers
from saropt.detect.scene.radiometry import Radiometry
from saropt.engine import TrainerConfig
from saropt.task import BaseTask

PLACEHOLDER = "???"


class ModelConfig(Config):
    """Which detector and how its weights start (see :func:`saropt.detect.models.create_detector`).

    ``options`` go to the detector builder: Faster R-CNN ``min_size``, ``max_size``,
    ``anchor_sizes``, ``frozen_bn``, ``trainable_layers``, ``score_thresh``, ``nms_iou``;
    YOLOv3 ``input_size``, ``train_sizes``, ``anchors``, ``width``, ``score_thresh``, ``nms_iou``.
    """

    name: str = "faster_rcnn_r18_fpn"
    in_chans: int = Field(1, ge=1, le=64, description="input channels (1 .. 64)")
    init: str = "random"
    #: ``detector:`` inits only: the neck and heads may keep their initial values where the
    #: source lacks or reshapes them (another class count); the backbone must still load whole.
    init_partial: bool = False
    num_classes: int = Field(2, ge=2)
    options: dict[str, Any] = Field(default_factory=dict)

    @field_validator("init")
    @classmethod
    def _init_set(cls, v: str) -> str:
        return _require(v, "model.init=bnn:/path/sar_encoder.safetensors (or imagenet:PATH)")


class DataConfig(Config):
    """A dataset reader (:func:`saropt.detect.datasets.build_dataset`) and loader settings.

    ``batch_size`` is per device. ``max_train_images`` / ``max_val_images`` keep the first
    images of a split (:class:`saropt.detect.datamodule.DetectionSubset`). ``radiometry``: how
    the 8-bit training images were made from SAR values (recorded in the checkpoint for
    ``saropt detect scene``; AIR-SARShip's is known from its reader options).
    """

    dataset: str = "hrsid"
    root: str
    train_split: str = "train"
    val_split: str = "test"
    options: dict[str, Any] = Field(default_factory=dict)
    batch_size: int = Field(8, ge=1)
    num_workers: Workers = 2
    hflip: float = Field(0.5, ge=0.0, le=1.0)
    max_train_images: int | None = Field(None, ge=1)
    max_val_images: int | None = Field(None, ge=1)
    radiometry: Radiometry | None = None

    @field_validator("root")
    @classmethod
    def _root_set(cls, v: str) -> str:
        return _require(v, "data.root=/path/to/dataset")


class OptimConfig(Config):
    """SGD, linear warm-up, step decay at epoch ``milestones``."""

    lr: float = Field(0.02, gt=0)
    momentum: float = Field(0.9, ge=0)
    weight_decay: float = Field(1e-4, ge=0)
    milestones: Milestones = Field(default_factory=lambda: [8, 12])
    gamma: float = Field(0.1, gt=0)
    warmup_iters: int = Field(500, ge=0)
    warmup_factor: float = Field(0.001, gt=0, le=1)
    warmup: Literal["linear"] = "linear"


class DetectConfig(Config):
    """One detector training run: ``saropt detect train CONFIG key=value ...``."""

    model: ModelConfig = Field(default_factory=ModelConfig)
    data: DataConfig
    optim: OptimConfig = Field(default_factory=OptimConfig)
    trainer: TrainerConfig = Field(default_factory=TrainerConfig)
    out_dir: str = "runs/detect"
    eval_iou: float = Field(0.5, gt=0, lt=1)
    description: str = ""


def _require(value: str, example: str) -> str:
    """Configs mark values the user must give (paths) with ``???``."""
    if value.endswith(PLACEHOLDER):
        raise ValueError(f"must be set, e.g. {example}")
    return value


def lr_factor(step: int, steps_per_epoch: int, cfg: OptimConfig) -> float:
    """Learning-rate multiplier at optimiser step ``step``: warm-up x step decay."""
    warm = 1.0
    if step < cfg.warmup_iters:
        alpha = step / cfg.warmup_iters
        warm = cfg.warmup_factor * (1 - alpha) + alpha
    epoch = step // max(1, steps_per_epoch)
    return warm * cfg.gamma ** sum(epoch >= m for m in cfg.milestones)


def hflip(images: list[torch.Tensor], targets: list[dict[str, Any]], p: float
          ) -> tuple[list[torch.Tensor], list[dict[str, Any]]]:
    """Flip each image left-right with probability ``p`` (boxes follow, xyxy exclusive edges)."""
    out_i, out_t = [], []
    for img, t in zip(images, targets):
        if p > 0 and torch.rand(()) < p:
            w = img.shape[-1]
            b = t["boxes"].clone()
            b[:, [0, 2]] = w - t["boxes"][:, [2, 0]]
            img, t = img.flip(-1), {**t, "boxes": b}
        out_i.append(img)
        out_t.append(t)
    return out_i, out_t


def to_coco_results(output: dict[str, torch.Tensor], image_id: int,
                    category_of: dict[int, int] | None = None) -> list[dict[str, Any]]:
    """One image's ``{"boxes", "scores", "labels"}`` as COCO results (``bbox`` = x, y, w, h)."""
    out = []
    for b, s, lab in zip(output["boxes"].tolist(), output["scores"].tolist(),
                         output["labels"].tolist()):
        out.append({"image_id": int(image_id),
                    "category_id": int(category_of.get(lab, lab) if category_of else lab),
                    "bbox": [b[0], b[1], b[2] - b[0], b[3] - b[1]], "score": float(s)})
    return out


class DetectModule(BaseTask):
    """A detector from :func:`create_detector` trained with the paper's SGD recipe.

    ``norm`` (image mean/std) is recorded in the hyper-parameters so a checkpoint rebuilds the
    detector exactly without the original init weights file; ``scene`` (radiometry, training
    image size, pixel scale; :func:`saropt.detect.scene.detectors.training_scene_record`, made
    from ``train_image_size`` when not given) lets ``saropt detect scene`` tile scenes alike.
    ``from_checkpoint=True`` builds the detector without its init weights (a checkpoint's
    tensors replace them, see :meth:`BaseTask.from_checkpoint`).

    Validation needs ``val_gt`` (the validation split's COCO ground truth) and ``category_of``
    (1-based label -> COCO category id), both set by :func:`saropt.detect.train.train` from
    :class:`saropt.detect.datamodule.DetectDataModule`.

    ``trainer.channels_last`` applies to the weights on CUDA only (since it was introduced for
    the GPU runs). On CPU the detectors stay in contiguous memory, so CPU runs keep the numbers
    of contiguous training: channels_last changes a CPU step's gradients (up to 8e-4 on a
    Faster R-CNN R18-FPN step) for about 3 % less time (0.70 against 0.73 s at 256 px, fp32,
    one thread on a shared machine; ``benchmarks/bench_detect_channels_last.py``).
    """

    config_class = DetectConfig
    checkpoint_kind = "`saropt detect train`"
    channels_last_devices = ("cuda",)  # not on CPU: see the class docstring

    cfg: DetectConfig

    def __init__(self, config: dict[str, Any], norm: dict[str, list[float]] | None = None,
                 from_checkpoint: bool = False, scene: dict[str, Any] | None = None,
                 train_image_size: tuple[int, int] | None = None) -> None:
        super().__init__(config)
        from saropt.detect.models import create_detector, get_normalization

        m = self.cfg.model
        opts = dict(m.options)
        if norm:
            opts.update(image_mean=norm["mean"], image_std=norm["std"])
        init = "random" if from_checkpoint else m.init
        self.model, self.load_report = create_detector(
            m.name, m.in_chans, init, m.num_classes,
            partial_init=m.init_partial and not from_checkpoint, **opts)
        mean, std = get_normalization(self.model)
        if scene is None and not from_checkpoint:
            from saropt.detect.scene.detectors import training_scene_record

            scene = training_scene_record(self.cfg, self.model, train_image_size)
        self.save_config(norm={"mean": mean, "std": std},
                         **({"scene": scene} if scene is not None else {}))
        self.val_gt: dict[str, Any] | None = None
        self.category_of: dict[int, int] | None = None
        self._val_results: dict[int, list[dict[str, Any]]] = {}
        self.last_metrics: dict[str, Any] = {}

    @classmethod
    def checkpoint_mismatch(cls, config: dict[str, Any]) -> str | None:
        """A BNN's config (it has ``alpha``) is not a detector's."""
        if "alpha" in config:
            return ("a `saropt bnn train` checkpoint, not a detector; export its SAR encoder "
                    "(saropt bnn export) and train a detector with "
                    "model.init=bnn:PATH/sar_encoder.safetensors")
        return None

    @classmethod
    def from_hparams(cls, hparams: dict[str, Any]) -> Self:
        """An untrained detector as recorded: ``config``, ``norm`` and ``scene``, no init."""
        return cls(hparams["config"], norm=hparams.get("norm"), from_checkpoint=True,
                   scene=hparams.get("scene"))

    def forward(self, images: list[torch.Tensor]) -> list[dict[str, torch.Tensor]]:
        """Detections per image (``boxes`` ``(N, 4)`` xyxy px, ``scores``, ``labels``), eval mode.

        ``images`` are ``(C, H, W)`` tensors in [0, 1] of any sizes.
        """
        return self.model(images)

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        """Lightning hook: the detector's summed losses on a (randomly flipped) batch.

        Raises:
            FloatingPointError: the loss is not finite (too high a learning rate, bad boxes).
        """
        images, targets = batch
        targets = [{"boxes": t["boxes"], "labels": t["labels"]} for t in targets]
        images, targets = hflip(images, targets, self.cfg.data.hflip)
        losses = self.model(images, targets)
        loss = sum(losses.values())
        if not torch.isfinite(loss):
            raise FloatingPointError(f"non-finite detection loss {losses} at step "
                                     f"{self.global_step}; lower optim.lr or check the boxes")
        n = len(images)
        self.log_dict({f"train/{k}": v for k, v in losses.items()}, batch_size=n)
        self.log("train/loss", loss, prog_bar=True, batch_size=n)
        return loss

    def on_validation_epoch_start(self) -> None:
        """Lightning hook: forget the previous epoch's detections."""
        self._val_results = {}

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        """Lightning hook: keep the batch's detections as COCO results, by image id."""
        images, targets = batch
        for out, t in zip(self.model(images), targets):
            iid = int(t["image_id"])
            self._val_results[iid] = to_coco_results(out, iid, self.category_of)

    def on_validation_epoch_end(self) -> None:
        """Lightning hook: AP@0.5 three ways over every rank's detections (``val/ap50``...)."""
        if self.val_gt is None or self.trainer.sanity_checking:
            return
        from saropt.detect.ap import evaluate_coco_results

        per_image = dict(self._val_results)
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            gathered: list[Any] = [None] * torch.distributed.get_world_size()
            torch.distributed.all_gather_object(gathered, per_image)
            for part in gathered:
                per_image.update(part)
        results = [r for rs in per_image.values() for r in rs]
        metrics = evaluate_coco_results(self.val_gt, results, iou_thr=self.cfg.eval_iou)["all"]
        ap = {k: (v if v is not None else 0.0) for k, v in metrics["ap50"].items()}
        self.last_metrics = metrics
        self.log("val/ap50", ap["coco_101pt"], prog_bar=True, sync_dist=False)
        self.log("val/ap50_voc07", ap["voc07_11pt"])
        self.log("val/ap50_voc", ap["voc_all_point"])

    def configure_scheduler(self, optimizer: torch.optim.Optimizer
                            ) -> tuple[torch.optim.lr_scheduler.LRScheduler, str]:
        """Linear warm-up x step decay (:func:`lr_factor`), stepped per optimiser step."""
        o = self.cfg.optim
        epochs = max(1, self.trainer.max_epochs or 1)
        steps = max(1, math.ceil(self.trainer.estimated_stepping_batches / epochs))
        sched = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: lr_factor(s, steps, o))
        return sched, "step"
