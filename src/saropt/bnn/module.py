"""The Lightning module: BNN training with SGD + MultiStepLR and per-epoch matching metrics."""

from __future__ import annotations

from typing import Any

import lightning as L
import numpy as np
import torch

from saropt.bnn.config import BNNConfig
from saropt.bnn.loss import bnn_loss_terms
from saropt.bnn.metrics import matching_metrics
from saropt.bnn.model import BNN


class BNNModule(L.LightningModule):
    """Trains :class:`BNN` on batches ``{"sar", "opt", "label"}``; logs loss (train) and
    accuracy / precision / recall at d < threshold and ROC-AUC on the validation pairs."""

    def __init__(self, config: dict[str, Any]) -> None:
        super().__init__()
        self.save_hyperparameters({"config": config})
        self.cfg = BNNConfig.model_validate(config)
        self.model = BNN.from_config(self.cfg)
        self._val_d: list[torch.Tensor] = []
        self._val_y: list[torch.Tensor] = []
        self.last_val_metrics: dict[str, float] = {}

    def forward(self, sar: torch.Tensor, opt: torch.Tensor) -> torch.Tensor:
        return self.model(self._fmt(sar), self._fmt(opt))

    def _fmt(self, x: torch.Tensor) -> torch.Tensor:
        if self.cfg.trainer.channels_last:
            return x.contiguous(memory_format=torch.channels_last)
        return x

    def setup(self, stage: str) -> None:
        if self.cfg.trainer.channels_last:
            self.to(memory_format=torch.channels_last)

    def on_train_epoch_start(self) -> None:
        """Draw this epoch's false pairs (deterministic in the epoch, so resume is exact)."""
        dm = getattr(self.trainer, "datamodule", None)
        if dm is not None and hasattr(dm, "set_epoch"):
            dm.set_epoch(self.current_epoch)

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor:
        d = self(batch["sar"], batch["opt"])
        loss, l_p, l_n = bnn_loss_terms(d, batch["label"], self.cfg.alpha)
        bs = d.shape[0]
        self.log("train/loss", loss, prog_bar=True, on_step=True, on_epoch=True, batch_size=bs,
                 sync_dist=True)
        self.log_dict({"train/l_p": l_p, "train/l_n": l_n}, on_step=False, on_epoch=True,
                      batch_size=bs, sync_dist=True)
        return loss

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        d = self(batch["sar"], batch["opt"]).float()
        self._val_d.append(d.detach())
        self._val_y.append(batch["label"].detach().float())
        loss = bnn_loss_terms(d, batch["label"], self.cfg.alpha)[0]
        self.log("val/loss", loss, on_epoch=True, batch_size=d.shape[0], sync_dist=True)

    def on_validation_epoch_end(self) -> None:
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
        checkpoint["bnn_val_metrics"] = dict(self.last_val_metrics)

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        self.last_val_metrics = dict(checkpoint.get("bnn_val_metrics", {}))

    def configure_optimizers(self) -> Any:
        o = self.cfg.optim
        if o.name == "adamw":
            opt: torch.optim.Optimizer = torch.optim.AdamW(self.parameters(), lr=o.lr,
                                                           weight_decay=o.weight_decay)
        else:
            opt = torch.optim.SGD(self.parameters(), lr=o.lr, momentum=o.momentum,
                                  weight_decay=o.weight_decay, nesterov=o.nesterov)
        sched = torch.optim.lr_scheduler.MultiStepLR(opt, milestones=o.milestones, gamma=o.gamma)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "epoch"}}
