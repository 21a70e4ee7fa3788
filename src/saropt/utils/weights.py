"""Load weights by name into a module, say exactly what matched, and refuse silent gaps.

Used wherever weights move between models: a BNN SAR encoder into a detector backbone (OSM), an
optical detector into a SAR detector (OSD), an ImageNet checkpoint into a one-channel backbone,
an exported encoder back into a BNN encoder. :func:`transfer_weights` is the one loader: every
required tensor must come from the source and every source tensor must be used, or it raises
:class:`~saropt.errors.SaroptError` listing what is missing and unused. Each model maps a
checkpoint's names onto its own next to its definition (a ``checkpoint_filter_fn``, timm's
pattern), using :func:`rename_to_children` for backbones wrapped as feature extractors.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn


@dataclass
class LoadReport:
    """What happened to each weight in a transfer (tensor names in the target's naming).

    Loaded as is, loaded with its input channels adapted, missing from the source (left at its
    initial value), unused in the source, or shape clash (name, source shape, target shape);
    ``dropped``: source tensors a model's filter left out on purpose (a classifier, the BNN code
    head, a detector's input statistics); ``partial``: a partial load was asked for.
    """

    matched: list[str] = field(default_factory=list)
    adapted: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    mismatched: list[tuple[str, tuple[int, ...], tuple[int, ...]]] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)
    partial: bool = False

    def summary(self) -> str:
        """One line of counts: matched, adapted, missing, unused, mismatched, dropped."""
        return (f"{len(self.matched)} matched, {len(self.adapted)} adapted (input channels), "
                f"{len(self.missing)} missing in source, {len(self.unexpected)} unused, "
                f"{len(self.mismatched)} shape mismatches, {len(self.dropped)} dropped on purpose"
                + (" (partial load)" if self.partial else ""))

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready lists of names (shapes as lists), for run records."""
        return {"matched": self.matched, "adapted": self.adapted, "missing": self.missing,
                "unexpected": self.unexpected,
                "mismatched": [[k, list(a), list(b)] for k, a, b in self.mismatched],
                "dropped": self.dropped, "partial": self.partial}


def adapt_input_channels(weight: torch.Tensor, in_chans: int) -> torch.Tensor:
    """A first-conv weight ``(O, I, kh, kw)`` adapted to ``(O, in_chans, kh, kw)``, same dtype.

    RGB -> 1 sums the channels (a grey image through the RGB filters), 1 -> N repeats the filter
    divided by N (a grey image copied to N channels gives the same response), otherwise timm's
    ``adapt_input_conv`` rule.
    """
    from timm.models import adapt_input_conv

    if weight.shape[1] == 1 and in_chans > 1:  # grey -> N: a grey image copied to N channels
        return (weight.float().repeat(1, in_chans, 1, 1) / in_chans).to(weight.dtype)
    return adapt_input_conv(in_chans, weight.float()).to(weight.dtype)


#: BatchNorm step counters: not weights, so never required and never reported as unused
#: (torchvision's ``FrozenBatchNorm2d`` has none, ``BatchNorm2d`` has one).
COUNTER_SUFFIX = "num_batches_tracked"


def _plan(module: nn.Module, state_dict: dict[str, torch.Tensor], src_prefix: str,
          dst_prefix: str, adapt_in_chans: bool) -> tuple[LoadReport, dict[str, torch.Tensor]]:
    """What :func:`load_state_dict_report` would load, without loading it."""
    report = LoadReport()
    target = module.state_dict()
    to_load: dict[str, torch.Tensor] = {}
    for key, value in state_dict.items():
        if not key.startswith(src_prefix):
            report.unexpected.append(key)
            continue
        name = dst_prefix + key[len(src_prefix):]
        if name not in target:
            if not key.endswith(COUNTER_SUFFIX):
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
    report.missing = [k for k in target if k not in loaded and k.startswith(dst_prefix)
                      and not k.endswith(COUNTER_SUFFIX)]
    return report, to_load


def load_state_dict_report(module: nn.Module, state_dict: dict[str, torch.Tensor],
                           src_prefix: str = "", dst_prefix: str = "",
                           adapt_in_chans: bool = True) -> LoadReport:
    """Copy every source tensor whose name and shape match a tensor of ``module``; report the rest.

    Names match after ``src_prefix`` is swapped for ``dst_prefix``; 4-D weights differing only
    in input channels are adapted. Loads whatever fits and never raises on gaps:
    :func:`transfer_weights` is the checked form.
    """
    report, to_load = _plan(module, state_dict, src_prefix, dst_prefix, adapt_in_chans)
    module.load_state_dict(to_load, strict=False)
    return report


def _listing(keys: list[str], n: int = 6) -> str:
    return ", ".join(keys[:n]) + (f", ... ({len(keys) - n} more)" if len(keys) > n else "")


def transfer_weights(module: nn.Module, state_dict: dict[str, torch.Tensor], *,
                     required: Iterable[str] = ("",), optional: Iterable[str] = (),
                     partial: bool = False,
                     dropped: Iterable[str] = (), adapt_in_chans: bool = True,
                     source: str = "weights", hint: str = "") -> LoadReport:
    """Load ``state_dict`` (already under ``module``'s names) so that nothing fails silently.

    Every tensor of ``module`` whose name starts with one of the ``required`` prefixes must come
    from the source (``""``: all of them), and every source tensor must be used (no unknown name,
    no shape clash; a 4-D weight differing only in input channels is adapted, see
    :func:`adapt_input_channels`). ``partial=True`` allows unused source tensors and missing
    tensors outside ``required`` (a detector's heads across class counts): the report lists
    them. Tensors under an ``optional`` prefix may keep their initial values (a classifier).
    ``dropped`` names source tensors the caller's filter left out on purpose (recorded).
    BatchNorm step counters are ignored both ways.

    Raises :class:`SaroptError` naming ``source``, the missing and the unused tensors, before
    anything is loaded; returns the :class:`LoadReport` otherwise.
    """
    from saropt.errors import SaroptError

    required, optional = tuple(required), tuple(optional)
    report, to_load = _plan(module, state_dict, "", "", adapt_in_chans)
    report.dropped, report.partial = list(dropped), partial
    missing = [k for k in report.missing
               if k.startswith(required) and not (optional and k.startswith(optional))]
    unused = report.unexpected + [f"{k} {tuple(a)}->{tuple(b)}" for k, a, b in report.mismatched]
    if missing or (unused and not partial):
        where = "" if required == ("",) else f" under {'/'.join(required)}"
        parts = []
        if missing:
            parts.append(f"{len(missing)} tensors{where} missing in the source "
                         f"({_listing(missing)})")
        if unused:
            parts.append(f"{len(unused)} source tensors unused ({_listing(unused)})")
        raise SaroptError(f"{source}: {' and '.join(parts)}; nothing was loaded"
                          + (f"; {hint}" if hint else ""))
    module.load_state_dict(to_load, strict=False)
    return report


def rename_to_children(state_dict: dict[str, torch.Tensor], module: nn.Module,
                       drop: Iterable[str] = ()) -> tuple[dict[str, torch.Tensor], list[str]]:
    """Classification-model names -> the names of a feature extractor built from it.

    timm's ``features_only`` (``FeatureListNet``) and torchvision's ``IntermediateLayerGetter``
    keep the model's top-level children, except that timm flattens a ``Sequential`` child one
    level, joining names with ``_`` (``stem.conv1.`` -> ``stem_conv1.``, ``stages.0.`` ->
    ``stages_0.``). Each key is renamed to the child of ``module`` it belongs to; keys starting
    with a ``drop`` prefix (the classifier) are returned separately as dropped.
    """
    children = {name for name, _ in module.named_children()}
    drop = tuple(drop)
    out: dict[str, torch.Tensor] = {}
    dropped: list[str] = []
    for key, value in state_dict.items():
        if drop and key.startswith(drop):
            dropped.append(key)
            continue
        parts = key.split(".")
        if len(parts) > 2 and f"{parts[0]}_{parts[1]}" in children:
            key = f"{parts[0]}_{parts[1]}." + ".".join(parts[2:])
        out[key] = value
    return out, dropped


def with_prefix(state_dict: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    """A copy of ``state_dict`` with ``prefix`` put before every name (the tensors shared)."""
    return {prefix + k: v for k, v in state_dict.items()}


def read_weights(path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """``(state_dict, metadata)`` from a ``.safetensors`` file or a torch checkpoint, on CPU.

    A ``.safetensors`` file's metadata is its ``.json`` sidecar if present; a torch checkpoint
    (``.pt``/``.pth``/``.ckpt``, loaded with ``weights_only=True``) has a ``state_dict`` entry
    unwrapped and its plain str/int/float entries as metadata. Raises :class:`SaroptError`
    naming the file when it is missing, unreadable, or holds no state dict (and
    :class:`~saropt.errors.DataError` for a damaged sidecar).
    """
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
    """A whole (trusted) Lightning/torch checkpoint, unpickled onto ``map_location``.

    ``weights_only=False``: it holds the run's config. Raises :class:`SaroptError` naming the
    file when it is missing or unreadable.
    """
    from saropt.errors import SaroptError

    path = Path(path)
    if not path.is_file():
        raise SaroptError(f"checkpoint {path} does not exist")
    try:
        return torch.load(path, map_location=map_location, weights_only=False)
    except Exception as err:  # noqa: BLE001 - any unpickling failure is a bad file for the user
        raise SaroptError(f"{path}: not a readable checkpoint ({err})") from None
