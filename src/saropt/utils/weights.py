"""Load weights by name into a module and say exactly what matched.

Used wherever weights move between models: a BNN SAR encoder into a detector backbone (OSM), an
optical detector into a SAR detector (OSD), an ImageNet checkpoint into a one-channel backbone.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn


@dataclass
class LoadReport:
    """What happened to each weight: loaded as is, loaded with its input channels adapted,
    missing from the source (left at its initial value), unused in the source, or shape clash."""

    matched: list[str] = field(default_factory=list)
    adapted: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    mismatched: list[tuple[str, tuple[int, ...], tuple[int, ...]]] = field(default_factory=list)

    def summary(self) -> str:
        return (f"{len(self.matched)} matched, {len(self.adapted)} adapted (input channels), "
                f"{len(self.missing)} missing in source, {len(self.unexpected)} unused, "
                f"{len(self.mismatched)} shape mismatches")

    def to_dict(self) -> dict[str, Any]:
        return {"matched": self.matched, "adapted": self.adapted, "missing": self.missing,
                "unexpected": self.unexpected,
                "mismatched": [[k, list(a), list(b)] for k, a, b in self.mismatched]}


def adapt_input_channels(weight: torch.Tensor, in_chans: int) -> torch.Tensor:
    """A first-conv weight (O, I, kh, kw) for ``in_chans`` inputs: RGB -> 1 sums the channels
    (a grey image through the RGB filters), 1 -> N repeats the filter divided by N (a grey image
    copied to N channels gives the same response), otherwise timm's ``adapt_input_conv`` rule."""
    from timm.models import adapt_input_conv

    if weight.shape[1] == 1 and in_chans > 1:  # grey -> N: a grey image copied to N channels
        return (weight.float().repeat(1, in_chans, 1, 1) / in_chans).to(weight.dtype)
    return adapt_input_conv(in_chans, weight.float()).to(weight.dtype)


def load_state_dict_report(module: nn.Module, state_dict: dict[str, torch.Tensor],
                           src_prefix: str = "", dst_prefix: str = "",
                           adapt_in_chans: bool = True) -> LoadReport:
    """Copy every source tensor whose name (``src_prefix`` swapped for ``dst_prefix``) and shape
    match a tensor of ``module``; 4-D weights differing only in input channels are adapted."""
    report = LoadReport()
    target = module.state_dict()
    to_load: dict[str, torch.Tensor] = {}
    for key, value in state_dict.items():
        if not key.startswith(src_prefix):
            report.unexpected.append(key)
            continue
        name = dst_prefix + key[len(src_prefix):]
        if name not in target:
            report.unexpected.append(key)
            continue
        want = target[name]
        if want.shape == value.shape:
            to_load[name] = value
            report.matched.append(name)
        elif (adapt_in_chans and value.ndim == 4 and want.ndim == 4
              and want.shape[0] == value.shape[0] and want.shape[2:] == value.shape[2:]):
            to_load[name] = adapt_input_channels(value, want.shape[1])
            report.adapted.append(name)
        else:
            report.mismatched.append((name, tuple(value.shape), tuple(want.shape)))
    loaded = set(to_load)
    report.missing = [k for k in target if k not in loaded and k.startswith(dst_prefix)]
    module.load_state_dict(to_load, strict=False)
    return report


def read_weights(path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Weights and metadata from a ``.safetensors`` file (with its ``.json`` sidecar if present)
    or a torch checkpoint (``.pt``/``.pth``/``.ckpt``; a ``state_dict`` entry is unwrapped)."""
    from saropt.errors import SaroptError

    path = Path(path)
    if not path.is_file():
        raise SaroptError(f"weights file {path} does not exist")
    meta: dict[str, Any] = {}
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        try:
            state = load_file(str(path))
        except Exception as err:  # noqa: BLE001 - SafetensorError, truncated or garbage bytes
            raise SaroptError(f"{path}: not a readable .safetensors file ({err}); re-export it "
                              "(saropt bnn export)") from None
        sidecar = path.with_suffix(".json")
        if sidecar.is_file():
            from saropt.utils.io import read_json

            meta = read_json(sidecar, "weights sidecar")
            if not isinstance(meta, dict):
                raise SaroptError(f"{sidecar}: expected a JSON object of metadata")
        return state, meta
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - any unpickling failure is a bad file for the user
        raise SaroptError(f"{path}: not a readable torch checkpoint ({err})") from None
    if isinstance(obj, dict) and "state_dict" in obj:
        meta = {k: v for k, v in obj.items() if k != "state_dict" and isinstance(v, (str, int,
                                                                                     float))}
        obj = obj["state_dict"]
    if not isinstance(obj, dict):
        raise SaroptError(f"{path}: expected a state dict, got {type(obj).__name__}")
    return obj, meta


def read_checkpoint(path: str | Path, map_location: str = "cpu") -> Any:
    """A whole (trusted) Lightning/torch checkpoint, unpickled (``weights_only=False``: it holds
    the run's config); a missing or unreadable file is a :class:`SaroptError` naming it."""
    from saropt.errors import SaroptError

    path = Path(path)
    if not path.is_file():
        raise SaroptError(f"checkpoint {path} does not exist")
    try:
        return torch.load(path, map_location=map_location, weights_only=False)
    except Exception as err:  # noqa: BLE001 - any unpickling failure is a bad file for the user
        raise SaroptError(f"{path}: not a readable checkpoint ({err})") from None
