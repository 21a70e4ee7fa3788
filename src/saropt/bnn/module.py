"""The BNN as a Lightning task: contrastive training, per-epoch matching metrics (paper 003).

:class:`BNNModule` adds to :class:`saropt.task.BaseTask` the BNN model, its loss (paper 003
section 2.1, eqs. 2-4, :func:`saropt.bnn.loss.bnn_loss_terms`), the validation metrics and the
step decay of the learning rate at epoch ``optim.milestones`` (``MultiStepLR``); the optimiser
(SGD or AdamW), channels_last and checkpoint loading come from the base.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from saropt.bnn.config import BNNConfig
from saropt.bnn.loss import bnn_loss_terms
from saropt.bnn.metrics import matching_metrics
from saropt.bnn.model import BNN
from saropt.task import BaseTask


class BNNModule(BaseTask):
    """Trains :class:`BNN` on batches ``{"sar", "opt", "label"}`` (paper 003 sections 2.1, 4.2.1).

    Logs the loss and its true/false-pair terms (train) and, on the validation pairs, the loss,
    accuracy / precision / recall at ``d < threshold``, ROC-AUC and FPR at 95 % TPR
    (:func:`saropt.bnn.metrics.matching_metrics`); the last validation metrics travel in the
    checkpoint (``bnn_val_metrics``). ``config`` is a :class:`BNNConfig` as a dict.

    ``trainer.channels_last`` applies on every device, CPU included (bf16 autocast with
    channels_last trains a ResNet50 BNN about 2.3x faster than fp32 on CPU, docs/bnn.md), to
    the weights and to the inputs.
    """

    config_class = BNNConfig
    checkpoint_kind = "BNN"
    channels_last_devices = None  # every device

    cfg: BNNConfig

    def __init__(self, config: dict[str, Any]) -> None:
        super().__init__(config)
        self.save_config()
        self.model = BNN.from_config(self.cfg)
        self._val_d: list[torch.Tensor] = []
        self._val_y: list[torch.Tensor] = []
        self.last_val_metrics: dict[str, float] = {}

    @classmethod
    def checkpoint_mismatch(cls, config: dict[str, Any]) -> str | None:
        """A detector's config (``model`` without the BNN's ``alpha``) is not a BNN's."""
        if "model" in config and "alpha" not in config:
            return ("a `saropt detect train` checkpoint, not a BNN checkpoint (give a "
                    "checkpoint of `saropt bnn train`)")
        return None

    def forward(self, sar: torch.Tensor, opt: torch.Tensor) -> torch.Tensor:
        """Code distances ``d`` ``(B,)`` of the pairs (``sar[i]``, ``opt[i]``), inputs in [0, 1].

        ``sar`` is ``(B, 1, H, W)``, ``opt`` ``(B, 3, H, W)`` (``model.*`` input channels).
        """
        return self.model(self._fmt(sar), self._fmt(opt))

    def _fmt(self, x: torch.Tensor) -> torch.Tensor:
        # inputs follow trainer.channels_last alone (also at inference, whatever the weights)
        if self.cfg.trainer.channels_last:
            return x.contiguous(memory_format=torch.channels_last)
        return x

    def on_train_epoch_start(self) -> None:
        """Draw this epoch's false pairs (deterministic in the epoch, so resume is exact)."""
        dm = getattr(self.trainer, "datamodule", None)
        if dm is not None and hasattr(dm, "set_epoch"):
            dm.set_epoch(self.current_epoch)

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor:
        """Lightning hook: the BNN loss of one batch of pairs."""
        d = self(batch["sar"], batch["opt"])
        loss, l_p, l_n = bnn_loss_terms(d, batch["label"], self.cfg.alpha)
        bs = d.shape[0]
        self.log("train/loss", loss, prog_bar=True, on_step=True, on_epoch=True, batch_size=bs,
                 sync_dist=True)
        self.log_dict({"train/l_p": l_p, "train/l_n": l_n}, on_step=False, on_epoch=True,
                      batch_size=bs, sync_dist=True)
        return loss

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        """Lightning hook: keep the batch's distances and labels for the epoch's metrics."""
        d = self(batch["sar"], batch["opt"]).float()
        self._val_d.append(d.detach())
        self._val_y.append(batch["label"].detach().float())
        loss = bnn_loss_terms(d, batch["label"], self.cfg.alpha)[0]
        self.log("val/loss", loss, on_epoch=True, batch_size=d.shape[0], sync_dist=True)

    def on_validation_epoch_end(self) -> None:
        """Lightning hook: matching metrics over all validation pairs (every rank's)."""
        if not self._val_d:
            return
        d = torch.cat(self._val_d).cpu().numpy()
        y = torch.cat(self._val_y).cpu().numpy()
        self._val_d.clear()
        self._val_y.clear()
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            # ranking metrics need every pair: gather the ranks' shares (uneven sizes, each
            # pair scored once, see BNNDataModule.val_dataloader); every rank gets the same
            parts: list[Any] = [None] * torch.distributed.get_world_size()
            torch.distributed.all_gather_object(parts, (d, y))
            d, y = np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])
        m = matching_metrics(d, y, self.cfg.threshold)
        keep = ("accuracy", "precision", "recall", "roc_auc", "fpr_at_95tpr")
        self.last_val_metrics = {k: float(m[k]) for k in keep}
        for k, v in self.last_val_metrics.items():  # identical on every rank: no sync needed
            self.log(f"val/{k}", v, prog_bar=k == "accuracy")

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Lightning hook: store the last validation metrics (``bnn_val_metrics``)."""
        checkpoint["bnn_val_metrics"] = dict(self.last_val_metrics)

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Lightning hook: restore the last validation metrics."""
        self.last_val_metrics = dict(checkpoint.get("bnn_val_metrics", {}))

    def configure_scheduler(self, optimizer: torch.optim.Optimizer
                            ) -> tuple[torch.optim.lr_scheduler.LRScheduler, str]:
        """Learning rate x ``optim.gamma`` at each epoch in ``optim.milestones``, per epoch."""
        o = self.cfg.optim
        sched = torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones=o.milestones,
                                                     gamma=o.gamma)
        return sched, "epoch"
