"""Localisation (saropt.bnn.locate / matchers): known offsets are recovered, coarse-to-fine
equals the exhaustive argmin, confidences order correctly, NMI equals scikit-image's, and the
`saropt bnn locate` CLI works on files."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from saropt.bnn.locate import BNNMatcher, locate, search_window
from saropt.bnn.matchers import MIMatcher, NCCMatcher, normalized_mutual_information


class PoolEncoder(torch.nn.Module):
    """A hand-built encoder with a known answer: the grey image average-pooled to 8 x 8 (64-d
    code in [0, 1]). Identical windows give d = 0, so the true offset has the lowest cost."""

    def __init__(self, in_chans: int, image_size: int = 32) -> None:
        super().__init__()
        self.in_chans, self.image_size = in_chans, image_size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.adaptive_avg_pool2d(x.mean(1, keepdim=True), 8).flatten(1)


def texture(seed: int, size: int = 160, sigma: float = 2.5) -> np.ndarray:
    rng = np.random.default_rng(seed)
    img = cv2.GaussianBlur(rng.uniform(0, 255, (size, size)).astype(np.float32), (0, 0), sigma)
    return ((img - img.min()) / (img.max() - img.min()) * 255).astype(np.uint8)


def cut(img: np.ndarray, radius: int, t: int, tx: int, ty: int):
    search = img[:t + 2 * radius, :t + 2 * radius]
    return search[radius + ty:radius + ty + t, radius + tx:radius + tx + t].copy(), search


def sar_like(template: np.ndarray, seed: int) -> np.ndarray:
    """Non-linear intensity change + multiplicative speckle: a SAR-looking version."""
    rng = np.random.default_rng(seed)
    amp = (40 + 0.004 * template.astype(np.float32) ** 2) * np.sqrt(rng.exponential(1.0,
                                                                                    template.shape))
    return np.clip(amp, 0, 255).astype(np.uint8)


@pytest.fixture
def bnn():
    return BNNMatcher(PoolEncoder(1), PoolEncoder(3), device="cpu", batch_size=128)


@pytest.mark.parametrize("tx,ty", [(0, 0), (7, -5), (-12, 12), (3, 11)])
def test_bnn_hand_built_encoder_recovers_offset(bnn, tx, ty, one_torch_thread):
    tmpl, search = cut(texture(1), 12, 64, tx, ty)
    rgb = np.repeat(search[:, :, None], 3, axis=2)
    loc = locate(bnn, tmpl, rgb, stride=4, keep_map=True)
    assert (loc.dx, loc.dy) == (tx, ty)
    assert loc.cost == pytest.approx(0.0, abs=1e-6)
    assert loc.n_evaluated < 0.5 * 25 ** 2  # coarse-to-fine did not evaluate every offset
    ex = locate(bnn, tmpl, rgb, exhaustive=True, keep_map=True)
    assert (ex.dx, ex.dy) == (tx, ty) and ex.n_evaluated == 25 ** 2
    # the costs that coarse-to-fine evaluated equal the exhaustive map's
    seen = np.isfinite(loc.cost_map)
    assert np.allclose(loc.cost_map[seen], ex.cost_map[seen], atol=1e-6)


@pytest.mark.parametrize("name", ["ncc", "ncc_grad", "mi"])
def test_baselines_recover_offset_across_intensity_change(name):
    matcher = {"ncc": NCCMatcher(), "ncc_grad": NCCMatcher(gradient=True), "mi": MIMatcher()}[name]
    for k, (tx, ty) in enumerate([(5, -9), (-14, 3), (0, 16)]):
        tmpl, search = cut(texture(10 + k, sigma=3.0), 16, 96, tx, ty)
        loc = locate(matcher, sar_like(tmpl, k), search)
        assert np.hypot(loc.dx - tx, loc.dy - ty) <= 1.0, (name, loc, tx, ty)


def test_coarse_to_fine_equals_exhaustive_on_real_cost_maps(bnn, one_torch_thread):
    agree = 0
    for k in range(6):
        rng = np.random.default_rng(k)
        tx, ty = (int(v) for v in rng.integers(-10, 11, 2))
        tmpl, search = cut(texture(20 + k, sigma=3.0), 10, 48, tx, ty)
        for matcher, s in ((MIMatcher(), search), (bnn, np.repeat(search[:, :, None], 3, 2))):
            t = sar_like(tmpl, k) if matcher is not bnn else tmpl
            c2f = locate(matcher, t, s, stride=4)
            ex = locate(matcher, t, s, exhaustive=True)
            agree += (c2f.dx, c2f.dy) == (ex.dx, ex.dy)
            assert c2f.cost == pytest.approx(ex.cost)
    assert agree == 12


def test_search_window_on_random_basins():
    """Sums of Gaussian basins (widths >= the stride): coarse-to-fine finds the exhaustive
    argmin, its confidence is never below the exact one, and the exact confidence is the gap
    to the best cost outside the suppression radius."""
    r = 20
    for seed in range(25):
        rng = np.random.default_rng(seed)
        centres = rng.integers(-r, r + 1, (4, 2))
        depth = rng.uniform(0.3, 1.0, 4)
        width = rng.uniform(4, 8, 4)

        def cost(off, c=centres, d=depth, w=width):
            dist2 = ((off[:, None, :] - c[None]) ** 2).sum(-1)
            return -(d * np.exp(-dist2 / (2 * w ** 2))).sum(1)

        ex = search_window(cost, r, exhaustive=True, keep_map=True, suppress=4)
        c2f = search_window(cost, r, stride=4, top_k=4, suppress=4)
        assert (c2f.dx, c2f.dy) == (ex.dx, ex.dy)
        assert c2f.confidence >= ex.confidence - 1e-12
        m = ex.cost_map
        yy, xx = np.mgrid[-r:r + 1, -r:r + 1]
        far = np.maximum(abs(xx - ex.dx), abs(yy - ex.dy)) > 4
        assert ex.confidence == pytest.approx(m[far].min() - m.min())


def test_confidence_orders_clean_noisy_and_ambiguous(bnn, one_torch_thread):
    rng = np.random.default_rng(0)
    tmpl, search = cut(texture(3, sigma=3.0), 16, 96, 4, -6)
    noisy = np.clip(tmpl + rng.normal(0, 60, tmpl.shape), 0, 255).astype(np.uint8)
    stripes = (np.sin(np.arange(160) * 2 * np.pi / 12)[None, :] * 100 + 128).repeat(160, 0)
    stripes += rng.normal(0, 3, stripes.shape)
    s_tmpl, s_search = cut(stripes.astype(np.uint8), 16, 96, 4, -6)
    for matcher, rgb in ((NCCMatcher(), False), (NCCMatcher(gradient=True), False),
                         (MIMatcher(), False), (bnn, True)):
        def conf(t, s, matcher=matcher, rgb=rgb):
            return locate(matcher, t, np.repeat(s[:, :, None], 3, 2) if rgb else s).confidence
        clean, noise, ambiguous = conf(tmpl, search), conf(noisy, search), conf(s_tmpl,
                                                                              s_search)
        assert clean > noise > 0, matcher
        assert clean > 3 * ambiguous, matcher


def test_nmi_equals_scikit_image():
    from skimage.metrics import normalized_mutual_information as sk_nmi

    a = texture(5, 64)
    b = sar_like(a, 0)
    for x, y in ((a, b), (a, a), (a, texture(6, 64))):
        assert normalized_mutual_information(x, y, bins=32) == pytest.approx(
            sk_nmi(x, y, bins=32), rel=1e-9)


def test_cli_locate_patch_and_scene(tmp_path, capsys):
    from PIL import Image

    from saropt.cli import main

    img = texture(8, 200, sigma=3.0)
    tmpl, search = cut(img, 16, 96, -7, 9)
    Image.fromarray(sar_like(tmpl, 1)).save(tmp_path / "sar.png")
    Image.fromarray(np.repeat(search[:, :, None], 3, 2)).save(tmp_path / "opt.png")
    assert main(["bnn", "locate", "--sar", str(tmp_path / "sar.png"), "--optical",
                 str(tmp_path / "opt.png"), "--method", "ncc_grad", "--out",
                 str(tmp_path / "map.png"), "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert (res["dx"], res["dy"], res["radius"]) == (-7, 9, 16)
    assert (tmp_path / "map.png").is_file()
    # scene mode: the optical scene is the SAR scene shifted by (5, -3) px
    sar_scene = sar_like(img[20:180, 20:180], 2)
    Image.fromarray(sar_scene).save(tmp_path / "sar_scene.png")
    Image.fromarray(np.repeat(img[17:177, 25:185, None], 3, 2)).save(tmp_path / "opt_scene.png")
    assert main(["bnn", "locate", "--sar", str(tmp_path / "sar_scene.png"), "--optical",
                 str(tmp_path / "opt_scene.png"), "--method", "ncc_grad", "--grid", "32",
                 "--patch", "64", "--radius", "12", "--out", str(tmp_path / "pts.csv"),
                 "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    pts = res["points"]
    assert res["located"] == len(pts) >= 4
    for p in pts:  # opt = sar - (5, -3): the optical scene starts 5 px right, 3 px up
        assert abs(p["opt_x"] - (p["sar_x"] - 5)) < 1.0 and abs(p["opt_y"] - (p["sar_y"] + 3)) < 1.0
    assert main(["bnn", "locate", "--sar", str(tmp_path / "sar.png"), "--optical",
                 str(tmp_path / "opt.png"), "--method", "bnn"]) == 2  # bnn needs --model


def test_shifted_false_pairs(synth_qxs_root, tmp_path):
    from saropt.bnn.config import BNNConfig
    from saropt.bnn.data import ShiftedFalsePairs, base_dataset
    from saropt.config import ConfigError, load_config
    from saropt.data import TrainPairs

    over = [f"data.root={synth_qxs_root}", "data.sar_dir=sar_64_oc_0.2",
            "data.opt_dir=opt_64_oc_0.2", "data.patch_size=64", "data.shift_neg_frac=0.5",
            "data.shift_min=3", "data.shift_max=8"]
    cfg = load_config(BNNConfig, "bnn/synthetic_resnet18", over)
    base = base_dataset(cfg, None)
    ds = ShiftedFalsePairs(TrainPairs(base, seed=1), 0.5, 3, 8, out_size=48, seed=1)
    assert len(ds) == 2 * len(base)
    n_shift = 0
    for k in range(len(ds)):
        i, j, label, shift = ds.draw(k)
        item = ds[k]
        sar, opt = base.pair_u8(base.ids[i])
        assert item["sar"].shape == (1, 48, 48) and item["opt"].shape == (3, 48, 48)
        assert np.allclose(item["sar"][0].numpy(), sar[8:56, 8:56] / 255.0, atol=1e-6)
        if shift is None:
            continue
        n_shift += 1
        dx, dy = shift
        assert label == 0.0 and i == j and 3 <= max(abs(dx), abs(dy)) <= 8
        assert np.allclose(item["opt"].permute(1, 2, 0).numpy(),
                           opt[8 + dy:56 + dy, 8 + dx:56 + dx] / 255.0, atol=1e-6)
    assert 0.25 < n_shift / len(base) < 0.75  # about half of the false pairs
    epoch0 = [ds.draw(k) for k in range(len(ds))]
    ds.set_epoch(1)
    assert [ds.draw(k) for k in range(len(ds))] != epoch0  # redrawn each epoch
    ds.set_epoch(0)
    assert [ds.draw(k) for k in range(len(ds))] == epoch0  # from (seed, epoch) only
    # the data module uses it when data.shift_neg_frac > 0 (crops resized to the input size)
    from saropt.bnn.data import BNNDataModule
    from saropt.data import make_split

    make_split(synth_qxs_root, tmp_path / "split", train=16, test=8, val=0, seed=0,
               sar_dir="sar_64_oc_0.2", opt_dir="opt_64_oc_0.2")
    dm = BNNDataModule(load_config(BNNConfig, "bnn/synthetic_resnet18",
                                   over + [f"data.split={tmp_path / 'split'}",
                                           "data.image_size=32"]))
    dm.setup()
    assert isinstance(dm.train_pairs, ShiftedFalsePairs) and len(dm.train_pairs) == 32
    batch = next(iter(dm.train_dataloader()))
    assert batch["sar"].shape[1:] == (1, 32, 32) and batch["opt"].shape[1:] == (3, 32, 32)
    with pytest.raises(ConfigError, match="shift_max"):
        load_config(BNNConfig, "bnn/synthetic_resnet18", over + ["data.shift_max=30"])
