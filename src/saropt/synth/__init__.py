"""The synthetic SAR-optical world, for tests and demos without real data.

A scene model rendered as SAR and as optical, with exact geometric truth, and writers in the
layouts of real datasets (QXS-SAROPT, HRSID, SSDD, DOTA). Not from the papers; see
``docs/synth.md``.
"""

from saropt.synth.config import CLASS_CODES, WorldConfig
from saropt.synth.geometry import SceneMapping, warp_opt_to_sar
from saropt.synth.world import ScenePair, make_scene_pair

__all__ = ["CLASS_CODES", "SceneMapping", "ScenePair", "WorldConfig", "make_scene_pair",
           "warp_opt_to_sar", "write_qxs_pairs", "write_scene", "write_ship_datasets"]


def __getattr__(name: str):  # writers import rasterio/PIL lazily
    if name in ("write_scene", "write_qxs_pairs"):
        from saropt.synth import writers
        return getattr(writers, name)
    if name == "write_ship_datasets":
        from saropt.synth import ships
        return ships.write_ship_datasets
    raise AttributeError(name)
