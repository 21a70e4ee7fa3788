"""The engine's checkpoints: ``last.ckpt`` is the newest epoch even when a monitored metric stops
improving (Lightning writes ``save_last`` only with a new top-k checkpoint)."""

from __future__ import annotations

import signal

import lightning as L
import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from saropt import engine
from saropt.cli import main


class _Falling(L.LightningModule):
    """A linear model whose logged validation score falls every epoch (best: epoch 0)."""

    def __init__(self) -> None:
        super().__init__()
        self.layer = torch.nn.Linear(2, 1)

    def training_step(self, batch, batch_idx):
        return self.layer(batch[0]).pow(2).mean()

    def validation_step(self, batch, batch_idx):
        self.log("val/score", 1.0 / (self.current_epoch + 1))

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


def _loader() -> DataLoader:
    return DataLoader(TensorDataset(torch.randn(8, 2)), batch_size=4)


def _fit(tmp_path, max_epochs: int, ckpt: str | None = None, val_every: int = 1,
         monitor: str | None = "val/score") -> L.Trainer:
    cfg = engine.TrainerConfig(max_epochs=max_epochs, accelerator="cpu", devices=1,
                               precision="32-true", progress_bar=False,
                               check_val_every_n_epoch=val_every)
    trainer = engine.make_trainer(cfg, tmp_path, monitor=monitor, mode="max",
                                  resume_from=ckpt)
    trainer.fit(_Falling(), _loader(), _loader(), ckpt_path=ckpt)
    return trainer


def test_last_checkpoint_is_the_newest_epoch_when_the_monitored_metric_falls(tmp_path):
    trainer = _fit(tmp_path, 3)
    ckpts = tmp_path / "checkpoints"
    assert sorted(p.name for p in ckpts.glob("*.ckpt")) == ["epoch000.ckpt", "last.ckpt"]
    last = torch.load(ckpts / "last.ckpt", map_location="cpu", weights_only=False)
    assert last["epoch"] == 2 and last["global_step"] == 6
    assert trainer.checkpoint_callback.best_model_path == str(ckpts / "epoch000.ckpt")
    best = torch.load(ckpts / "epoch000.ckpt", map_location="cpu", weights_only=False)
    assert best["epoch"] == 0

    # resuming continues after the newest epoch, not after the best one
    resumed = _fit(tmp_path, 4, str(ckpts / "last.ckpt"))
    assert resumed.global_step == 8
    last = torch.load(ckpts / "last.ckpt", map_location="cpu", weights_only=False)
    assert last["epoch"] == 3


def test_last_checkpoint_every_epoch_when_validation_is_every_few_epochs(tmp_path):
    """``trainer.check_val_every_n_epoch=3``: Lightning saved only at the end of validation, so
    epochs 0-1 left no checkpoint at all and a kill there restarted from scratch."""
    _fit(tmp_path / "m", 2, val_every=3)
    last = torch.load(tmp_path / "m" / "checkpoints" / "last.ckpt", map_location="cpu",
                      weights_only=False)
    assert last["epoch"] == 1 and last["global_step"] == 4
    trainer = _fit(tmp_path / "m", 4, str(tmp_path / "m" / "checkpoints" / "last.ckpt"),
                   val_every=3)  # epoch 2 validates: the best is kept as well
    assert trainer.global_step == 8
    assert trainer.checkpoint_callback.best_model_path.endswith("epoch002.ckpt")
    _fit(tmp_path / "u", 2, val_every=3, monitor=None)  # the BNN's unmonitored checkpoints
    assert sorted(p.name for p in (tmp_path / "u" / "checkpoints").glob("*.ckpt")) == [
        "epoch000.ckpt", "epoch001.ckpt", "last.ckpt"]


class _CtrlC(_Falling):
    def training_step(self, batch, batch_idx):
        if self.global_step == 2:
            raise KeyboardInterrupt  # what Ctrl-C raises in the training loop
        return super().training_step(batch, batch_idx)


def test_ctrl_c_in_training_is_a_keyboard_interrupt_not_exit_1(tmp_path):
    """Lightning turns Ctrl-C into its shutdown and ``sys.exit(1)``: `saropt bnn/detect train`
    ended with status 1 and no `saropt:` line. ``engine.fit`` raises KeyboardInterrupt again."""
    cfg = engine.TrainerConfig(max_epochs=3, accelerator="cpu", devices=1,
                               precision="32-true", progress_bar=False)
    trainer = engine.make_trainer(cfg, tmp_path)
    sigint = signal.getsignal(signal.SIGINT)  # Lightning ignores SIGINT while shutting down
    try:
        with pytest.raises(KeyboardInterrupt):
            engine.fit(trainer, _CtrlC(), L.LightningDataModule.from_datasets(
                TensorDataset(torch.randn(8, 2)), TensorDataset(torch.randn(8, 2)),
                batch_size=4))
    finally:
        signal.signal(signal.SIGINT, sigint)
    last = torch.load(tmp_path / "checkpoints" / "last.ckpt", map_location="cpu",
                      weights_only=False)
    assert last["epoch"] == 0 and last["global_step"] == 2  # the finished epoch, to resume


def test_the_command_line_answers_an_interrupt_with_status_130(monkeypatch, capsys):
    import saropt.cli

    def interrupted(args):
        raise KeyboardInterrupt

    monkeypatch.setattr(saropt.cli, "_cmd_configs", interrupted)
    assert main(["configs"]) == 130
    assert capsys.readouterr().err == "saropt: interrupted\n"


def test_keep_epoch_checkpoints_keeps_the_newest_and_resumes(tmp_path):
    """``trainer.keep_epoch_checkpoints=2`` on an unmonitored run (the BNN's): the two newest
    ``epochNNN.ckpt`` and ``last.ckpt`` remain; without it every epoch stays."""
    def fit(out, epochs, keep, ckpt=None):
        cfg = engine.TrainerConfig(max_epochs=epochs, accelerator="cpu", devices=1,
                                   precision="32-true", progress_bar=False,
                                   keep_epoch_checkpoints=keep)
        trainer = engine.make_trainer(cfg, out, resume_from=ckpt)
        trainer.fit(_Falling(), _loader(), _loader(), ckpt_path=ckpt)
        return sorted(p.name for p in (out / "checkpoints").glob("*.ckpt"))

    assert fit(tmp_path / "all", 4, None) == [
        "epoch000.ckpt", "epoch001.ckpt", "epoch002.ckpt", "epoch003.ckpt", "last.ckpt"]
    assert fit(tmp_path / "two", 4, 2) == ["epoch002.ckpt", "epoch003.ckpt", "last.ckpt"]
    last = tmp_path / "two" / "checkpoints" / "last.ckpt"
    assert torch.load(last, map_location="cpu", weights_only=False)["epoch"] == 3
    assert fit(tmp_path / "two", 5, 2, str(last)) == [
        "epoch003.ckpt", "epoch004.ckpt", "last.ckpt"]
    assert torch.load(last, map_location="cpu", weights_only=False)["epoch"] == 4
