"""QXS-SAROPT data layer: reader, checks, splits, pair sampling and a decode-once cache.

>>> from saropt.data import QXSSAROPT, TrainPairs, EvalPairs, read_split, read_pairs
>>> split = read_split("splits/qxs")
>>> train = TrainPairs(QXSSAROPT("QXS-SAROPT", ids=split["train"], cache="qxs.cache"))
"""

from saropt.data.cache import PairCache, build_cache
from saropt.data.checks import CheckResult, check_dataset
from saropt.data.images import read_opt, read_sar
from saropt.data.layout import Problems, scan_layout, sort_ids
from saropt.data.pairs import EvalPairs, TrainPairs, draw_eval_pairs, draw_negatives
from saropt.data.plot import plot_batch, plot_pair
from saropt.data.qxs import QXSSAROPT
from saropt.data.splits import make_split, read_manifest, read_pairs, read_split, resolve_sizes
from saropt.data.transforms import (
    Compose,
    RandomHorizontalFlip,
    RandomRot90,
    RandomVerticalFlip,
    Resize,
    augmentations,
)

__all__ = [
    "QXSSAROPT", "TrainPairs", "EvalPairs", "make_split", "read_split", "read_pairs",
    "read_manifest", "resolve_sizes", "build_cache", "PairCache", "check_dataset", "CheckResult",
    "scan_layout", "sort_ids", "Problems", "read_sar", "read_opt", "draw_eval_pairs",
    "draw_negatives", "plot_pair", "plot_batch", "Compose", "RandomHorizontalFlip",
    "RandomVerticalFlip", "RandomRot90", "Resize", "augmentations",
]
