"""The one training engine behind every saropt model: a configured Lightning ``Trainer``.

BNN matching and ship detection share it, so mixed precision, DDP (multi-GPU, multi-node),
per-epoch checkpoints with exact resume, TensorBoard + CSV logs and progress bars behave the same.
"""

from __future__ import annotations

import os
import zipfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator

from saropt.config import MAX_SEED, Config, Seed
from saropt.errors import SaroptError


class TrainerConfig(Config):
    """``trainer``: hardware and bookkeeping settings; the science lives in each model's config.

    The fields are Lightning ``Trainer`` arguments of the same names (``precision`` default
    ``bf16-mixed``), plus ``channels_last`` (memory format), ``seed`` (per-epoch re-seeding,
    exact resume), ``progress_bar``, ``checkpoint_every_n_epochs``, ``keep_epoch_checkpoints``
    and ``resume`` (continue from ``checkpoints/last.ckpt``). Invalid values are validation
    errors naming the key.
    """

    max_epochs: int = Field(1, ge=1)
    accelerator: str = "auto"
    devices: int | str | list[int] = "auto"
    num_nodes: int = Field(1, ge=1)
    strategy: str = "auto"
    precision: Literal["32-true", "bf16-mixed", "16-mixed", "bf16-true"] = "bf16-mixed"
    channels_last: bool = True
    seed: Seed = 0
    deterministic: bool = False
    log_every_n_steps: int = Field(10, ge=1)
    limit_train_batches: int | float = Field(1.0, gt=0)
    limit_val_batches: int | float = Field(1.0, ge=0)
    check_val_every_n_epoch: int = Field(1, ge=1)
    gradient_clip_val: float | None = Field(None, gt=0)
    accumulate_grad_batches: int = Field(1, ge=1)
    progress_bar: bool = True
    checkpoint_every_n_epochs: int = Field(1, ge=1)
    #: unmonitored runs (the BNN): keep only the newest N ``epochNNN.ckpt`` (None: every one;
    #: a ResNet18 BNN checkpoint at 64 px is 180 MB, so 200 paper epochs of ResNet50 fill tens
    #: of GB). Monitored runs (detectors) keep their best one and ``last.ckpt`` anyway.
    keep_epoch_checkpoints: int | None = Field(None, ge=1)
    resume: bool = True

    @field_validator("limit_train_batches", "limit_val_batches")
    @classmethod
    def _fraction_or_count(cls, v: int | float) -> int | float:
        if isinstance(v, float) and v > 1:
            raise ValueError("a float is a fraction of the batches and must be <= 1.0 "
                             "(give an integer for a number of batches)")
        return v

    @field_validator("strategy")
    @classmethod
    def _known_strategy(cls, v: str) -> str:
        if v in ("auto", "ddp", "ddp_spawn", "fsdp", "deepspeed", "single_device"):
            return v
        from lightning.pytorch.strategies import StrategyRegistry

        known = ["auto", *StrategyRegistry.available_strategies()]
        if v not in known:
            raise ValueError(f"unknown strategy; choose one of auto, ddp, ddp_spawn, fsdp, "
                             f"deepspeed, ... ({len(known)} known to Lightning)")
        return v

    @field_validator("devices")
    @classmethod
    def _device_request(cls, v: int | str | list[int]) -> int | str | list[int]:
        """Check what Lightning's ``devices`` takes; a number or list given as text is parsed.

        "auto", a count >= 1, -1 (all), a list of distinct device indices >= 0, or such a
        number/list as text ("2", "0,1").
        """
        if isinstance(v, str) and v != "auto":
            parts = [p.strip() for p in v.split(",") if p.strip()]
            if not parts or not all(p.lstrip("-").isdigit() for p in parts):
                raise ValueError('give "auto", a device count (1, 2, ...), -1 for all, or a '
                                 "list of device indices such as [0, 1]")
            ints = [int(p) for p in parts]
            return cls._device_request(ints if "," in v else ints[0])  # as a number or list
        if isinstance(v, int) and not isinstance(v, bool) and v != -1 and v < 1:
            raise ValueError("a device count must be >= 1 (or -1 for all devices)")
        if isinstance(v, list) and (not v or min(v) < 0 or len(set(v)) != len(v)):
            raise ValueError("a device list needs distinct indices >= 0, e.g. [0, 1]")
        return v

    @field_validator("accelerator")
    @classmethod
    def _known_accelerator(cls, v: str) -> str:
        if v not in ("auto", "cpu", "gpu", "cuda", "mps", "tpu"):
            raise ValueError("choose auto, cpu, gpu (= cuda), cuda, mps or tpu")
        return v


