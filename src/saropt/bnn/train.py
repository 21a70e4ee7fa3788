"""``train(cfg)``: fit a BNN through the shared engine (checkpoints, resume, logs, DDP, AMP)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from saropt.bnn.config import BNNConfig
from saropt.utils.io import write_text_atomic


def init_from_files(module: Any, cfg: BNNConfig) -> list[str]:
    """Load the optional local backbone weights ``model.sar_init`` / ``model.opt_init``.

    Each is a timm classification checkpoint of the encoder's architecture (e.g. ImageNet
    weights); its classifier is dropped and every backbone tensor must load (an RGB first
    convolution is summed over its input channels for the 1-channel SAR encoder).

    Args:
        module: the :class:`saropt.bnn.module.BNNModule` whose encoders receive the weights.
        cfg: the run's config (``model.sar_init``, ``model.opt_init``: paths or None).

    Returns:
        One line per loaded encoder: the file and what matched.

    Raises:
        SaroptError: a file is unreadable, or backbone tensors are missing or unused (named).
    """
    from timm.models import get_pretrained_cfg_value

    from saropt.utils.weights import read_weights, rename_to_children, transfer_weights

    lines = []
    for name, path in (("sar", cfg.model.sar_init), ("opt", cfg.model.opt_init)):
        if path:
            state, _ = read_weights(path)
            enc = getattr(module.model, name)
            classifier = get_pretrained_cfg_value(enc.arch, "classifier") or "fc"
            state, dropped = rename_to_children(state, enc.backbone, drop=(f"{classifier}.",))
            rep = transfer_weights(enc.backbone, state, dropped=dropped,
                                   source=f"model.{name}_init={path} -> {enc.arch}",
                                   hint=f"give a {enc.arch} classification checkpoint")
            lines.append(f"{name} encoder from {path}: {rep.summary()}")
    return lines


#: what ``saropt bnn train`` writes into its run folder
RUN_OUTPUTS = ["checkpoints", "csv", "tb", "config.yaml"]
def train(cfg: BNNConfig, datamodule: Any = None, callbacks: list[Any] | None = None,
          overwrite: bool = False) -> Path:
    """Train (or resume) ``cfg``; returns the run folder holding checkpoints/, csv/, tb/.

    The run folder follows :func:`saropt.utils.outdir.prepare_out_dir`: a folder of another
    run (different config, e.g. another ``model.arch`` or ``optim.lr``) is refused unless
    ``overwrite``; the same config resumes from ``checkpoints/last.ckpt``.

    Args:
        cfg: the validated run config (paper 002/003 recipes in ``saropt configs``).
        datamodule: the training data; default :class:`saropt.bnn.data.BNNDataModule` of
            ``cfg`` (whose ``data.root`` and ``data.split`` are checked first).
        callbacks: Lightning callbacks added to the engine's.
        overwrite: replace another run's folder at ``out_dir``.

    Raises:
        SaroptError: the hardware, data or run folder does not fit the config (before any
            training), or a backbone init file does not load.
    """
    import lightning as L

    from saropt.bnn.data import BNNDataModule, check_data_config
    from saropt.bnn.module import BNNModule
    from saropt.engine import check_hardware, fit, make_trainer, resume_checkpoint, run_folder

    check_hardware(cfg.trainer)  # before the data checks: the cheaper answer first
    if datamodule is None:
        check_data_config(cfg)
    out = Path(cfg.out_dir)
    with run_folder(cfg, "bnn train", RUN_OUTPUTS, overwrite) as od:
        write_text_atomic(out / "config.yaml", cfg.to_yaml())
        L.seed_everything(cfg.trainer.seed, workers=True, verbose=False)
        module = BNNModule(cfg.model_dump(mode="json"))
        for line in init_from_files(module, cfg):
            print(line)
        dm = datamodule if datamodule is not None else BNNDataModule(cfg)
        ckpt = resume_checkpoint(cfg.trainer, out)
        trainer = make_trainer(cfg.trainer, out, extra_callbacks=callbacks, resume_from=ckpt)
        if ckpt:
            print(f"resuming from {ckpt}")
        fit(trainer, module, dm, ckpt)
        od.finish()
    return out
