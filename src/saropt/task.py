"""The Lightning task base of every saropt model: config, memory format, optimiser, checkpoints.

:class:`BaseTask` holds what the BNN (:class:`saropt.bnn.module.BNNModule`) and the ship
detectors (:class:`saropt.detect.module.DetectModule`) do alike, so each task only adds its
model, steps, metrics and learning-rate schedule (the pattern of torchgeo's
``trainers/base.py`` ``BaseTask``). It sits beside :mod:`saropt.engine` (the ``Trainer``, run
folders, resume) and :mod:`saropt.config` (the validated configs it reads): the engine drives a
task, the task describes one model.

Checkpoints keep Lightning's format: ``hyper_parameters["config"]`` is the run's validated
config (JSON types), plus what a task adds (the detectors' ``norm`` and ``scene``), and
``state_dict`` holds the task's ``model.*`` tensors.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar, Self

import lightning as L
import torch

from saropt.config import Config
from saropt.errors import SaroptError

#: errors that mean a checkpoint's config or tensors do not fit the task (pydantic's validation
#: errors are ValueErrors; missing or misshapen tensors RuntimeErrors)
UNUSABLE_CHECKPOINT_ERRORS = (ValueError, RuntimeError, KeyError, TypeError)


class BaseTask(L.LightningModule):
    """A saropt model as a Lightning module, built from one validated config.

    A task sets three class attributes and implements :meth:`configure_scheduler`:

    * ``config_class``: the :class:`saropt.config.Config` that ``config`` (the
      ``hyper_parameters["config"]`` of its checkpoints) validates against, kept as ``self.cfg``.
    * ``checkpoint_kind``: how error messages name its checkpoints (``"BNN"``).
    * ``channels_last_devices``: the device types (``"cuda"``, ``"cpu"``) on which
      ``trainer.channels_last`` converts the weights; ``None``: every device.

    What the base does for every task: the optimiser of ``cfg.optim`` over the trainable weights
    (:meth:`configure_optimizer`), the channels_last rule (:meth:`setup`) and rebuilding a task
    from its checkpoint for inference (:meth:`from_checkpoint`).
    """

    config_class: ClassVar[type[Config]]
    checkpoint_kind: ClassVar[str]
    channels_last_devices: ClassVar[tuple[str, ...] | None] = None

    #: completed training epochs of the checkpoint a module was rebuilt from
    trained_epochs: int = 0

    def __init__(self, config: dict[str, Any]) -> None:
        super().__init__()
        self.cfg: Any = self.config_class.model_validate(config)

    def save_config(self, **extra: Any) -> None:
        """Record the validated config (JSON types) and ``extra`` as the hyper-parameters.

        They are what :meth:`from_checkpoint` rebuilds the task from: ``config`` under
        ``hyper_parameters["config"]``, each ``extra`` key beside it.
        """
        self.save_hyperparameters({"config": self.cfg.model_dump(mode="json"), **extra})

    # ------------------------------------------------------------------ memory format

    def uses_channels_last(self, device: torch.device | str) -> bool:
        """Whether the weights go to channels_last memory when training on ``device``.

        True when ``trainer.channels_last`` is set and the device's type is one of the task's
        ``channels_last_devices`` (every type when that is ``None``).
        """
        kinds = self.channels_last_devices
        return bool(self.cfg.trainer.channels_last) and (
            kinds is None or torch.device(device).type in kinds)

    def setup(self, stage: str) -> None:
        """Convert the weights to channels_last where :meth:`uses_channels_last` says so.

        Lightning calls this before the strategy moves the module to its device (the move keeps
        the memory format), wraps it for DDP and builds the optimiser, so every rank's weights,
        gradient buckets and optimiser state start in the one format.
        """
        if self.uses_channels_last(self.trainer.strategy.root_device):
            self.to(memory_format=torch.channels_last)

    # ------------------------------------------------------------------ optimisation

    def configure_optimizer(self) -> torch.optim.Optimizer:
        """The optimiser of ``cfg.optim`` over the weights that require gradients.

        ``optim.name`` ``"adamw"``: AdamW (``lr``, ``weight_decay``); otherwise SGD with
        ``momentum``, ``weight_decay`` and ``nesterov``. A config without ``name`` or
        ``nesterov`` (the detectors', paper 003 section 4.2.2) means SGD without Nesterov.
        """
        o = self.cfg.optim
        params = [p for p in self.parameters() if p.requires_grad]
        if getattr(o, "name", "sgd") == "adamw":
            return torch.optim.AdamW(params, lr=o.lr, weight_decay=o.weight_decay)
        return torch.optim.SGD(params, lr=o.lr, momentum=o.momentum,
                               weight_decay=o.weight_decay,
                               nesterov=getattr(o, "nesterov", False))

    def configure_scheduler(self, optimizer: torch.optim.Optimizer
                            ) -> tuple[torch.optim.lr_scheduler.LRScheduler, str]:
        """The task's learning-rate schedule and when it steps (``"epoch"`` or ``"step"``).

        Raises:
            NotImplementedError: the task does not define one.
        """
        raise NotImplementedError(f"{type(self).__name__} defines no learning-rate schedule")

    def configure_optimizers(self) -> Any:
        """Lightning hook: :meth:`configure_optimizer` with :meth:`configure_scheduler`."""
        optimizer = self.configure_optimizer()
        scheduler, interval = self.configure_scheduler(optimizer)
        return {"optimizer": optimizer,
                "lr_scheduler": {"scheduler": scheduler, "interval": interval}}

    # ------------------------------------------------------------------ checkpoints

    @classmethod
    def checkpoint_mismatch(cls, config: dict[str, Any]) -> str | None:
        """Why a checkpoint with this ``config`` belongs to another task, or None if it may not."""
        return None

    @classmethod
    def from_hparams(cls, hparams: dict[str, Any]) -> Self:
        """A new, untrained module from a checkpoint's hyper-parameters (``config`` and extras)."""
        return cls(hparams["config"])

    @classmethod
    def from_checkpoint(cls, checkpoint: str | Path, map_location: str = "cpu") -> Self:
        """Rebuild the task saved in a Lightning checkpoint, for inference.

        The module is built from the checkpoint's hyper-parameters (:meth:`from_hparams`), its
        tensors loaded strictly and its ``on_load_checkpoint`` hook run; it comes back in eval
        mode with contiguous weights (whatever memory format it trained in) and
        ``trained_epochs`` set to the completed epochs.

        Args:
            checkpoint: a ``.ckpt`` written by this task's training.
            map_location: where the tensors are read to (``torch.load``'s ``map_location``).

        Returns:
            The module, an instance of ``cls`` on ``map_location``.

        Raises:
            SaroptError: the file is missing or unreadable, is not a checkpoint of a saropt
                task (no ``config`` hyper-parameter or no ``state_dict``), is one of another
                task (:meth:`checkpoint_mismatch`), or its config or tensors do not fit.
        """
        from saropt.utils.weights import read_checkpoint

        path = Path(checkpoint)
        ckpt = read_checkpoint(path, map_location)
        hp = (ckpt.get("hyper_parameters") or {}) if isinstance(ckpt, dict) else {}
        config = hp.get("config") if isinstance(hp, dict) else None
        if config is None or "state_dict" not in ckpt:
            raise SaroptError(f"{path}: not a {cls.checkpoint_kind} checkpoint (no config in "
                              "its hyper-parameters)")
        mismatch = cls.checkpoint_mismatch(config) if isinstance(config, dict) else None
        if mismatch:
            raise SaroptError(f"{path}: {mismatch}")
        try:
            module = cls.from_hparams(dict(hp))
            module.load_state_dict(ckpt["state_dict"])
        except UNUSABLE_CHECKPOINT_ERRORS as err:
            raise SaroptError(f"{path}: not a usable {cls.checkpoint_kind} checkpoint ("
                              f"{' '.join(str(err).split())[:300]})") from None
        module.on_load_checkpoint(ckpt)
        module.trained_epochs = int(ckpt.get("epoch", -1)) + 1
        return module.to(memory_format=torch.contiguous_format).eval()