class EpochShuffleSampler:
    """A permutation of ``range(n)`` drawn from ``(seed, epoch)`` only.

    The epoch is read when iteration starts: from ``epoch_fn()`` (e.g. the trainer's
    ``current_epoch``, already restored when a resumed run creates its first iterator) when it
    gives one, else from ``set_epoch`` (which Lightning calls, but after a DataLoader with
    workers has already drawn its first indices). ``on_epoch(epoch)`` then runs in the main
    process before any index reaches a worker, so a dataset's per-epoch state (the BNN's false
    pairs) is set from the same epoch. Together: a resumed run, with or without workers, sees the
    same batches as an uninterrupted one. (A torch ``Sampler`` by protocol; not subclassed so that
    importing the engine stays light.)
    """

    def __init__(self, n: int, seed: int = 0,
                 on_epoch: Callable[[int], None] | None = None,
                 epoch_fn: Callable[[], int | None] | None = None) -> None:
        self.n, self.seed, self.epoch = n, seed, 0
        self.on_epoch, self.epoch_fn = on_epoch, epoch_fn

    def set_epoch(self, epoch: int) -> None:
        """Record the epoch (used when ``epoch_fn`` gives none)."""
        self.epoch = epoch

    def __iter__(self) -> Iterator[int]:
        import torch

        epoch = self.epoch_fn() if self.epoch_fn is not None else None
        self.epoch = self.epoch if epoch is None else int(epoch)
        if self.on_epoch is not None:
            self.on_epoch(self.epoch)
        g = torch.Generator().manual_seed(epoch_seed(self.seed, self.epoch))
        return iter(torch.randperm(self.n, generator=g).tolist())

    def __len__(self) -> int:
        return self.n


def training_epoch(trainer: Any) -> int | None:
    """The epoch a trainer is running or about to run (None without a trainer).

    Lightning's ``current_epoch`` lags by one right after resuming from an end-of-epoch checkpoint;
    ``epoch_progress.current.processed`` is what it passes to ``sampler.set_epoch``.
    """
    if trainer is None:
        return None
    return int(trainer.fit_loop.epoch_progress.current.processed)


def check_hardware(cfg: TrainerConfig) -> None:
    """Refuse settings this machine cannot run, before any work starts.

    Raises :class:`SaroptError` for a CUDA accelerator without a GPU, MPS without an Apple
    device, or more CUDA devices than the machine has.
    """
    import torch

    if cfg.accelerator in ("gpu", "cuda") and not torch.cuda.is_available():
        raise SaroptError(f"trainer.accelerator={cfg.accelerator}: no CUDA GPU is available on "
                          "this machine (torch.cuda.is_available() is False); use "
                          "trainer.accelerator=cpu or auto")
    if cfg.accelerator == "mps" and not torch.backends.mps.is_available():
        raise SaroptError("trainer.accelerator=mps: no Apple MPS device on this machine; use "
                          "trainer.accelerator=cpu or auto")
    if cfg.accelerator in ("gpu", "cuda") and isinstance(cfg.devices, int) and \
            cfg.devices > torch.cuda.device_count():
        raise SaroptError(f"trainer.devices={cfg.devices}: this machine has "
                          f"{torch.cuda.device_count()} CUDA GPU(s)")


def check_device(device: str, flag: str = "--device") -> str:
    """A torch device string usable here (``auto`` -> cuda when available, else cpu).

    Raises :class:`SaroptError` naming ``flag`` for a malformed device, a CUDA device this
    machine lacks (no GPU, or an index beyond its count), or a type other than cpu and cuda.
    """
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    try:
        dev = torch.device(device)
    except (RuntimeError, ValueError):
        raise SaroptError(f"{flag} {device!r}: not a device (cpu, cuda, cuda:1, ...)") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise SaroptError(f"{flag} {device}: no CUDA GPU is available on this machine; use "
                              f"{flag} cpu")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise SaroptError(f"{flag} {device}: this machine has {torch.cuda.device_count()} "
                              "CUDA GPU(s)")
    elif dev.type not in ("cpu", "cuda"):
        raise SaroptError(f"{flag} {device}: only cpu and cuda devices are supported")
    return device


