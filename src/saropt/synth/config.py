"""``WorldConfig``: the seed-independent knobs of the synthetic SAR-optical world."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from saropt.config import Config, ordered_pair

#: class codes of ``ScenePair.classes`` (uint8), documented in docs/synth.md
CLASS_CODES: dict[str, int] = {"sea": 0, "bare": 1, "vegetation": 2, "road": 3, "building": 4,
                               "pier": 5, "ship": 6}
SEA, BARE, VEGETATION, ROAD, BUILDING, PIER, SHIP = range(7)


class WorldConfig(Config):
    """Everything that shapes a scene except the seed (sizes come with ``make_scene_pair``).

    Units are in the field names (``_m`` metres, ``_deg`` degrees, ``_px`` pixels, ``_dn``
    digital numbers, ``_db`` dB); fractions are 0..1. ``sigma0`` is the linear backscatter.
    """

    # ground
    land_fraction: float = Field(0.55, ge=0.05, le=0.95, description="share of land")
    urban_fraction: float = Field(0.55, ge=0.0, le=1.0, description="share of land built up")
    vegetation_fraction: float = Field(0.45, ge=0.0, le=1.0,
                                       description="share of non-urban land with vegetation")
    road_spacing_m: ordered_pair(ge=20, le=10_000) = (110.0, 240.0)
    road_width_m: ordered_pair(ge=1, le=100) = (7.0, 13.0)
    building_density: float = Field(2.0, ge=0.0, le=3.0,
                                    description="share of urban lots built on, times 0.35")
    building_height_median_m: float = Field(10.0, gt=0, le=1000)
    building_height_max_m: float = Field(60.0, gt=0, le=1000)
    harbour: bool = True
    # ships
    offshore_ships_per_km2: float = Field(4.0, ge=0.0)
    mooring_probability: float = Field(0.6, ge=0.0, le=1.0,
                                       description="chance a berth slot holds a ship")
    ship_length_m: ordered_pair(gt=0, le=1000) = (10.0, 300.0)
    ship_length_median_m: float = Field(45.0, gt=0, le=1000)
    # sea
    calm_sea_patches: int = Field(2, ge=0, description="texture-less open-sea areas to plant")
    calm_sea_size: ordered_pair(gt=0, le=1) = (0.10, 0.2)  # fractions of the scene side
    # optical
    sun_azimuth_deg: float = 150.0
    sun_elevation_deg: float = Field(50.0, gt=0, le=90)
    # SAR
    looks: float = Field(2.0, gt=0, description="number of looks L of the Gamma speckle")
    incidence_deg: float = Field(35.0, gt=5, lt=80)
    sensor_side: str = Field("left", pattern="^(left|right)$",
                             description="side the radar looks from (range increases away)")
    amplitude_scale: float = Field(1000.0, gt=0, description="uint16 DN for sigma0 = 1")
    sar8_percentiles: ordered_pair(ge=0, le=100, strict=True) = (1.0, 99.5)
    sar8_dynamic_range_db: float = Field(45.0, gt=0)
    sar8_noise_floor_dn: float = Field(8.0, ge=0, description="DN below which a pixel holds no "
                                       "signal (left out of the 8-bit percentiles)")
    sidelobe_length: int = Field(48, ge=0)
    # geometry of the optical grid relative to the SAR grid
    distortion_strength: float = Field(1.0, ge=0.0, le=3.0)
    rotation_deg: float = Field(4.0, ge=0, le=180, description="largest rotation, degrees")
    scale_jitter: float = Field(0.04, ge=0, lt=1, description="largest relative scale change")
    shear: float = Field(0.02, ge=0, lt=1)
    nonlinear_px: float = Field(3.0, ge=0)
    # tie points
    subregion_grid: tuple[Annotated[int, Field(ge=1, le=100)],
                          Annotated[int, Field(ge=1, le=100)]] = (3, 3)  # rows, columns
    tie_points_per_subregion: int = Field(12, ge=3)
    tie_noise_px: float = Field(0.5, ge=0.0)
    tie_outlier_fraction: float = Field(0.05, ge=0.0, le=0.5)
    tie_outlier_offset_px: ordered_pair(ge=0) = (15.0, 60.0)
