"""Codes for a folder of patches with one trained encoder (``saropt bnn embed``)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from saropt.bnn.model import Encoder
from saropt.errors import SaroptError
from saropt.utils.io import atomic_path, write_text_atomic

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp"}


def load_any_encoder(source: str | Path, modality: str) -> Encoder:
    """The ``modality`` (``sar`` or ``opt``) encoder of a BNN checkpoint or exported file.

    ``source``: a Lightning ``.ckpt`` of ``saropt bnn train`` or an exported ``.safetensors``
    (:func:`saropt.bnn.export.load_encoder`). Raises :class:`SaroptError` for another modality
    name, an exported encoder of the other modality (channel count), or an unusable file.
    """
    if modality not in ("sar", "opt"):
        raise SaroptError(f"--modality must be sar or opt, got {modality!r}")
    source = Path(source)
    if source.suffix == ".safetensors":
        from saropt.bnn.export import load_encoder

        enc = load_encoder(source)
        want = 1 if modality == "sar" else 3
        if enc.in_chans != want:
            raise SaroptError(f"{source} is a {enc.in_chans}-channel encoder, not {modality}")
        return enc
    from saropt.bnn.export import load_module

    return getattr(load_module(source).model, modality)


def image_files(folder: str | Path) -> list[Path]:
    """The image files directly inside ``folder`` in natural order (may be empty).

    Raises :class:`SaroptError` when ``folder`` is not a folder, and
    :class:`~saropt.utils.outdir.OutDirError` when it is an unfinished saropt output.
    """
    from saropt.data.layout import natural_key
    from saropt.utils.outdir import require_complete

    folder = Path(folder)
    if not folder.is_dir():
        raise SaroptError(f"{folder} is not a folder")
    require_complete(folder)
    return sorted((p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES),
                  key=lambda p: natural_key(p.stem))


def _to_tensor(arr8: np.ndarray, in_chans: int, size: int, resample: str,
               name: object = "patch") -> torch.Tensor:
    """A uint8 (H, W) or (H, W, 3) patch as a (C, size, size) float tensor in [0, 1].

    Patches smaller than a quarter of ``size`` (or 16 px) or not square are refused rather than
    blown up (:class:`SaroptError`); other sizes are resized with ``resample``.
    """
    from saropt.data.images import resize_array

    h, w = arr8.shape[:2]
    if min(h, w) < max(16, size // 4):
        raise SaroptError(f"{name}: {w}x{h} pixels is too small for a {size} px encoder (at "
                          f"least {max(16, size // 4)} px a side)")
    if h != w and (h, w) != (size, size):
        raise SaroptError(f"{name}: {w}x{h} pixels is not square; crop it to square patches")
    arr = resize_array(arr8, size, resample).astype(np.float32) / 255.0
    t = torch.from_numpy(arr)
    return t.unsqueeze(0) if in_chans == 1 else t.permute(2, 0, 1)


def read_patch(path: Path, in_chans: int, size: int, resample: str = "bilinear") -> torch.Tensor:
    """A patch file as a (C, size, size) float tensor in [0, 1] (C = 1 grey SAR, 3 RGB optical).

    Decoded by the pair reader (:func:`saropt.data.images.read_sar` / ``read_opt``), so a folder
    of patches is read exactly as a pair dataset: 16-bit files, colour SAR with unequal channels
    and unreadable files are DataErrors naming the file, never silently clipped or mixed. Resized
    with ``resample`` (a policy of :data:`saropt.data.images.RESAMPLING`) when of another size.
    """
    from saropt.data.images import read_opt, read_sar

    arr8 = read_sar(path) if in_chans == 1 else read_opt(path)
    return _to_tensor(arr8, in_chans, size, resample, path)


def _dataset_patches(root: Path, modality: str, layout: str, sar_dir: str | None,
                     opt_dir: str | None, cache: str | None) -> tuple[list[str], Callable]:
    """Ids and a loader of one modality's uint8 patches of a pair dataset (its own layout)."""
    from saropt.data import QXSSAROPT
    from saropt.data.layout import detect_layout

    if sar_dir is None and layout == "auto":
        try:
            detect_layout(root)
        except SaroptError as err:
            raise SaroptError(f"{root} holds no images ({', '.join(sorted(IMAGE_SUFFIXES))}) "
                              f"and is no pair dataset: {err}") from None
    ds = QXSSAROPT(root, sar_dir=sar_dir, opt_dir=opt_dir, patch_size=None, cache=cache,
                   layout=layout)
    if not ds.ids:
        raise SaroptError(f"{root}: the dataset holds no pairs")
    return ds.ids, (ds.sar_u8 if modality == "sar" else ds.opt_u8)


@torch.no_grad()
def embed_folder(source: str | Path, folder: str | Path, modality: str, out: str | Path,
                 batch_size: int = 32, layout: str = "auto", sar_dir: str | None = None,
                 opt_dir: str | None = None, cache: str | None = None,
                 resize: str | None = None) -> tuple[Path, int]:
    """Write the codes ``(N, n)`` float32 in [0, 1] of N patches to ``out`` (.npy), names to .txt.

    ``source``: a BNN checkpoint or exported encoder of ``modality`` (``sar``/``opt``); codes
    are computed ``batch_size`` patches at a time. Returns ``(npy path, N)``.

    ``folder`` holding images: every image in natural order, names = file names. Otherwise a
    pair dataset root read in its own layout (``sar_dir`` + ``opt_dir``, else ``layout``;
    ``cache`` only when given): the ``modality`` patch of every pair, names = pair ids.
    Patches of another size than the encoder's input are resized (``resize``, default
    bilinear).

    Raises:
        SaroptError: an unusable ``source`` or ``folder`` (no images and no pair dataset, an
            empty dataset, dataset options given for a folder of images, a patch too small or
            not square), or an ``out`` that is a folder or one of the inputs.
    """
    from tqdm import tqdm

    from saropt.utils.outdir import check_out_file

    out = Path(out)
    out = check_out_file(out if out.suffix == ".npy" else out.with_name(out.name + ".npy"),
                         inputs=[source])
    enc = load_any_encoder(source, modality).eval()
    resample = resize or "bilinear"
    files = image_files(folder)
    if files:
        if cache is not None or sar_dir is not None or layout != "auto":
            raise SaroptError(f"{folder} holds images: --cache, --layout and --sar-dir apply "
                              "to a pair dataset root, not a folder of patches")
        names = [p.name for p in files]
        load = lambda k: read_patch(files[k], enc.in_chans, enc.image_size, resample)  # noqa: E731
    else:
        names, read_u8 = _dataset_patches(Path(folder), modality, layout, sar_dir, opt_dir,
                                          cache)
        load = lambda k: _to_tensor(np.ascontiguousarray(read_u8(names[k])),  # noqa: E731
                                    enc.in_chans, enc.image_size, resample, names[k])
    codes = []
    for start in tqdm(range(0, len(names), batch_size), desc="embed", leave=False):
        x = torch.stack([load(k) for k in range(start, min(start + batch_size, len(names)))])
        codes.append(enc(x).float())
    arr = torch.cat(codes).numpy()
    with atomic_path(out) as tmp:
        np.save(tmp, arr)
    write_text_atomic(out.with_suffix(".txt"), "\n".join(names) + "\n")
    return out, len(names)
