"""Export BNN encoders as safetensors + JSON sidecar, load them back, put them into detectors.

This is the path from a trained BNN to a detector backbone (OSM pretraining, paper 003 section
2.2 and paper 002 section III-B): ``saropt bnn export`` writes ``sar_encoder.safetensors``; a
detection config's ``model.init=bnn:PATH`` loads its backbone part (:func:`load_encoder_into`).

The ``.safetensors`` file holds the timm backbone's ``state_dict()`` under timm's key names
(for ResNets these equal torchvision's: ``conv1.weight``, ``layer1.0.conv1.weight``, ...) plus
the BNN head under ``head.``; the ``.json`` sidecar describes how to rebuild and feed it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from torch import nn

from saropt.bnn.model import Encoder, create_encoder
from saropt.errors import SaroptError
from saropt.utils.io import atomic_path, write_json_atomic
from saropt.utils.weights import LoadReport, read_weights, transfer_weights, with_prefix

ENCODER_NAMES = {"sar": "sar_encoder", "opt": "opt_encoder"}


def load_module(checkpoint: str | Path, map_location: str = "cpu") -> Any:
    """The ``BNNModule`` of a ``saropt bnn train`` checkpoint, in eval mode on ``map_location``.

    Weights in contiguous memory (not channels_last); ``trained_epochs`` holds the number of
    completed epochs. Raises :class:`SaroptError` for a missing or unreadable file, a checkpoint
    without a BNN config (a detection checkpoint among them), or weights that do not fit it.
    """
    from saropt.bnn.module import BNNModule

    return BNNModule.from_checkpoint(checkpoint, map_location)


def encoder_state(enc: Encoder) -> dict[str, torch.Tensor]:
    """The tensors of an exported encoder: backbone under timm names plus ``head.*``, on CPU."""
    state = {k: v for k, v in enc.backbone.state_dict().items()}
    state.update({f"head.{k}": v for k, v in enc.head.state_dict().items()})
    return {k: v.detach().cpu().contiguous() for k, v in state.items()}


def encoder_meta(enc: Encoder, head_cfg: dict[str, Any], training_data: dict[str, Any],
                 metrics: dict[str, Any]) -> dict[str, Any]:
    """The JSON sidecar of an exported encoder: what :func:`load_encoder` needs to rebuild it.

    Architecture, input channels, normalisation (``mean``/``std`` for inputs in [0, 1]), code
    size n, input side (px), head settings, and the training data and metrics as a record.
    """
    return {"architecture": enc.arch, "in_chans": enc.in_chans,
            "mean": enc.mean.flatten().tolist(), "std": enc.std.flatten().tolist(),
            "input_range": "[0, 1] before normalisation", "code_dim": enc.code_dim,
            "image_size": enc.image_size, "head": head_cfg, "framework": "timm",
            "training_data": training_data, "metrics": metrics}


def save_encoder(enc: Encoder, path: str | Path, meta: dict[str, Any]) -> Path:
    """Write ``path`` (.safetensors, :func:`encoder_state`) and its ``.json`` sidecar atomically."""
    from safetensors.torch import save_file

    path = Path(path)
    with atomic_path(path) as tmp:
        save_file(encoder_state(enc), str(tmp), metadata={"format": "pt"})
    write_json_atomic(path.with_suffix(".json"), meta)
    return path


def _run_metrics(checkpoint: Path, module: Any) -> dict[str, Any]:
    """Test metrics from ``<run>/eval/metrics.json`` if evaluated, else the last val metrics."""
    metrics_file = checkpoint.parent.parent / "eval" / "metrics.json"
    if metrics_file.is_file():
        return {"source": str(metrics_file), **json.loads(metrics_file.read_text())["test"]}
    return {"source": "last validation epoch", **module.last_val_metrics}


def export_encoders(checkpoint: str | Path, out_dir: str | Path,
                    overwrite: bool = False) -> dict[str, Path]:
    """Write ``sar_encoder`` and ``opt_encoder`` ``.safetensors`` + ``.json`` for a BNN checkpoint.

    The sidecars record the training data and the test metrics of ``<run>/eval/metrics.json``
    (else the last validation metrics). Returns ``{"sar": path, "opt": path}``. Raises
    :class:`SaroptError` as :func:`load_module`, or for an ``out_dir`` holding another command's
    output (unless ``overwrite``).
    """
    checkpoint = Path(checkpoint)
    module = load_module(checkpoint)
    cfg = module.cfg
    m = cfg.model
    head_cfg = {"conv_width": m.conv_width, "conv_act": m.conv_act, "pool": m.pool,
                "pool_size": m.pool_size, "pool_grid": m.pool_grid}
    training = {"root": cfg.data.root, "split": cfg.data.split, "sar_dir": cfg.data.sar_dir,
                "opt_dir": cfg.data.opt_dir, "train_size": cfg.data.train_size,
                "image_size": cfg.input_size, "epochs": module.trained_epochs,
                "config": cfg.name, "checkpoint": str(checkpoint)}
    metrics = _run_metrics(checkpoint, module)
    out = {}
    from saropt.utils.outdir import prepare_out_dir

    files = [f"{n}{ext}" for n in ENCODER_NAMES.values() for ext in (".safetensors", ".json")]
    with prepare_out_dir(out_dir, "bnn export", {"checkpoint": str(checkpoint)}, files,
                         overwrite, replace_same=True, quiet=True) as od:
        for key, name in ENCODER_NAMES.items():
            enc = getattr(module.model, key)
            meta = encoder_meta(enc, head_cfg, training, metrics)
            out[key] = save_encoder(enc, Path(out_dir) / f"{name}.safetensors", meta)
        od.finish()
    return out


def encoder_backbone_state(state: dict[str, torch.Tensor]
                           ) -> tuple[dict[str, torch.Tensor], list[str]]:
    """``(backbone, head_keys)``: an exported encoder's backbone tensors and its head's keys.

    Backbone tensors keep their timm names; the BNN code head (``head.*``) is dropped: a
    detector or classifier has no use for it.
    """
    head = [k for k in state if k.startswith("head.")]
    return {k: v for k, v in state.items() if not k.startswith("head.")}, head


def load_encoder(path: str | Path) -> Encoder:
    """Rebuild a full BNN :class:`Encoder` (backbone + head) from an exported file, in eval mode.

    Every tensor of the encoder must come from the file and every tensor of the file must be
    used. Raises :class:`SaroptError` for an unreadable file, a sidecar lacking a key, or
    weights that do not fit the architecture the sidecar names.
    """
    state, meta = read_weights(path)
    need = ("architecture", "in_chans", "mean", "std", "code_dim", "image_size", "head")
    missing = [k for k in need if k not in meta]
    if missing:
        raise SaroptError(f"{path}: sidecar {Path(path).with_suffix('.json')} lacks {missing}")
    enc = create_encoder(meta["architecture"], meta["in_chans"], code_dim=meta["code_dim"],
                         image_size=meta["image_size"], mean=meta["mean"], std=meta["std"],
                         **meta["head"])
    backbone, head = encoder_backbone_state(state)
    named = {**with_prefix(backbone, "backbone."), **{k: state[k] for k in head}}
    transfer_weights(enc, named, required=("backbone.", "head."), adapt_in_chans=False,
                     source=f"{path} -> {meta['architecture']} BNN encoder",
                     hint="the file does not fit the architecture its sidecar names")
    return enc.eval()


def load_encoder_into(module: nn.Module, path: str | Path, prefix: str = "",
                      classifier: str = "fc") -> LoadReport:
    """Put an exported encoder's backbone into ``module``; returns the :class:`LoadReport`.

    ``module``: a timm or torchvision classifier of the same architecture, or a model holding
    one under ``prefix`` (e.g. ``"body."``). Every tensor of the encoder's backbone must be
    used (a 1-channel first conv going into a 3-channel one is adapted) and every tensor of
    ``module`` under ``prefix`` except the ``classifier`` must come from the file, otherwise
    :class:`SaroptError`. Detectors load encoders through
    :func:`saropt.detect.models.create_detector` (``model.init=bnn:PATH``).
    """
    state, _ = read_weights(path)
    backbone, head = encoder_backbone_state(state)
    return transfer_weights(module, with_prefix(backbone, prefix), required=(prefix,),
                            optional=(f"{prefix}{classifier}.",), dropped=head,
                            source=str(path), hint="a different architecture?")
