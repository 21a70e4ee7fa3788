"""BNN: distance, loss, metrics, retrieval, heads and configs pinned to hand-computed values."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from saropt.bnn.config import BNNConfig
from saropt.bnn.loss import bnn_loss, bnn_loss_terms
from saropt.bnn.metrics import (
    best_threshold,
    binary_metrics,
    fpr_at_tpr,
    retrieval_metrics,
    roc_auc,
    roc_curve,
)
from saropt.bnn.model import BNN, create_encoder, distance
from saropt.config import ConfigError, load_config
from saropt.errors import SaroptError


# ---- distance (eq. 1) ---------------------------------------------------------------------------
def test_distance_hand_values():
    z_s = torch.tensor([[1.0, 0, 0, 0], [0.5, 0.5, 0.5, 0.5]])
    z_o = torch.tensor([[0.0, 0, 0, 0], [0.2, 0.1, 0.5, 0.5]])
    # ||(1,0,0,0)|| / sqrt(4) = 0.5 ; ||(0.3,0.4,0,0)|| / 2 = 0.25
    assert distance(z_s, z_o).tolist() == pytest.approx([0.5, 0.25])
    assert distance(torch.ones(1, 50), torch.zeros(1, 50)).item() == pytest.approx(1.0)


def test_distance_gradient_is_finite_at_zero_under_bf16_autocast():
    """Sigmoid codes saturate to exactly 1.0 in bf16, so two codes coincide and d = 0; the
    gradient there must be 0, not NaN (sqrt'(0) is infinite)."""
    fc_s, fc_o = torch.nn.Linear(4, 50), torch.nn.Linear(4, 50)  # the heads' last layers
    for fc, v in ((fc_s, 3.0), (fc_o, 4.0)):
        torch.nn.init.constant_(fc.weight, v)
    x = torch.ones(3, 4)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        z_s, z_o = torch.sigmoid(fc_s(x)), torch.sigmoid(fc_o(x))  # logits ~ 12 and ~ 16
        assert z_s.dtype == torch.bfloat16 and bool((z_s == 1).all() and (z_o == 1).all())
        d = distance(z_s, z_o)
        loss = bnn_loss(d, torch.tensor([1.0, 0.0, 1.0]))
    assert d.tolist() == [0.0, 0.0, 0.0] and loss.item() == pytest.approx(0.5)
    loss.backward()
    for fc in (fc_s, fc_o):
        assert torch.isfinite(fc.weight.grad).all() and torch.isfinite(fc.bias.grad).all()
    x = torch.tensor([[0.3, 0.4]], requires_grad=True)  # away from 0 the gradient is unchanged
    distance(x, torch.zeros(1, 2)).sum().backward()
    torch.testing.assert_close(x.grad, torch.tensor([[0.3, 0.4]]) / 0.5 / 2 ** 0.5)


def test_distance_shape_mismatch_is_an_error():
    with pytest.raises(ValueError, match="code shapes differ"):
        distance(torch.zeros(2, 50), torch.zeros(2, 49))


# ---- loss (eqs. 2-4) ----------------------------------------------------------------------------
def test_loss_hand_values():
    d = torch.tensor([0.1, 0.3, 0.8, 0.6])
    y = torch.tensor([1.0, 1.0, 0.0, 0.0])
    total, l_p, l_n = bnn_loss_terms(d, y, alpha=1.0)
    assert l_p.item() == pytest.approx((0.01 + 0.09) / 2)
    assert l_n.item() == pytest.approx((0.04 + 0.16) / 2)
    assert total.item() == pytest.approx(0.075)
    assert bnn_loss(d, y, alpha=3.0).item() == pytest.approx((0.05 + 3 * 0.1) / 4)


def test_loss_without_positives_or_negatives():
    assert bnn_loss(torch.tensor([0.8, 0.6]), torch.zeros(2)).item() == pytest.approx(0.1)
    assert bnn_loss(torch.tensor([0.1, 0.3]), torch.ones(2)).item() == pytest.approx(0.05)
    assert bnn_loss(torch.zeros(0), torch.zeros(0)).item() == 0.0


def test_loss_gradient_pushes_true_pairs_together_and_false_apart():
    d = torch.tensor([0.4, 0.4], requires_grad=True)
    bnn_loss(d, torch.tensor([1.0, 0.0])).backward()
    assert d.grad[0] > 0 > d.grad[1]


# ---- matching metrics -----------------------------------------------------------------------
D = [0.1, 0.4, 0.6, 0.2, 0.7, 0.3]
Y = [1, 1, 1, 0, 0, 0]


def test_binary_metrics_hand_values():
    m = binary_metrics(D, Y, 0.5)  # predicted true: 0.1 0.4 | 0.2 0.3 -> TP 2 FP 2 TN 1 FN 1
    assert (m["tp"], m["fp"], m["tn"], m["fn"]) == (2, 2, 1, 1)
    assert m["accuracy"] == pytest.approx(0.5)
    assert m["precision"] == pytest.approx(0.5)
    assert m["recall"] == pytest.approx(2 / 3)
    assert binary_metrics([0.5], [1], 0.5)["tp"] == 0  # the rule is d < threshold, strictly


def test_paper_numbers_fit_a_balanced_set_with_tpr_0993_fpr_0335():
    """0.829 / 0.748 / 0.993 (paper 003 Table 1) = a 1:1 set with TPR 0.993 and FPR 0.335."""
    n = 1000
    d = np.r_[np.full(993, 0.2), np.full(7, 0.8), np.full(335, 0.3), np.full(665, 0.9)]
    y = np.r_[np.ones(n), np.zeros(n)]
    m = binary_metrics(d, y, 0.5)
    assert (round(m["accuracy"], 3), round(m["precision"], 3), round(m["recall"], 3)) == \
        (0.829, 0.748, 0.993)
    assert m["accuracy"] == pytest.approx((0.993 + 1 - 0.335) / 2)
    assert m["precision"] == pytest.approx(0.993 / (0.993 + 0.335))


def test_roc_auc_hand_values_and_ties():
    assert roc_auc(D, Y) == pytest.approx(5 / 9)  # 3 + 1 + 1 of 9 (true, false) pairs ordered
    assert roc_auc([0.2, 0.2, 0.5], [1, 0, 0]) == pytest.approx(0.75)  # a tie counts 1/2
    assert roc_auc([0.1, 0.9], [1, 0]) == 1.0
    assert math.isnan(roc_auc([0.1, 0.2], [1, 1]))


def test_roc_curve_and_fpr_at_95_tpr():
    fpr, tpr, thr = roc_curve(D, Y)
    assert fpr.tolist() == pytest.approx([0, 0, 1 / 3, 2 / 3, 2 / 3, 2 / 3, 1])
    assert tpr.tolist() == pytest.approx([0, 1 / 3, 1 / 3, 1 / 3, 2 / 3, 1, 1])
    assert thr[1:].tolist() == pytest.approx([0.1, 0.2, 0.3, 0.4, 0.6, 0.7])
    assert fpr_at_tpr(D, Y, 0.95) == pytest.approx(2 / 3)  # all 3 true pairs need d <= 0.6


def test_best_threshold_maximises_accuracy():
    t, acc = best_threshold(D, Y)
    assert acc == pytest.approx(4 / 6)
    assert t == pytest.approx(0.15)  # first of the two best (0.15 and 0.65)
    assert binary_metrics(D, Y, t)["accuracy"] == pytest.approx(acc)


# ---- retrieval ------------------------------------------------------------------------------
def test_retrieval_hand_values():
    z_s = [[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]]
    z_o = [[0.0, 0.1], [0.9, 0.0], [3.0, 4.0]]  # SAR 2's partner is the farthest: rank 3
    r = retrieval_metrics(z_s, z_o, ks=(1, 5))
    assert r["sar2opt_top1"] == pytest.approx(2 / 3)
    assert r["sar2opt_top5"] == 1.0
    assert r["sar2opt_mrr"] == pytest.approx((1 + 1 + 1 / 3) / 3)
    assert r["opt2sar_top1"] == 1.0 and r["opt2sar_mrr"] == 1.0


def test_retrieval_in_chunks_equals_one_block():
    g = torch.Generator().manual_seed(0)
    z_s = torch.rand(300, 50, generator=g)
    z_o = z_s + 0.3 * torch.rand(300, 50, generator=g)
    assert retrieval_metrics(z_s, z_o, chunk_elems=1000) == retrieval_metrics(z_s, z_o)


# ---- encoders and configs -------------------------------------------------------------------
def test_encoder_head_follows_the_paper_on_an_8x8_map():
    enc = create_encoder("resnet18", 1, image_size=256, conv_width=32)
    assert isinstance(enc.head.pool, torch.nn.AvgPool2d) and enc.head.pool.kernel_size == 4
    assert enc.head.conv.kernel_size == (1, 1)
    assert enc.head.fc.in_features == 32 * 2 * 2  # 8x8 map -> 4x4 pooling stride 4 -> 2x2
    with torch.no_grad():
        z = enc.eval()(torch.rand(1, 1, 256, 256))
    assert z.shape == (1, 50) and 0 < z.min() and z.max() < 1


def test_bnn_has_two_separate_encoders():
    cfg = BNNConfig.model_validate({"model": {"arch": "resnet18", "pool": "adaptive",
                                              "conv_width": 16}, "data": {"patch_size": 64}})
    model = BNN.from_config(cfg)
    assert model.sar.backbone.conv1.in_channels == 1
    assert model.opt.backbone.conv1.in_channels == 3
    sar_ptrs = {p.data_ptr() for p in model.sar.parameters()}
    assert not sar_ptrs & {p.data_ptr() for p in model.opt.parameters()}
    with torch.no_grad():
        d = model.eval()(torch.rand(3, 1, 64, 64), torch.rand(3, 3, 64, 64))
    assert d.shape == (3,) and float(d.max()) <= 1.0


def test_bad_model_settings_are_clear_errors():
    with pytest.raises(SaroptError, match="smaller than the 4x4 pooling"):
        create_encoder("resnet18", 1, image_size=64)
    with pytest.raises(SaroptError, match="not a timm model"):
        create_encoder("resnet_nonexistent", 1)
    enc = create_encoder("resnet18", 3, image_size=64, pool="adaptive", conv_width=8)
    with pytest.raises(ValueError, match="expects Bx3xHxW"):
        enc(torch.rand(1, 1, 64, 64))


@pytest.mark.parametrize("name", ["qxs_resnet50", "qxs_darknet53", "qxs_resnet50_train4000",
                                  "qxs_resnet50_train8000", "qxs_resnet50_train16000"])
def test_paper_configs_hold_the_paper_settings(name):
    cfg = load_config(BNNConfig, f"bnn/{name}")
    assert (cfg.optim.lr, cfg.optim.milestones, cfg.optim.gamma) == (0.01, [30, 100], 0.5)
    assert (cfg.trainer.max_epochs, cfg.data.batch_size, cfg.data.neg_per_pos) == (200, 20, 1.0)
    assert (cfg.model.code_dim, cfg.alpha, cfg.threshold, cfg.model.pool) == (50, 1.0, 0.5,
                                                                             "paper")
    assert cfg.model.arch == ("darknet53" if "darknet" in name else "resnet50")
    assert (cfg.optim.name, cfg.optim.momentum, cfg.model.head_init_gain) == ("sgd", 0.9, 1.0)
    size = name.rpartition("train")[2]
    assert cfg.data.train_size == (int(size) if size.isdigit() else None)


def test_head_init_gain_scales_only_the_code_layer():
    torch.manual_seed(0)
    a = create_encoder("test_resnet", 1, image_size=32, pool="adaptive")
    torch.manual_seed(0)
    b = create_encoder("test_resnet", 1, image_size=32, pool="adaptive", head_init_gain=10.0)
    torch.testing.assert_close(b.head.fc.weight, 10 * a.head.fc.weight)
    torch.testing.assert_close(b.head.fc.bias, a.head.fc.bias)
    torch.testing.assert_close(b.head.conv.weight, a.head.conv.weight)
    x = torch.rand(8, 1, 32, 32, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():  # the codes depend more on the input
        assert b.train()(x).std(0).mean() > 3 * a.train()(x).std(0).mean()


def test_config_errors_name_the_key():
    with pytest.raises(ConfigError, match="optim.lr_rate: unknown key"):
        load_config(BNNConfig, "bnn/synthetic_resnet18", ["optim.lr_rate=1"])
    with pytest.raises(ConfigError, match="opt_mean"):
        load_config(BNNConfig, None, ["model.opt_mean=[0.5]"])


def test_schedule_halves_the_learning_rate_at_30_and_100():
    from saropt.bnn.module import BNNModule

    cfg = load_config(BNNConfig, "bnn/synthetic_resnet18", ["model.conv_width=8"])
    module = BNNModule(cfg.model_dump(mode="json"))
    module.model = torch.nn.Linear(2, 2)  # the schedule, not 22M parameters, is under test
    conf = module.configure_optimizers()
    opt, sched = conf["optimizer"], conf["lr_scheduler"]["scheduler"]
    assert isinstance(opt, torch.optim.SGD) and opt.defaults["momentum"] == 0.9
    lrs = []
    for _ in range(120):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert (lrs[29], lrs[30], lrs[99], lrs[100]) == pytest.approx((0.01, 0.005, 0.005, 0.0025))


def test_train_cli_fails_fast_on_missing_data(tmp_path, capsys):
    from saropt.cli import main

    assert main(["bnn", "train", "bnn/qxs_resnet50", f"out_dir={tmp_path}"]) == 2
    assert "data.root is not set" in capsys.readouterr().err
    assert main(["bnn", "train", "bnn/qxs_resnet50", f"data.root={tmp_path}",
                 f"data.split={tmp_path / 'nope'}", f"out_dir={tmp_path}"]) == 2
    assert "is not a folder" in capsys.readouterr().err
