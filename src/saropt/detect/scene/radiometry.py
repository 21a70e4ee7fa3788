"""The 16/32-bit to 8-bit mapping a detector was trained with, applied to whole scenes.

A :class:`Radiometry` describes how the detector's 8-bit training images were made from SAR
values; it is recorded in the checkpoint by ``saropt detect train`` (``hyper_parameters["scene"]
["radiometry"]``) and applied by ``saropt detect scene`` with statistics (percentiles) estimated
once per scene on a decimated read, so every tile of a scene shares one mapping.

- ``kind="linear"`` (AIR-SARShip, :func:`saropt.detect.datasets.airsarship.scale_to_uint8`):
  ``[low, high]`` of the input values stretched onto ``[0, 255]`` and clipped; ``low``/``high``
  are the scene's ``percentiles`` unless given as fixed numbers.
- ``kind="db"`` (the synthetic world, :func:`saropt.synth.sar.amplitude_to_uint8`): values to dB
  first (``20 log10`` of amplitude, ``10 log10`` of intensity, or already dB) with values below
  ``min_value`` raised to it; percentiles over pixels at or above ``noise_floor`` (input units);
  ``low >= high - dynamic_range_db``.

8-bit scenes are passed through unchanged (as the AIR-SARShip reader does); nodata pixels
become 0.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
from pydantic import Field

from saropt.config import Config


class Radiometry(Config):
    """How SAR values became the detector's 8-bit input (see the module doc).

    ``percentiles`` in % (ignored when ``low`` and ``high`` are both given, in the mapping's
    domain: input units for ``linear``, dB for ``db``); ``input`` the unit of the scene values
    for ``db``; ``min_value`` the floor (input units) before the log; ``noise_floor`` (input
    units) the smallest value counted in the percentiles; ``dynamic_range_db`` the largest
    ``high - low`` in dB.
    """

    kind: Literal["linear", "db"] = "linear"
    percentiles: tuple[float, float] = (0.5, 99.5)
    low: float | None = None
    high: float | None = None
    input: Literal["amplitude", "intensity", "db"] = "amplitude"
    min_value: float = Field(1e-6, gt=0)
    noise_floor: float | None = None
    dynamic_range_db: float | None = Field(None, gt=0)


#: the documented default for checkpoints that do not record their radiometry: the
#: AIR-SARShip 0.5 / 99.5 percentile linear stretch (docs/detect.md, docs/scene.md)
DEFAULT_RADIOMETRY = Radiometry()


def training_radiometry(data: Any) -> Radiometry | None:
    """The radiometry of a training config's images, or None when it cannot be known.

    ``data.radiometry`` when given, the AIR-SARShip reader's stretch for AIR-SARShip (its
    ``percentiles`` option, or value / 257 for ``None``), else None (8-bit chips made by the
    dataset's authors in a way the checkpoint cannot know).
    """
    if getattr(data, "radiometry", None) is not None:
        return data.radiometry
    if str(data.dataset).lower().replace("_", "-").startswith("air"):
        pct = data.options.get("percentiles", (0.5, 99.5))
        if pct is None:
            return Radiometry(kind="linear", low=0.0, high=65535.0)
        return Radiometry(kind="linear", percentiles=tuple(pct))
    return None


def _to_domain(values: np.ndarray, rad: Radiometry) -> np.ndarray:
    v = values.astype(np.float32, copy=False)
    if rad.kind == "linear" or rad.input == "db":
        return v
    factor = np.float32(20.0 if rad.input == "amplitude" else 10.0)
    return factor * np.log10(np.maximum(v, np.float32(rad.min_value)))


def fit_stretch(sample: np.ndarray, rad: Radiometry) -> tuple[float, float]:
    """``(low, high)`` in the mapping's domain from valid scene values ``sample``.

    ``sample`` is any shape and dtype (a decimated read of the whole scene, valid pixels only).
    Fixed ``low`` / ``high`` win; ``noise_floor`` applies when at least 16 values pass it;
    ``high`` is at least ``low + 1e-3``.
    """
    if rad.low is not None and rad.high is not None:
        return float(rad.low), float(max(rad.high, rad.low + 1e-3))
    sample = np.asarray(sample).ravel()
    if rad.noise_floor is not None:
        above = sample[sample >= rad.noise_floor]
        sample = above if above.size >= 16 else sample
    dom = _to_domain(sample, rad)
    lo, hi = (float(v) for v in np.percentile(dom, rad.percentiles))
    if rad.dynamic_range_db is not None and rad.kind == "db":
        lo = max(lo, hi - rad.dynamic_range_db)
    return lo, max(hi, lo + 1e-3)


def apply_stretch(values: np.ndarray, low: float, high: float, rad: Radiometry,
                  valid: np.ndarray | None = None) -> np.ndarray:
    """Scene values (any shape) as uint8 of the same shape with the fitted ``(low, high)``.

    Linear from ``low`` -> 0 to ``high`` -> 255 in the mapping's domain, rounded and clipped;
    pixels where ``valid`` is False are 0.
    """
    dom = _to_domain(values, rad)
    scaled = (dom - np.float32(low)) * np.float32(255.0 / (high - low))
    out = np.clip(np.rint(scaled), 0, 255).astype(np.uint8)
    if valid is not None:
        out[~valid] = 0
    return out


def synth_radiometry(cfg: Any = None) -> Radiometry:
    """The synthetic world's amplitude -> 8-bit dB mapping for a ``WorldConfig``.

    ``saropt.synth``'s ``sar8``, the images of its ship datasets, for a
    :class:`saropt.synth.config.WorldConfig` (None: the default config).
    """
    from saropt.synth.config import WorldConfig

    cfg = cfg or WorldConfig()
    return Radiometry(kind="db", input="amplitude", percentiles=tuple(cfg.sar8_percentiles),
                      dynamic_range_db=cfg.sar8_dynamic_range_db,
                      noise_floor=cfg.sar8_noise_floor_dn, min_value=1.0)
