"""Shared fixtures: a small rendered scene pair and small synthetic datasets (session-scoped, so
each is rendered once per test run). Any part's tests may use them. Also the per-test timeout of
tests marked ``slow`` (docs/testing.md)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

#: Per-test limit (s) of tests marked ``slow`` (the others get pyproject's ``timeout``, 60 s).
#: The slowest (test_detect_synth_ships, test_ddp's BNN launch) take 25-50 s on 2 shared cores.
SLOW_TIMEOUT = 300


def pytest_collection_modifyitems(config, items):
    """Give ``slow`` tests a ``SLOW_TIMEOUT`` limit, unless a test sets its own or ``--timeout``
    (or ``PYTEST_TIMEOUT``) sets one for every test."""
    if not config.pluginmanager.hasplugin("timeout") or "PYTEST_TIMEOUT" in os.environ:
        return
    if config.getoption("timeout") is not None:
        return
    for item in items:
        if item.get_closest_marker("slow") and not item.get_closest_marker("timeout"):
            item.add_marker(pytest.mark.timeout(SLOW_TIMEOUT))


@pytest.fixture(scope="session")
def synth_pair():
    """A 384x384 ``saropt.synth.ScenePair`` (seed 7) with land, sea, a harbour and ships
    (offshore ship density raised so that the small scene holds several)."""
    from saropt.synth import WorldConfig, make_scene_pair

    return make_scene_pair(384, 7, WorldConfig(offshore_ships_per_km2=40))


@pytest.fixture(scope="session")
def synth_scene_dir(tmp_path_factory, synth_pair) -> Path:
    """``synth_pair`` written by ``write_scene``: sar.tif, optical.tif, tiepoints.csv, ..."""
    from saropt.synth import write_scene

    return write_scene(synth_pair, tmp_path_factory.mktemp("synth_scene"))


@pytest.fixture(scope="session")
def synth_qxs_root(tmp_path_factory) -> Path:
    """24 co-registered 64x64 pairs in the QXS layout (``opt_64_oc_0.2/``, ``sar_64_oc_0.2/``,
    ``manifest.csv``), cut from two 256x256 scenes."""
    from saropt.synth import write_qxs_pairs

    return write_qxs_pairs(tmp_path_factory.mktemp("synth_qxs"), 24, seed=3, patch_size=64,
                           scene_size=256, progress=False)


@pytest.fixture(scope="session")
def synth_qxs_root_256(tmp_path_factory) -> Path:
    """12 pairs of the real QXS size: ``opt_256_oc_0.2/`` and ``sar_256_oc_0.2/`` 256x256."""
    from saropt.synth import write_qxs_pairs

    return write_qxs_pairs(tmp_path_factory.mktemp("synth_qxs256"), 12, seed=4, patch_size=256,
                           scene_size=768, progress=False)


@pytest.fixture(scope="session")
def synth_ships_root(tmp_path_factory) -> Path:
    """Ship detection sets (``hrsid/``, ``ssdd/``, ``dota/``, ``summary.json``): 10 train and 5
    test chips of 128x128 cut from 384 px scenes, with ``hrsid/land_masks/``."""
    from saropt.synth import write_ship_datasets

    return write_ship_datasets(tmp_path_factory.mktemp("synth_ships"), seed=1, n_train=10,
                               n_test=5, image_size=128, scene_size=384, progress=False)


@pytest.fixture
def one_torch_thread():
    """One intra-op thread: much faster than two when the 2 shared cores are oversubscribed."""
    import torch

    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


@pytest.fixture(scope="session")
def tiny_bnn_run(tmp_path_factory, synth_qxs_root):
    """A BNN (test_resnet, 8-wide head) trained 2 epochs x 2 batches on ``synth_qxs_root`` with a
    12/4/8 split: ``(run folder, split folder, train args)``. For tests of files and resume, not
    of accuracy."""
    from saropt.cli import main
    from saropt.data import make_split

    base = tmp_path_factory.mktemp("tiny_bnn")
    make_split(synth_qxs_root, base / "split", train=12, val=4, test=8,
               sar_dir="sar_64_oc_0.2", opt_dir="opt_64_oc_0.2")
    args = ["bnn/synthetic_resnet18", "model.arch=test_resnet", "model.conv_width=8",
            "data.patch_size=64", "data.sar_dir=sar_64_oc_0.2", "data.opt_dir=opt_64_oc_0.2",
            "data.batch_size=4", "trainer.limit_train_batches=2", "trainer.limit_val_batches=1",
            "trainer.progress_bar=false", "trainer.precision=32-true",
            "trainer.channels_last=false", "trainer.log_every_n_steps=1",
            f"data.root={synth_qxs_root}", f"data.split={base / 'split'}"]
    assert main(["bnn", "train", *args, "trainer.max_epochs=2", f"out_dir={base / 'run'}"]) == 0
    return base / "run", base / "split", args
