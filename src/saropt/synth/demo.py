"""Demo stage: render a small world, show it, and write the data later stages use.

Written to ``ctx.artifacts``: ``scene_dir``, ``qxs_root``, ``ships_root``.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

#: demo sizes: one 1024 scene for the figures, QXS pairs and ship chips for later stages
DEMO = {"scene_size": 1024, "qxs_pairs": 400, "qxs_scene_size": 2048, "ship_chip": 256,
        "ship_train": 60, "ship_test": 20}


def run(ctx: Any) -> None:
    """Demo stage: one 1024 px scene with figures, 400 QXS-layout pairs and ship chip sets."""
    from saropt.synth import make_scene_pair, write_qxs_pairs, write_scene, write_ship_datasets
    from saropt.synth.figures import figure_panels

    t0 = time.perf_counter()
    pair = make_scene_pair(DEMO["scene_size"], ctx.seed)
    t_render = time.perf_counter() - t0
    scene_dir = write_scene(pair, ctx.path("synth", "scene", "truth.json").parent)
    ctx.report.section("Synthetic world",
                       "A scene model (sea, coast, harbour with piers, roads, buildings, "
                       "vegetation, ships) rendered as a 1 m SAR image (layover, radar shadow, "
                       "double bounce, side-lobes, Gamma speckle) and as an optical image on its "
                       "own, distorted grid (affine + mild non-linear term) with exact truth.")
    ctx.report.figure(figure_panels(pair), "synth_scene.png",
                      f"{DEMO['scene_size']} px scene, seed {ctx.seed}: SAR, optical, warped "
                      "optical, checkerboard, class map, tie points")
    t1 = time.perf_counter()
    qxs_root = write_qxs_pairs(ctx.path("synth", "qxs", "manifest.csv").parent,
                               DEMO["qxs_pairs"], ctx.seed,
                               scene_size=DEMO["qxs_scene_size"], progress=False)
    t_qxs = time.perf_counter() - t1
    t2 = time.perf_counter()
    ships_root = write_ship_datasets(ctx.path("synth", "ships", "summary.json").parent, ctx.seed,
                                     DEMO["ship_train"], DEMO["ship_test"],
                                     image_size=DEMO["ship_chip"], progress=False)
    t_ships = time.perf_counter() - t2
    ties = pair.tie_points
    inl = ~ties["is_outlier"]
    err = np.linalg.norm(pair.mapping.sar_to_opt(np.stack([ties["sar_x"], ties["sar_y"]], 1))
                         - np.stack([ties["opt_x"], ties["opt_y"]], 1), axis=1)
    ctx.report.table([
        ("scene", f"SAR {pair.shape[1]}x{pair.shape[0]}, optical {pair.optical.shape[1]}x"
                  f"{pair.optical.shape[0]}, {len(pair.ships)} ships", f"{t_render:.1f}"),
        ("tie points", f"{len(ties)} ({int((~inl).sum())} outliers), inlier error "
                       f"{float(np.sqrt((err[inl] ** 2).mean())):.2f} px RMS", ""),
        ("QXS pairs", f"{DEMO['qxs_pairs']} x 256 px in {qxs_root}", f"{t_qxs:.1f}"),
        ("ship sets", f"{DEMO['ship_train']} train / {DEMO['ship_test']} test chips of "
                      f"{DEMO['ship_chip']} px (HRSID, SSDD, DOTA layouts)", f"{t_ships:.1f}"),
    ], ["item", "what", "seconds"])
    ctx.artifacts.update(scene_dir=scene_dir, qxs_root=qxs_root, ships_root=ships_root,
                         hrsid_root=ships_root / "hrsid", ssdd_root=ships_root / "ssdd",
                         dota_root=ships_root / "dota", synth_pair=pair)
