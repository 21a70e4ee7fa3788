"""QXSSAROPT reader: layouts, image modes, sizes, transforms, plots, real data."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from _qxs_fixtures import OPT_DIR, REAL_DATA, SAR_DIR, make_qxs, pair_arrays
from matplotlib.figure import Figure
from PIL import Image

from saropt.data import (
    QXSSAROPT,
    Compose,
    RandomHorizontalFlip,
    RandomRot90,
    RandomVerticalFlip,
    Resize,
    augmentations,
    read_opt,
    read_sar,
)
from saropt.errors import DataError


@pytest.fixture
def qxs(tmp_path: Path) -> Path:
    return make_qxs(tmp_path / "qxs", n=12, size=16)


def test_sample_contract(qxs: Path) -> None:
    ds = QXSSAROPT(qxs, patch_size=16)
    assert len(ds) == 12
    assert ds.ids == [str(i) for i in range(1, 13)]  # numeric, not 1, 10, 11, 12, 2
    s = ds[1]
    assert s["id"] == "2"
    assert s["sar"].shape == (1, 16, 16) and s["opt"].shape == (3, 16, 16)
    assert s["sar"].dtype == torch.float32 and s["opt"].dtype == torch.float32
    sar, opt = pair_arrays(2, 16)
    assert torch.equal(s["sar"][0], torch.from_numpy(sar).float() / 255)
    assert torch.equal(s["opt"], torch.from_numpy(opt).permute(2, 0, 1).float() / 255)
    assert torch.equal(ds.get("2")["opt"], s["opt"])


def test_ids_subset_is_sorted_and_validated(qxs: Path) -> None:
    ds = QXSSAROPT(qxs, ids=["10", "2", "3"], patch_size=16)
    assert ds.ids == ["2", "3", "10"]
    with pytest.raises(DataError, match="no pair"):
        QXSSAROPT(qxs, ids=["99"], patch_size=16)


def test_plain_layout_and_non_integer_names(tmp_path: Path) -> None:
    make_qxs(tmp_path, names=["b10", "b2", "a1"], size=8, sar_dir="sar", opt_dir="opt")
    ds = QXSSAROPT(tmp_path, sar_dir="sar", opt_dir="opt", patch_size=8)
    assert ds.ids == ["a1", "b2", "b10"]


def _save(path: Path, arr: np.ndarray, mode: str | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr, mode).save(path) if mode else Image.fromarray(arr).save(path)
    return path


def test_sar_modes_collapse_to_one_channel(tmp_path: Path) -> None:
    grey = np.arange(64, dtype=np.uint8).reshape(8, 8)
    rgb = np.repeat(grey[..., None], 3, 2)
    rgba = np.dstack([rgb, np.full((8, 8), 7, np.uint8)])
    assert np.array_equal(read_sar(_save(tmp_path / "l.png", grey)), grey)
    assert np.array_equal(read_sar(_save(tmp_path / "rgb.png", rgb)), grey)
    assert np.array_equal(read_sar(_save(tmp_path / "rgba.png", rgba)), grey)
    colour = rgb.copy()
    colour[0, 0, 1] += 1
    with pytest.raises(DataError, match=r"c\.png.*unequal colour channels"):
        read_sar(_save(tmp_path / "c.png", colour))


def test_opt_modes_become_rgb(tmp_path: Path) -> None:
    grey = np.arange(64, dtype=np.uint8).reshape(8, 8)
    assert np.array_equal(read_opt(_save(tmp_path / "l.png", grey)), np.dstack([grey] * 3))
    rgb = np.random.default_rng(0).integers(0, 256, (8, 8, 3), dtype=np.uint8)
    rgba = np.dstack([rgb, np.zeros((8, 8), np.uint8)])
    assert np.array_equal(read_opt(_save(tmp_path / "rgba.png", rgba)), rgb)
    i16 = _save(tmp_path / "i16.png", (grey.astype(np.uint16) * 256))
    with pytest.raises(DataError, match=r"i16\.png.*mode"):
        read_opt(i16)


def test_wrong_size_is_an_error_unless_resized(qxs: Path) -> None:
    ds = QXSSAROPT(qxs)  # patch_size 256
    with pytest.raises(DataError, match=r"1\.png: 16x16 pixels, expected 256x256"):
        ds[0]
    big = QXSSAROPT(qxs, patch_size=32, resize="bilinear")[0]
    assert big["sar"].shape == (1, 32, 32) and big["opt"].shape == (3, 32, 32)
    assert QXSSAROPT(qxs, patch_size=None)[0]["sar"].shape == (1, 16, 16)
    with pytest.raises(ValueError, match="resize policy"):
        QXSSAROPT(qxs, resize="cubic-ish")


def test_wrong_size_message_names_the_bnn_config_key(qxs: Path) -> None:
    """`saropt bnn train` has no --resize flag: the message also names its config key."""
    with pytest.raises(DataError, match=r"data\.resize=bilinear in a `saropt bnn train` config"):
        QXSSAROPT(qxs)[0]


def test_size_mismatch_inside_pair_is_an_error(qxs: Path) -> None:
    Image.fromarray(np.zeros((12, 12, 3), np.uint8)).save(qxs / OPT_DIR / "3.png")
    ds = QXSSAROPT(qxs, patch_size=None)
    with pytest.raises(DataError, match=r"pair '3'.*3\.png is 16x16 but .*3\.png is 12x12"):
        ds.get("3")


def test_missing_counterpart_fails_at_construction(qxs: Path) -> None:
    (qxs / SAR_DIR / "5.png").unlink()
    with pytest.raises(DataError, match=r"missing counterpart: 1\n.*5\.png has no"):
        QXSSAROPT(qxs, patch_size=16)


def _pattern_sample() -> dict:
    """SAR equal to every optical channel: a joint transform must keep them equal."""
    base = torch.arange(36, dtype=torch.float32).reshape(1, 6, 6) / 36
    return {"sar": base.clone(), "opt": base.repeat(3, 1, 1), "id": "x"}


@pytest.mark.parametrize("transform", [RandomHorizontalFlip(1.0), RandomVerticalFlip(1.0),
                                       RandomRot90(), augmentations()])
def test_joint_transforms_apply_same_change(transform) -> None:
    torch.manual_seed(0)
    changed = False
    for _ in range(8):
        s = _pattern_sample()
        out = transform(s)
        assert out["id"] == "x"
        for c in range(3):
            assert torch.equal(out["opt"][c], out["sar"][0])
        changed |= not torch.equal(out["sar"], s["sar"])
    assert changed


def test_resize_transform(qxs: Path) -> None:
    ds = QXSSAROPT(qxs, patch_size=16, transforms=Compose([Resize(8), RandomRot90()]))
    s = ds[0]
    assert s["sar"].shape == (1, 8, 8) and s["opt"].shape == (3, 8, 8)
    assert 0.0 <= float(s["opt"].min()) and float(s["opt"].max()) <= 1.0
    # a constant image stays constant
    const = {"sar": torch.full((1, 10, 10), 0.25), "opt": torch.full((3, 10, 10), 0.5)}
    out = Resize(4)(const)
    assert torch.allclose(out["sar"], torch.tensor(0.25)) and out["opt"].shape == (3, 4, 4)


def test_plots(qxs: Path, tmp_path: Path) -> None:
    ds = QXSSAROPT(qxs, patch_size=16)
    fig = ds.plot(ds[0], suptitle="pair 1")
    assert isinstance(fig, Figure) and len(fig.axes) == 2
    batch = ds.plot_batch(n=4)
    assert len(batch.axes) == 8
    batch.savefig(tmp_path / "batch.png")
    from torch.utils.data import DataLoader

    collated = next(iter(DataLoader(ds, batch_size=3)))
    assert len(ds.plot_batch(collated).axes) == 6


def test_real_coreg180_pairs() -> None:
    root = REAL_DATA / "srif-optical-sar" / "coreg180"
    if not root.is_dir():
        pytest.skip(f"real sample data not found at {root}")
    with pytest.raises(DataError, match="180x180 pixels, expected 256x256"):
        QXSSAROPT(root, sar_dir="sar", opt_dir="opt")[0]
    ds = QXSSAROPT(root, sar_dir="sar", opt_dir="opt", patch_size=180)
    assert len(ds) == 200 and ds.ids[:3] == ["1", "2", "3"] and ds.ids[-1] == "200"
    s = ds[0]
    assert s["sar"].shape == (1, 180, 180) and s["opt"].shape == (3, 180, 180)
    assert torch.equal(s["opt"][0], s["opt"][1])  # grayscale optical -> 3 equal channels
    assert 0.0 < float(s["sar"].mean()) < 1.0
    small = QXSSAROPT(root, sar_dir="sar", opt_dir="opt", patch_size=64, resize="area")[5]
    assert small["opt"].shape == (3, 64, 64)


def test_uint8_output_and_to_float(qxs: Path) -> None:
    from saropt.data import to_float

    f32 = QXSSAROPT(qxs, patch_size=16)
    u8 = QXSSAROPT(qxs, patch_size=16, dtype="uint8")
    a, b = f32[3], u8[3]
    assert b["sar"].dtype == torch.uint8 and b["opt"].shape == (3, 16, 16)
    c = to_float(b)
    assert torch.equal(c["sar"], a["sar"]) and torch.equal(c["opt"], a["opt"]) and c["id"] == "4"
    small = QXSSAROPT(qxs, patch_size=16, dtype="uint8", transforms=Resize(8))[0]
    assert small["opt"].dtype == torch.uint8 and small["opt"].shape == (3, 8, 8)
    with pytest.raises(ValueError, match="dtype"):
        QXSSAROPT(qxs, dtype="float16")
