"""Atomic file output: a reader never sees a half-written file, a crash leaves no partial output."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it is renamed onto ``path``.

    The suffix is kept, so writers that infer the format from the extension (PIL, OpenCV,
    rasterio, matplotlib) still work. The file gets the permissions of a plain ``open()``
    (0666 minus the umask), not ``mkstemp``'s 0600. A failure (a full disk, a kill) leaves
    ``path`` as it was; temporaries of killed runs (``.<stem>.XXXXXXXX.tmp<suffix>``) are
    removed by :func:`saropt.utils.outdir.remove_temps`. An ``OSError`` names ``path`` (not
    the temporary), so the user is told which output failed.

    A symbolic link is followed (its target is replaced, as ``open()`` would write it, not the
    link). A ``path`` that exists and is not a regular file (``/dev/stdout``, ``/dev/null``, a
    named pipe) cannot be replaced by a rename: it is yielded as is and written directly.
    """
    path = Path(path)
    if path.is_symlink():
        path = path.resolve()
    if path.exists() and not path.is_file() and not path.is_dir():
        try:
            yield path  # a device or pipe: written in place (renaming onto it would replace it)
        except OSError as err:
            raise _named(err, path) from None
        return
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=f".tmp{path.suffix}",
                                   dir=path.parent)
        os.close(fd)
    except OSError as err:  # the folder cannot hold the output: name the output, not a temporary
        err.filename, err.filename2 = str(path), None
        raise err from None
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.chmod(tmp_path, 0o666 & ~current_umask())
        os.replace(tmp_path, path)
    except OSError as err:
        raise _named(err, path, tmp_path) from None
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def _named(err: OSError, path: Path, tmp: str | Path | None = None) -> OSError:
    """``err`` naming the output ``path`` where it names no file or the temporary ``tmp``.

    The temporary's name means nothing to the user; errors about other files are left as they
    are.
    """
    if err.filename is None or (tmp is not None and os.fsdecode(err.filename) == str(tmp)):
        err.filename = str(path)
        if err.filename2 is not None and os.fsdecode(err.filename2) == str(path):
            err.filename2 = None  # os.replace(tmp, path): name the output once
    return err


def current_umask() -> int:
    """The process umask (read from /proc where possible: setting it is not thread-safe)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def read_json(path: str | Path, what: str) -> Any:
    """Parse a JSON file (UTF-8 with or without BOM, or UTF-16).

    ``what`` names the file's role in the message. Raises :class:`~saropt.errors.DataError`
    naming the file when it is missing, not UTF-8/UTF-16 text, or not valid JSON.
    """
    from saropt.errors import DataError

    path = Path(path)
    if not path.is_file():
        raise DataError(f"{what} file {path} does not exist")
    text = read_text_file(path)  # a BOM (Windows tools) or UTF-16 allowed
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        raise DataError(f"{path}: not valid JSON ({err})") from None


def read_text_file(path: str | Path) -> str:
    """The text of a list, CSV or tie-point file as editors write it.

    UTF-8 with or without a byte-order mark (Windows Notepad), or UTF-16 with one (PowerShell's
    ``>``). Raises :class:`~saropt.errors.DataError` naming the file for other bytes (and
    ``OSError`` when it cannot be read).
    """
    from saropt.errors import DataError

    path = Path(path)
    raw = path.read_bytes()
    encoding = "utf-16" if raw[:2] in (b"\xff\xfe", b"\xfe\xff") else "utf-8-sig"
    try:
        return raw.decode(encoding)
    except UnicodeDecodeError as err:
        raise DataError(f"{path}: not a UTF-8 or UTF-16 text file ({err.reason} at byte "
                        f"{err.start}); save it as UTF-8") from None


def write_text_atomic(path: str | Path, text: str) -> Path:
    """Write ``text`` to ``path`` atomically (:func:`atomic_path`); returns ``path``."""
    with atomic_path(path) as tmp:
        tmp.write_text(text)
    return Path(path)


def write_json_atomic(path: str | Path, obj: Any, indent: int = 2) -> Path:
    """Write ``obj`` as indented JSON to ``path`` atomically; returns ``path``.

    NumPy scalars and arrays and ``Path`` objects are converted; other objects raise
    ``TypeError``.
    """
    return write_text_atomic(path, json.dumps(obj, indent=indent, default=_json_default) + "\n")


def _json_default(o: Any) -> Any:
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"cannot serialise {type(o).__name__} to JSON")


def save_image_atomic(path: str | Path, array: np.ndarray) -> Path:
    """Write a uint8 ``(H, W)`` (grey) or ``(H, W, 3)`` (RGB) array as PNG/JPEG atomically.

    Pillow picks the format from the suffix. Raises ``ValueError`` for a non-uint8 array.
    """
    from PIL import Image

    if array.dtype != np.uint8:
        raise ValueError(f"{path}: expected uint8 image, got {array.dtype}")
    with atomic_path(path) as tmp:
        Image.fromarray(array).save(tmp)
    return Path(path)


def save_figure_atomic(fig: Any, path: str | Path, dpi: int = 120) -> Path:
    """Save a matplotlib figure atomically (format from the suffix, ``dpi``) and close it."""
    import matplotlib.pyplot as plt

    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=dpi, bbox_inches="tight")
    plt.close(fig)
    return Path(path)