def _atomic_checkpoint_io() -> Any:
    """A Lightning ``CheckpointIO`` that writes checkpoints atomically.

    Each checkpoint goes to a temporary name beside the final one and is renamed on success: a
    full disk or a kill never leaves a truncated ``last.ckpt`` under its final name.
    """
    import torch
    from lightning.pytorch.plugins.io import TorchCheckpointIO

    from saropt.utils.io import atomic_path

    class AtomicCheckpointIO(TorchCheckpointIO):
        def save_checkpoint(self, checkpoint: dict[str, Any], path: Any,
                            storage_options: Any = None) -> None:
            if storage_options is not None:
                raise TypeError("storage_options are not supported")
            with atomic_path(path) as tmp:
                torch.save(checkpoint, tmp)

    return AtomicCheckpointIO()


def epoch_seed(seed: int, epoch: int) -> int:
    """The seed of one training epoch, ``(seed * 1_000_003 + epoch) mod 2**32``.

    No wrap-around for seeds below 4295, and in range for every ``Seed`` (``seed_everything``
    refuses larger).
    """
    return (seed * 1_000_003 + epoch) % (MAX_SEED + 1)


def _epoch_seed_callback(seed: int) -> Any:
    """A callback re-seeding Python, NumPy and torch at each training epoch from (seed, epoch).

    Random flips, multi-scale sizes, shuffling and the DataLoader workers'
    seeds (drawn when the epoch's iterator starts, after this hook) then depend on the epoch
    only, so a run resumed from an epoch checkpoint replays exactly what an uninterrupted run
    does (Lightning does not store the random states in checkpoints).
    """
    import lightning as L
    from lightning.pytorch.callbacks import Callback

    class EpochSeed(Callback):
        def on_train_epoch_start(self, trainer: Any, pl_module: Any) -> None:
            L.seed_everything(epoch_seed(seed, training_epoch(trainer) or 0), workers=True,
                              verbose=False)

    return EpochSeed()


def _resumable_csv_logger(out_dir: Path, resume_step: int | None) -> Any:
    """Lightning's CSVLogger, except that a resumed run keeps its earlier rows.

    The rows of ``metrics.csv`` up to the checkpoint's step are kept (Lightning deletes the
    file) and the new epochs appended.
    """
    import csv

    from lightning.pytorch.loggers import CSVLogger
    from lightning.pytorch.loggers.csv_logs import ExperimentWriter

    class ResumableWriter(ExperimentWriter):
        def _check_log_dir_exists(self) -> None:
            path = Path(self.metrics_file_path)
            if not path.is_file():
                return
            if resume_step is None:
                path.unlink()
                return
            with open(path, newline="") as fh:
                reader = csv.DictReader(fh)
                keys = list(reader.fieldnames or [])
                rows = [r for r in reader if _step(r) is not None and _step(r) <= resume_step]
            from saropt.utils.io import atomic_path

            with atomic_path(path) as tmp, open(tmp, "w", newline="") as fh:
                writer = csv.DictWriter(fh, fieldnames=keys)
                writer.writeheader()
                writer.writerows(rows)
            self.metrics_keys = sorted(keys)

    class ResumableCSVLogger(CSVLogger):
        @property
        def experiment(self) -> Any:
            if self._experiment is None:
                self._fs.makedirs(self.root_dir, exist_ok=True)
                self._experiment = ResumableWriter(log_dir=self.log_dir)
            return self._experiment

    return ResumableCSVLogger(out_dir, name="csv", version="")


def _step(row: dict[str, str]) -> int | None:
    try:
        return int(float(row.get("step") or ""))
    except ValueError:
        return None


def make_trainer(cfg: TrainerConfig, out_dir: str | Path, monitor: str | None = None,
                 mode: str = "max", extra_callbacks: list[Any] | None = None,
                 resume_from: str | None = None) -> Any:
    """A Lightning Trainer writing checkpoints to ``out_dir/checkpoints`` and logs to ``out_dir``.

    ``monitor`` additionally keeps the best checkpoint by that logged metric. Checkpoints are
    written atomically; with ``resume_from`` (the checkpoint the run resumes from) the CSV log
    keeps the rows of the epochs before it. Raises :class:`SaroptError` for hardware this
    machine lacks (:func:`check_hardware`) and for settings Lightning rejects.
    """
    import lightning as L
    from lightning.fabric.utilities.exceptions import MisconfigurationException
    from lightning.pytorch.callbacks import LearningRateMonitor, ModelCheckpoint, TQDMProgressBar
    from lightning.pytorch.loggers import TensorBoardLogger

    out_dir = Path(out_dir)
    callbacks: list[Any] = [*_checkpoint_callbacks(ModelCheckpoint, cfg, out_dir / "checkpoints",
                                                   monitor, mode),
                            LearningRateMonitor(logging_interval="epoch"),
                            _epoch_seed_callback(cfg.seed)]
    if cfg.progress_bar:
        callbacks.append(TQDMProgressBar(refresh_rate=1))
    callbacks.extend(extra_callbacks or [])
    loggers = [TensorBoardLogger(out_dir, name="tb", version=""),
               _resumable_csv_logger(out_dir, checkpoint_step(resume_from)
                                     if resume_from else None)]
    check_hardware(cfg)
    try:
        return _trainer(L, cfg, out_dir, callbacks, loggers)
    except (ValueError, RuntimeError, TypeError, MisconfigurationException) as err:
        raise SaroptError(f"trainer settings rejected by Lightning: {' '.join(str(err).split())} "
                          "(check trainer.accelerator, devices, strategy, precision)") from None


