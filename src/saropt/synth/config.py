"""``WorldConfig``: the seed-independent knobs of the synthetic SAR-optical world."""

from __future__ import annotations

from pydantic import Field

from saropt.config import Config

#: class codes of ``ScenePair.classes`` (uint8), documented in docs/synth.md
CLASS_CODES: dict[str, int] = {"sea": 0, "bare": 1, "vegetation": 2, "road": 3, "building": 4,
                               "pier": 5, "ship": 6}
SEA, BARE, VEGETATION, ROAD, BUILDING, PIER, SHIP = range(7)


class WorldConfig(Config):
    """Everything that shapes a scene except the seed (sizes come with ``make_scene_pair``)."""

    # ground
    land_fraction: float = Field(0.55, ge=0.05, le=0.95, description="share of land")
    urban_fraction: float = Field(0.55, ge=0.0, le=1.0, description="share of land built up")
    vegetation_fraction: float = Field(0.45, ge=0.0, le=1.0,
                                       description="share of non-urban land with vegetation")
    road_spacing_m: tuple[float, float] = (110.0, 240.0)
    road_width_m: tuple[float, float] = (7.0, 13.0)
    building_density: float = Field(2.0, ge=0.0, le=3.0,
                                    description="share of urban lots built on, times 0.35")
    building_height_median_m: float = 10.0
    building_height_max_m: float = 60.0
    harbour: bool = True
    # ships
    offshore_ships_per_km2: float = Field(4.0, ge=0.0)
    mooring_probability: float = Field(0.6, ge=0.0, le=1.0,
                                       description="chance a berth slot holds a ship")
    ship_length_m: tuple[float, float] = (10.0, 300.0)
    ship_length_median_m: float = 45.0
    # sea
    calm_sea_patches: int = Field(2, ge=0, description="texture-less open-sea areas to plant")
    calm_sea_size: tuple[float, float] = (0.10, 0.2)
    # optical
    sun_azimuth_deg: float = 150.0
    sun_elevation_deg: float = 50.0
    # SAR
    looks: float = Field(2.0, gt=0, description="number of looks L of the Gamma speckle")
    incidence_deg: float = Field(35.0, gt=5, lt=80)
    sensor_side: str = Field("left", pattern="^(left|right)$",
                             description="side the radar looks from (range increases away)")
    amplitude_scale: float = Field(1000.0, gt=0, description="uint16 DN for sigma0 = 1")
    sar8_percentiles: tuple[float, float] = (1.0, 99.5)
    sar8_dynamic_range_db: float = Field(45.0, gt=0)
    sar8_noise_floor_dn: float = Field(8.0, ge=0, description="DN below which a pixel holds no "
                                       "signal (left out of the 8-bit percentiles)")
    sidelobe_length: int = Field(48, ge=0)
    # geometry of the optical grid relative to the SAR grid
    distortion_strength: float = Field(1.0, ge=0.0, le=3.0)
    rotation_deg: float = 4.0
    scale_jitter: float = 0.04
    shear: float = 0.02
    nonlinear_px: float = 3.0
    # tie points
    subregion_grid: tuple[int, int] = (3, 3)
    tie_points_per_subregion: int = Field(12, ge=3)
    tie_noise_px: float = Field(0.5, ge=0.0)
    tie_outlier_fraction: float = Field(0.05, ge=0.0, le=0.5)
    tie_outlier_offset_px: tuple[float, float] = (15.0, 60.0)
