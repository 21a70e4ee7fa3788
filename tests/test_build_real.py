"""Real SRIF optical/SAR pairs: tie points from the ground truth must rebuild ``coreg180``."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from saropt.build import BuildConfig, build_dataset, layout_dirs
from saropt.build.tiepoints import write_tiepoints

SRIF = Path(__file__).resolve().parents[2] / "shared" / "data" / "srif-optical-sar"
PAIRS = [1, 2, 50, 120]


def gt_tiepoints(i: int) -> np.ndarray:
    """SAR grid points and their optical positions by the README rule: a SAR pixel (1-based,
    homogeneous) is at k * inverse(H) * x_sar in the optical file (1-based), k = width / 256."""
    g = np.loadtxt(SRIF / "raw" / f"gt_{i}.txt")
    h_inv = np.linalg.inv(np.vstack([g, [0, 0, 1]]))
    k = Image.open(SRIF / "raw" / f"pair{i}_1.jpg").width / 256
    sx, sy = np.meshgrid(np.linspace(40, 215, 5), np.linspace(40, 215, 5))
    sar = np.column_stack([sx.ravel(), sy.ravel()])
    opt = (k * (np.column_stack([sar + 1, np.ones(len(sar))]) @ h_inv.T))[:, :2] - 1
    return np.hstack([sar, opt])


@pytest.mark.skipif(not SRIF.is_dir(), reason=f"real SRIF sample data absent ({SRIF})")
@pytest.mark.parametrize("i", PAIRS)
def test_gt_tiepoints_rebuild_coreg180(tmp_path: Path, i: int) -> None:
    write_tiepoints(tmp_path / "tp.csv", {"centre": gt_tiepoints(i)})
    (tmp_path / "sr.json").write_text(json.dumps({"centre": {"rect": [38, 38, 218, 218]}}))
    cfg = BuildConfig(sar=SRIF / "raw" / f"pair{i}_2.jpg", optical=SRIF / "raw" /
                      f"pair{i}_1.jpg", tiepoints=tmp_path / "tp.csv",
                      subregions=tmp_path / "sr.json", out=tmp_path / "out", sar_nodata=None,
                      patches={"size": 180, "overlap": 0.0}, progress=False,
                      screening={"texture_min_sar": None, "texture_min_opt": None,
                                 "seam_max": None, "duplicate_max_hamming": None})
    result = build_dataset(cfg, summary=False)
    assert result.plan.fits[0].rmse < 1e-3 and result.n_kept == 1
    sar_dir, opt_dir = layout_dirs(180, 0.0)
    opt = np.asarray(Image.open(tmp_path / "out" / opt_dir / "1.png"), np.float64)
    sar = np.asarray(Image.open(tmp_path / "out" / sar_dir / "1.png"), np.float64)
    ref_opt = np.asarray(Image.open(SRIF / "coreg180" / "opt" / f"{i}.png"), np.float64)
    ref_sar = np.asarray(Image.open(SRIF / "coreg180" / "sar" / f"{i}.png"), np.float64)
    assert opt.shape == (180, 180, 3) and sar.shape == (180, 180)
    assert np.corrcoef(opt[..., 0].ravel(), ref_opt.ravel())[0, 1] > 0.98
    assert np.abs(opt[..., 0] - ref_opt).mean() < 2.0
    assert np.corrcoef(sar.ravel(), ref_sar.ravel())[0, 1] > 0.99