def fit(trainer: Any, module: Any, datamodule: Any, ckpt_path: str | None = None) -> None:
    """``trainer.fit(module, datamodule=datamodule, ckpt_path=ckpt_path)``; Ctrl-C stays Ctrl-C.

    Lightning answers a ``KeyboardInterrupt`` with its graceful shutdown and ``sys.exit(1)``;
    that exit is raised here as ``KeyboardInterrupt`` again, so the command line ends an
    interrupted training as every other command (``saropt: interrupted``, exit status 130).
    Rerunning the command resumes from ``last.ckpt``.
    """
    try:
        trainer.fit(module, datamodule=datamodule, ckpt_path=ckpt_path)
    except SystemExit:
        if trainer.interrupted:
            raise KeyboardInterrupt from None
        raise


def _checkpoint_callbacks(ModelCheckpoint: Any, cfg: TrainerConfig, ckpt_dir: Path,
                          monitor: str | None, mode: str) -> list[Any]:
    """``epochNNN.ckpt`` (every epoch, or the best by ``monitor``) and ``last.ckpt`` each epoch.

    Both always overwrite (never ``last-v1.ckpt``), so a resume after a kill, or in a copied run
    folder, picks up the newest state. Lightning (2.6) writes ``save_last`` only in an epoch
    whose top-k checkpoint was saved: with a monitored best-of-1, ``last.ckpt`` would stay at the
    best epoch once the metric stops improving and a resumed run would repeat epochs. So a
    monitored run gets a second, unmonitored checkpoint named ``last`` written every epoch.

    Lightning saves at the end of validation, so with ``check_val_every_n_epoch`` > 1 only the
    validated epochs would be kept: the unmonitored checkpoints then save at each training
    epoch's end (after that epoch's validation, if any).
    """
    every = cfg.checkpoint_every_n_epochs
    # None: Lightning's choice (the end of validation, or of the epoch when nothing validates)
    each_epoch = True if cfg.check_val_every_n_epoch > 1 else None
    if monitor is None:
        keep = cfg.keep_epoch_checkpoints
        # the newest N by Lightning's own rule: the top N by the global step
        return [ModelCheckpoint(dirpath=ckpt_dir, filename="epoch{epoch:03d}",
                                auto_insert_metric_name=False, save_last=True,
                                save_top_k=-1 if keep is None else keep,
                                monitor=None if keep is None else "step", mode="max",
                                every_n_epochs=every, enable_version_counter=False,
                                save_on_train_epoch_end=each_epoch)]
    main = ModelCheckpoint(dirpath=ckpt_dir, filename="epoch{epoch:03d}",
                           auto_insert_metric_name=False, save_top_k=1, monitor=monitor,
                           mode=mode, every_n_epochs=every, enable_version_counter=False)
    last = ModelCheckpoint(dirpath=ckpt_dir, filename=ModelCheckpoint.CHECKPOINT_NAME_LAST,
                           save_top_k=1, every_n_epochs=every, enable_version_counter=False,
                           save_on_train_epoch_end=each_epoch)
    return [main, last]


def _trainer(L: Any, cfg: TrainerConfig, out_dir: Path, callbacks: list[Any],
             loggers: list[Any]) -> Any:
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
        plugins=[_atomic_checkpoint_io()],
    )


def checkpoint_ok(path: str | Path) -> bool:
    """Whether ``path`` is a complete ``torch.save`` zip archive (a truncated one is not)."""
    try:
        with zipfile.ZipFile(path) as zf:
            return bool(zf.namelist())
    except (zipfile.BadZipFile, OSError, EOFError):
        return False


