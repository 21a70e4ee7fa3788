"""SAR-optical pair data layer (QXS-SAROPT, SEN1-2, OSdataset, sar/ + opt/).

Reader, checks, splits, BNN pair sampling and a decode-once cache.

>>> from saropt.data import QXSSAROPT, TrainPairs, EvalPairs, read_split, read_pairs
>>> split = read_split("splits/qxs")
>>> train = TrainPairs(QXSSAROPT("QXS-SAROPT", ids=split["train"], cache="qxs.cache"))

Names are imported lazily (PEP 562), so ``saropt.data.checks`` and the CLI do not pull in torch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # for type checkers and IDEs; at run time names load on first use
    from saropt.data.cache import PairCache, build_cache  # noqa: F401
    from saropt.data.checks import CheckResult, check_dataset  # noqa: F401
    from saropt.data.pairs import EvalPairs, TrainPairs, draw_eval_pairs  # noqa: F401
    from saropt.data.qxs import QXSSAROPT  # noqa: F401
    from saropt.data.splits import make_split, read_pairs, read_split  # noqa: F401

_EXPORTS: dict[str, str] = {
    "QXSSAROPT": "qxs", "sar_tensor": "qxs", "opt_tensor": "qxs", "to_float": "qxs",
    "TrainPairs": "pairs", "EvalPairs": "pairs", "draw_eval_pairs": "pairs",
    "draw_negatives": "pairs",
    "make_split": "splits", "read_split": "splits", "read_pairs": "splits",
    "read_split_info": "splits", "read_manifest": "splits", "resolve_sizes": "splits",
    "write_pairs": "splits",
    "build_cache": "cache", "PairCache": "cache",
    "check_dataset": "checks", "CheckResult": "checks",
    "scan_layout": "layout", "sort_ids": "layout", "Problems": "layout",
    "detect_layout": "layout", "entry_to_id": "layout", "LAYOUTS": "layout",
    "read_sar": "images", "read_opt": "images",
    "plot_pair": "plot", "plot_batch": "plot",
    "Compose": "transforms", "RandomHorizontalFlip": "transforms",
    "RandomVerticalFlip": "transforms", "RandomRot90": "transforms", "Resize": "transforms",
    "augmentations": "transforms",
}

__all__ = list(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"saropt.data.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module 'saropt.data' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
