"""The one training engine behind every saropt model: a configured Lightning ``Trainer``.

BNN matching and ship detection share it, so mixed precision, DDP (multi-GPU, multi-node),
per-epoch checkpoints with exact resume, TensorBoard + CSV logs and progress bars behave the same.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from saropt.config import Config


class TrainerConfig(Config):
    """Hardware and bookkeeping settings; the science (optimiser, schedule) lives in each model."""

    max_epochs: int = 1
    accelerator: str = "auto"
    devices: int | str | list[int] = "auto"
    num_nodes: int = 1
    strategy: str = "auto"
    precision: Literal["32-true", "bf16-mixed", "16-mixed", "bf16-true"] = "bf16-mixed"
    channels_last: bool = True
    seed: int = 0
    deterministic: bool = False
    log_every_n_steps: int = 10
    limit_train_batches: int | float = 1.0
    limit_val_batches: int | float = 1.0
    check_val_every_n_epoch: int = 1
    gradient_clip_val: float | None = None
    accumulate_grad_batches: int = 1
    progress_bar: bool = True
    checkpoint_every_n_epochs: int = 1
    resume: bool = True


def make_trainer(cfg: TrainerConfig, out_dir: str | Path, monitor: str | None = None,
                 mode: str = "max", extra_callbacks: list[Any] | None = None) -> Any:
    """A Lightning Trainer writing checkpoints to ``out_dir/checkpoints`` and logs to ``out_dir``.

    ``monitor`` additionally keeps the best checkpoint by that logged metric.
    """
    import lightning as L
    from lightning.pytorch.callbacks import LearningRateMonitor, ModelCheckpoint, TQDMProgressBar
    from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger

    out_dir = Path(out_dir)
    callbacks: list[Any] = [
        ModelCheckpoint(dirpath=out_dir / "checkpoints", filename="epoch{epoch:03d}",
                        auto_insert_metric_name=False, save_last=True, save_top_k=-1
                        if monitor is None else 1, monitor=monitor, mode=mode,
                        every_n_epochs=cfg.checkpoint_every_n_epochs,
                        # always overwrite last.ckpt (never last-v1.ckpt), so a resume after a
                        # kill, or in a copied run folder, picks up the newest state
                        enable_version_counter=False),
        LearningRateMonitor(logging_interval="epoch"),
    ]
    if cfg.progress_bar:
        callbacks.append(TQDMProgressBar(refresh_rate=1))
    callbacks.extend(extra_callbacks or [])
    loggers = [TensorBoardLogger(out_dir, name="tb", version=""),
               CSVLogger(out_dir, name="csv", version="")]
    return L.Trainer(
        default_root_dir=out_dir,
        max_epochs=cfg.max_epochs,
        accelerator=cfg.accelerator,
        devices=cfg.devices,
        num_nodes=cfg.num_nodes,
        strategy=cfg.strategy,
        precision=cfg.precision,
        deterministic=cfg.deterministic,
        log_every_n_steps=cfg.log_every_n_steps,
        limit_train_batches=cfg.limit_train_batches,
        limit_val_batches=cfg.limit_val_batches,
        check_val_every_n_epoch=cfg.check_val_every_n_epoch,
        gradient_clip_val=cfg.gradient_clip_val,
        accumulate_grad_batches=cfg.accumulate_grad_batches,
        enable_progress_bar=cfg.progress_bar,
        callbacks=callbacks,
        logger=loggers,
    )


def resume_checkpoint(cfg: TrainerConfig, out_dir: str | Path) -> str | None:
    """Path of ``out_dir/checkpoints/last.ckpt`` when resuming is on and it exists."""
    last = Path(out_dir) / "checkpoints" / "last.ckpt"
    return str(last) if cfg.resume and last.is_file() else None