def checkpoint_step(path: str | Path) -> int | None:
    """The ``global_step`` stored in a Lightning checkpoint (None when unreadable)."""
    import torch

    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=False, mmap=True)
        return int(ckpt.get("global_step"))
    except Exception:  # noqa: BLE001 - any unreadable checkpoint: no step
        return None


def resume_checkpoint(cfg: TrainerConfig, out_dir: str | Path) -> str | None:
    """Path of ``out_dir/checkpoints/last.ckpt`` when resuming is on and it exists.

    A truncated ``last.ckpt`` (written by an older saropt, or a damaged disk) is moved aside to
    ``last.ckpt.corrupt`` and the newest complete ``epoch*.ckpt`` is used instead (or the run
    starts over when there is none); both are said on stdout.
    """
    ckpt_dir = Path(out_dir) / "checkpoints"
    last = ckpt_dir / "last.ckpt"
    if not cfg.resume or not last.is_file():
        return None
    if checkpoint_ok(last):
        return str(last)
    if is_rank_zero():
        os.replace(last, last.with_name("last.ckpt.corrupt"))
    epochs = sorted(ckpt_dir.glob("epoch*.ckpt"), key=lambda p: p.stat().st_mtime, reverse=True)
    good = next((p for p in epochs if checkpoint_ok(p)), None)
    print(f"{last} is truncated (moved to last.ckpt.corrupt); " +
          (f"resuming from {good}" if good else "no complete checkpoint left: starting over"))
    return str(good) if good else None


def run_folder_config(out_dir: str | Path) -> dict[str, Any] | None:
    """The config dict a run folder was trained with, or None when it cannot be found.

    From ``config.yaml``, else the ``config`` hyper-parameter of ``checkpoints/last.ckpt`` (a
    copied checkpoint).
    """
    import yaml

    out_dir = Path(out_dir)
    try:
        data = yaml.safe_load((out_dir / "config.yaml").read_text())
        if isinstance(data, dict):
            return data
    except (OSError, ValueError, yaml.YAMLError):
        pass
    last = out_dir / "checkpoints" / "last.ckpt"
    if not checkpoint_ok(last):
        return None
    import torch

    try:
        ckpt = torch.load(last, map_location="cpu", weights_only=False, mmap=True)
        cfg = ckpt.get("hyper_parameters", {}).get("config")
    except Exception:  # noqa: BLE001 - unreadable: unknown config
        return None
    return cfg if isinstance(cfg, dict) else None


#: config keys that may change when a training run is resumed (hardware, bookkeeping, epochs)
RESUME_SAFE = ["out_dir", "trainer.max_epochs", "trainer.progress_bar", "trainer.devices",
               "trainer.keep_epoch_checkpoints",
               "trainer.num_nodes", "trainer.strategy", "trainer.accelerator", "trainer.resume",
               "trainer.log_every_n_steps", "data.num_workers", "data.eval_batch_size"]


@contextmanager
def run_folder(cfg: Any, command: str, outputs: list[str], overwrite: bool = False
               ) -> Iterator[Any]:
    """The run folder ``cfg.out_dir`` of a training command, prepared and locked.

    Under :func:`saropt.utils.outdir.prepare_out_dir`: hardware checked first, another run's folder
    refused unless ``overwrite``, the same config (up to :data:`RESUME_SAFE`) resumed,
    ``trainer.resume=false`` starting over. Call ``finish()`` on the yielded folder at the end.
    Raises :class:`SaroptError` (:class:`~saropt.utils.outdir.OutDirError`) as those checks.
    """
    from saropt.utils.outdir import OutDir, prepare_out_dir

    check_hardware(cfg.trainer)
    if not is_rank_zero():  # DDP helper ranks re-run the command: rank 0 owns the folder
        yield OutDir(Path(cfg.out_dir), command, None, [], "same", {}, active=False)
        return
    with prepare_out_dir(Path(cfg.out_dir), command, cfg.model_dump(mode="json"), outputs,
                         overwrite=overwrite, resume_ignore=RESUME_SAFE,
                         legacy_config=run_folder_config) as od:
        if not cfg.trainer.resume:
            od.clear()  # start this run over
        yield od


def is_rank_zero() -> bool:
    """Whether this process is global rank 0 (or not distributed).

    Read from the environment that Lightning's DDP launcher, torchrun and SLURM set before the
    command runs again per rank.
    """
    return all(os.environ.get(var, "0") in ("", "0")
               for var in ("RANK", "LOCAL_RANK", "NODE_RANK", "GROUP_RANK", "SLURM_PROCID"))
