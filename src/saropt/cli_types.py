"""Reusable argparse types: every number a user types is range-checked where it is parsed.

Each factory returns a callable for ``add_argument(type=...)``; a bad value becomes argparse's
own one-line usage error (``saropt ...: error: argument --n: must be >= 1, got 0``, exit 2)
before any work starts. NaN and infinities are refused by every float type.

Example::

    p.add_argument("--n", type=positive_int, default=200)
    p.add_argument("--iou", type=fraction(low_open=True), default=0.5)   # (0, 1]
    p.add_argument("--patch-size", type=int_range(8, 8192), default=256)
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable

#: the largest image side a flag accepts (pixels): a 16384 x 16384 RGB image is 0.8 GB in uint8
MAX_SIDE = 16384


def _int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be an integer, got {text!r}") from None


def _float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number, got {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be a finite number, got {text!r}")
    return value


def int_range(low: int | None = None, high: int | None = None) -> Callable[[str], int]:
    """An integer in ``[low, high]`` (either bound may be None)."""

    def parse(text: str) -> int:
        value = _int(text)
        if low is not None and value < low or high is not None and value > high:
            raise argparse.ArgumentTypeError(_range_text(low, high, text))
        return value

    parse.__name__ = "integer"  # argparse names the type in 'invalid <name> value' messages
    return parse


def float_range(low: float | None = None, high: float | None = None, low_open: bool = False,
                high_open: bool = False) -> Callable[[str], float]:
    """A finite float in the interval from ``low`` to ``high`` (open ends by flag)."""

    def parse(text: str) -> float:
        value = _float(text)
        bad_low = low is not None and (value <= low if low_open else value < low)
        bad_high = high is not None and (value >= high if high_open else value > high)
        if bad_low or bad_high:
            lo = "" if low is None else f"{'(' if low_open else '['}{low:g}"
            hi = "" if high is None else f"{high:g}{')' if high_open else ']'}"
            raise argparse.ArgumentTypeError(
                f"must be in {lo or '(-inf'}, {hi or 'inf)'}, got {text}")
        return value

    parse.__name__ = "number"
    return parse


def fraction(low_open: bool = False, high_open: bool = False) -> Callable[[str], float]:
    """A probability/fraction in [0, 1] (ends open by flag), NaN refused."""
    return float_range(0.0, 1.0, low_open, high_open)


def _range_text(low: int | None, high: int | None, text: str) -> str:
    if high is None:
        return f"must be >= {low}, got {text}"
    if low is None:
        return f"must be <= {high}, got {text}"
    return f"must be between {low} and {high}, got {text}"


#: an integer >= 1 (counts, batch sizes)
positive_int = int_range(1)
#: an integer >= 0 (worker counts, optional counts)
nonneg_int = int_range(0)
#: a random seed, 0 .. 2**32 - 1 (what NumPy, torch and Lightning all accept)
seed_int = int_range(0, 2**32 - 1)
#: image channels of a model input, 1 .. MAX_CHANS (each is a plane of the first conv)
MAX_CHANS = 64
in_chans = int_range(1, MAX_CHANS)
#: an image side in pixels, 1 .. MAX_SIDE
image_side = int_range(1, MAX_SIDE)
#: a finite float (no NaN, no inf)
finite_float = float_range()
#: a finite float > 0
positive_float = float_range(0.0, low_open=True)
#: a probability in [0, 1]
probability = fraction()
#: an IoU threshold in (0, 1]
iou = fraction(low_open=True)
#: a tile/patch overlap in [0, 1)
overlap = fraction(high_open=True)


def key_value(text: str) -> tuple[str, object]:
    """``KEY=VALUE`` with VALUE parsed as YAML (``tile=512`` -> ``("tile", 512)``)."""
    import yaml

    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"{text!r} is not key=value")
    try:
        return key, yaml.safe_load(value)
    except yaml.YAMLError:
        raise argparse.ArgumentTypeError(f"{text!r}: value is not valid YAML; quote it") from None
