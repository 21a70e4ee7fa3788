"""Decoding one SAR or optical patch into a uint8 array with a fixed channel layout.

SAR becomes ``(H, W)``: stored as L, as RGB/RGBA with three equal channels (alpha dropped), or as
a palette image. Optical becomes ``(H, W, 3)``: RGB as is, L repeated three times, RGBA without
alpha. Anything else (16-bit, CMYK, SAR with unequal colour channels) is a :class:`DataError`
naming the file.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from saropt.errors import DataError

#: resize policies accepted by the reader and the cache (Pillow filters, antialiased on shrink)
RESAMPLING: dict[str, Image.Resampling] = {
    "nearest": Image.Resampling.NEAREST,
    "bilinear": Image.Resampling.BILINEAR,
    "bicubic": Image.Resampling.BICUBIC,
    "area": Image.Resampling.BOX,
    "lanczos": Image.Resampling.LANCZOS,
}

_EIGHT_BIT_MODES = {"1", "L", "LA", "P", "PA", "RGB", "RGBA", "RGBX"}


def open_image(path: str | Path) -> Image.Image:
    """Open and fully decode an image with Pillow; palette images come back as RGBA.

    Raises:
        DataError: (a SaroptError) when the file is missing, unreadable, truncated or a
            decompression bomb.
    """
    try:
        with Image.open(path) as im:
            im.load()
            return im.copy() if im.mode not in ("P", "PA") else im.convert("RGBA")
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as err:
        raise DataError(f"{path}: unreadable or truncated image ({err})") from None


def _check_mode(im: Image.Image, path: str | Path) -> None:
    if im.mode not in _EIGHT_BIT_MODES:
        hint = ("; scale it to 8 bit first (`saropt data build` does, see sar_scaling in "
                "docs/build.md)" if im.mode.startswith(("I", "F")) else "")
        raise DataError(f"{path}: image mode {im.mode!r} is not supported (expected 8-bit "
                        f"L, RGB or RGBA){hint}")


def sar_array(im: Image.Image, path: str | Path = "<image>") -> np.ndarray:
    """A decoded SAR image as uint8 ``(H, W)``; colour SAR with unequal channels is an error.

    Raises:
        DataError: when the mode is not 8-bit (16-bit, float, CMYK) or an RGB(A) image has
            unequal colour channels; the message names ``path``.
    """
    _check_mode(im, path)
    if im.mode in ("1", "L"):
        return np.asarray(im.convert("L"))
    if im.mode == "LA":
        return np.asarray(im)[..., 0].copy()
    rgb = np.asarray(im)[..., :3]
    if not (np.array_equal(rgb[..., 0], rgb[..., 1]) and np.array_equal(rgb[..., 0], rgb[..., 2])):
        raise DataError(f"{path}: SAR image is {im.mode} with unequal colour channels; expected a "
                        "single-channel (L) image or three equal channels")
    return rgb[..., 0].copy()


def opt_array(im: Image.Image, path: str | Path = "<image>") -> np.ndarray:
    """A decoded optical image as uint8 ``(H, W, 3)``: grayscale repeated, alpha dropped.

    Raises:
        DataError: when the mode is not 8-bit L/LA/RGB/RGBA; the message names ``path``.
    """
    _check_mode(im, path)
    if im.mode in ("1", "L", "LA"):
        grey = np.asarray(im.convert("L"))
        return np.repeat(grey[..., None], 3, axis=2)
    return np.ascontiguousarray(np.asarray(im)[..., :3])


def read_sar(path: str | Path) -> np.ndarray:
    """Decode a SAR patch file to uint8 ``(H, W)``.

    Raises:
        DataError: as :func:`open_image` and :func:`sar_array`.
    """
    return sar_array(open_image(path), path)


def read_opt(path: str | Path) -> np.ndarray:
    """Decode an optical patch file to uint8 ``(H, W, 3)`` (RGB channel order).

    Raises:
        DataError: as :func:`open_image` and :func:`opt_array`.
    """
    return opt_array(open_image(path), path)


def resize_array(arr: np.ndarray, size: int, policy: str) -> np.ndarray:
    """Resize a uint8 ``(H, W)`` or ``(H, W, 3)`` array to ``size x size`` with a Pillow filter.

    ``policy`` is a key of :data:`RESAMPLING`; an array already ``size x size`` is returned as is.

    Raises:
        ValueError: when ``policy`` is not a key of :data:`RESAMPLING`.
    """
    if policy not in RESAMPLING:
        raise ValueError(f"unknown resize policy {policy!r}; choose one of {sorted(RESAMPLING)}")
    if arr.shape[0] == size and arr.shape[1] == size:
        return arr
    return np.asarray(Image.fromarray(arr).resize((size, size), RESAMPLING[policy]))
