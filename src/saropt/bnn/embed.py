"""Codes for a folder of patches with one trained encoder (``saropt bnn embed``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from saropt.bnn.model import Encoder
from saropt.errors import SaroptError
from saropt.utils.io import atomic_path, write_text_atomic

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp"}


def load_any_encoder(source: str | Path, modality: str) -> Encoder:
    """The ``modality`` encoder of a Lightning checkpoint, or an exported ``.safetensors``."""
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
    from saropt.data.layout import natural_key

    folder = Path(folder)
    if not folder.is_dir():
        raise SaroptError(f"{folder} is not a folder")
    files = sorted((p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES),
                   key=lambda p: natural_key(p.stem))
    if not files:
        raise SaroptError(f"{folder} holds no images ({', '.join(sorted(IMAGE_SUFFIXES))})")
    return files


def read_patch(path: Path, in_chans: int, size: int) -> torch.Tensor:
    """A C x size x size float tensor in [0, 1] (grey for SAR, RGB for optical).

    Decoded by the data layer (:func:`saropt.data.images.read_sar` / ``read_opt``: 16-bit or
    unequal-channel SAR images are a DataError naming the file, not silently clipped); patches
    smaller than a quarter of ``size`` (or 16 px) are refused rather than blown up; other sizes
    are resized bilinearly.
    """
    from saropt.data.images import read_opt, read_sar, resize_array

    arr8 = read_sar(path) if in_chans == 1 else read_opt(path)
    h, w = arr8.shape[:2]
    if min(h, w) < max(16, size // 4):
        raise SaroptError(f"{path}: {w}x{h} pixels is too small for a {size} px encoder (at "
                          f"least {max(16, size // 4)} px a side)")
    if h != w and (h, w) != (size, size):
        raise SaroptError(f"{path}: {w}x{h} pixels is not square; crop it to square patches")
    if (h, w) != (size, size):
        arr8 = resize_array(arr8, size, "bilinear")
    arr = arr8.astype(np.float32) / 255.0
    t = torch.from_numpy(arr)
    return t.unsqueeze(0) if in_chans == 1 else t.permute(2, 0, 1)


@torch.no_grad()
def embed_folder(source: str | Path, folder: str | Path, modality: str, out: str | Path,
                 batch_size: int = 32) -> tuple[Path, int]:
    """Write codes (N x n float32) to ``out`` (.npy) and the file names to ``out``.txt."""
    from tqdm import tqdm

    from saropt.utils.outdir import check_out_file

    out = Path(out)
    out = check_out_file(out if out.suffix == ".npy" else out.with_name(out.name + ".npy"))
    enc = load_any_encoder(source, modality).eval()
    files = image_files(folder)
    codes = []
    for start in tqdm(range(0, len(files), batch_size), desc="embed", leave=False):
        x = torch.stack([read_patch(p, enc.in_chans, enc.image_size)
                         for p in files[start:start + batch_size]])
        codes.append(enc(x).float())
    arr = torch.cat(codes).numpy()
    with atomic_path(out) as tmp:
        np.save(tmp, arr)
    write_text_atomic(out.with_suffix(".txt"), "\n".join(p.name for p in files) + "\n")
    return out, len(files)
