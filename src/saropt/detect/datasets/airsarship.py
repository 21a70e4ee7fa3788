"""AIR-SARShip-1.0 and -2.0 (Sun et al., J. Radars 2019; Gaofen-3): 16-bit TIFF scenes + XML.

Layouts under ``root`` (scene images ``*.tif``/``*.tiff`` anywhere below it): the release
layout, ``AIR-SARShip-X-data/<id>.tiff`` with its XML in the sibling ``AIR-SARShip-X-xml/``
(``<id>-label.xml`` in 1.0, ``<id>.xml`` in 2.0); or an XML of the same id beside the scene or
in a sibling ``Annotations/``, ``annotations/``, ``labels/`` or ``xml/`` folder. The XML is
VOC-like (``<object><bndbox>``) or Gaofen-style (``<object>...<points><point>x,y</point>...``);
polygons become horizontal boxes.

Split (paper 003 4.1: 21 of 31 scenes / 210 of 300 images, chosen at random, list unpublished):
``root/train.txt`` and ``root/test.txt`` (scene ids such as ``SARShip-1.0-3``, one a line; only
a known image suffix is stripped) when present, else a seeded random split of
the sorted scenes with those proportions (``seed=0``), documented in docs/detect.md.

16-bit -> 8-bit: a linear stretch between the scene's ``percentiles`` (default 0.5 and 99.5, from a
decimated read of the whole scene, so every tile of a scene shares one mapping), clipped to
[0, 255]; pixels equal to the file's nodata value, and NaN (float scenes), are left out of the
percentiles and read as 0 (black, no return; a nodata of 65535 outside a swath would otherwise
stretch to white). Float scenes (calibrated sigma0) are stretched the same way.
``percentiles=None`` maps the full 16-bit range (value / 257). 8-bit files are read as
they are. Scenes are cut into ``tile`` x ``tile`` tiles with ``overlap`` (512, 0.5 as in the
paper; :mod:`saropt.detect.tiling`); ``tile=None`` reads whole scenes.
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from saropt.detect.datasets.base import (
    DetectionDataset,
    Record,
    Transform,
    as_boxes,
    drop_degenerate,
    read_id_list,
    select_listed,
    strip_image_suffix,
)
from saropt.detect.datasets.voc import parse_voc_xml
from saropt.detect.tiling import Window, boxes_in_window, tile_windows
from saropt.errors import DataError

log = logging.getLogger(__name__)

PAPER_SPLIT = {"1.0": (21, 31), "2.0": (210, 300)}
#: tile image id = scene id * TILE_ID_BASE + tile index, never equal to a scene id (1, 2, ...),
#: so results on tiles and results on whole scenes cannot be mistaken for each other
TILE_ID_BASE = 100_000
XML_DIRS = ("", "Annotations", "annotations", "labels", "xml")
LAYOUTS = ("release (AIR-SARShip-X-data/<id>.tiff + AIR-SARShip-X-xml/<id>.xml or "
           "<id>-label.xml), flat (<id>.tiff + <id>.xml side by side), or scenes with "
           "Annotations/, annotations/, labels/ or xml/ beside them")


def scale_to_uint8(array: np.ndarray, low: float, high: float) -> np.ndarray:
    """Linear stretch of ``[low, high]`` onto ``[0, 255]`` as uint8, rounded and clipped; NaN -> 0.

    A range narrower than 1e-6 is widened to 1e-6 (no division by zero).
    """
    scaled = (array.astype(np.float32) - low) * (255.0 / max(high - low, 1e-6))
    return np.clip(np.rint(np.nan_to_num(scaled, nan=0.0)), 0, 255).astype(np.uint8)


def scene_range(path: Path, percentiles: tuple[float, float] | None, max_side: int = 1024
                ) -> tuple[float, float]:
    """The ``(low, high)`` input values a scene's stretch maps to 0 and 255 (module docstring).

    uint8 scenes: ``(0, 255)``; ``percentiles=None`` or a scene with no valid pixel:
    ``(0, 65535)``; else the ``percentiles`` (in %) of band 1 read decimated to at most
    ``max_side`` px a side (rasterio), nodata and NaN left out. A flat scene gets ``high =
    low + 1``.
    """
    import rasterio

    with _Quiet(), rasterio.open(path) as src:
        if src.dtypes[0] == "uint8":
            return 0.0, 255.0
        if percentiles is None:
            return 0.0, 65535.0
        f = max(1, int(np.ceil(max(src.width, src.height) / max_side)))
        small = src.read(1, out_shape=(max(1, src.height // f), max(1, src.width // f)))
        if src.nodata is not None:  # e.g. 65535 outside a Sentinel-1 GRD swath
            small = small[small != src.nodata]
    small = small[np.isfinite(small)]  # NaN: no data in calibrated float scenes
    if small.size == 0:
        return 0.0, 65535.0
    lo, hi = np.percentile(small, percentiles)
    # a flat scene gets a range of 1; float scenes (sigma0 in 0..0.5) keep their own range
    return float(lo), float(hi if hi > lo else lo + 1)


#: GDAL block cache for scene reads (MB). GDAL's default, 5% of the machine's memory, fills
#: with decoded blocks during the decimated whole-scene read: 1.7 GB peak on a 26102 x 16705
#: tiled scene on a 23 GB machine, and more on larger machines.
GDAL_CACHE_MB = 128


class _Quiet:
    """Silence rasterio's not-georeferenced warning and bound GDAL's cache to :data:`GDAL_CACHE_MB`.

    A context manager around ``rasterio.open`` of plain (not georeferenced) TIFF scenes.
    """

    def __enter__(self) -> None:
        import rasterio
        import rasterio.errors

        self._ctx = warnings.catch_warnings()
        self._ctx.__enter__()
        warnings.simplefilter("ignore", rasterio.errors.NotGeoreferencedWarning)
        self._env = rasterio.Env(GDAL_CACHEMAX=GDAL_CACHE_MB)
        self._env.__enter__()

    def __exit__(self, *exc: object) -> None:
        self._env.__exit__(*exc)
        self._ctx.__exit__(*exc)


def _check_options(tile: Any, overlap: Any, min_visible: Any, percentiles: Any) -> None:
    if tile is not None and (not isinstance(tile, int) or isinstance(tile, bool) or tile < 1):
        raise DataError(f"AIR-SARShip tile must be a positive integer or null, got {tile!r}")
    if not isinstance(overlap, (int, float)) or not 0 <= overlap < 1:
        raise DataError(f"AIR-SARShip overlap must be in [0, 1), got {overlap!r}")
    if not isinstance(min_visible, (int, float)) or not 0 < min_visible <= 1:
        raise DataError(f"AIR-SARShip min_visible must be in (0, 1], got {min_visible!r}")
    if percentiles is not None:
        ok = (isinstance(percentiles, (list, tuple)) and len(percentiles) == 2
              and all(isinstance(v, (int, float)) for v in percentiles)
              and 0 <= percentiles[0] < percentiles[1] <= 100)
        if not ok:
            raise DataError("AIR-SARShip percentiles must be [low, high] with 0 <= low < high "
                            f"<= 100, or null, got {percentiles!r}")


class AIRSARShip(DetectionDataset):
    """AIR-SARShip scenes as tiles; one record per tile (``meta["scene_file"]``, ``window``).

    Layouts, split, 16-to-8-bit stretch and tiling in the module docstring. Tiles are
    ``tile`` px squares (last ones flush with the scene edge) overlapping by ``overlap`` (a
    fraction); a ship is a tile's target when at least ``min_visible`` of its box area lies in
    the tile. Tile image ids are ``scene id * TILE_ID_BASE + tile index``; scene ids are
    1-based positions among all the root's scenes, the same in every split.

    Args:
        root: folder holding the scenes (``*.tif``/``*.tiff`` anywhere below it) and XMLs.
        version: ``"1.0"`` or ``"2.0"`` (the paper's split proportions differ).
        split: ``train``, ``test`` or ``all``.
        tile: tile side in pixels (paper 003 section 4.1: 512), or None for whole scenes.
        overlap: tile overlap fraction in [0, 1) (paper: 0.5).
        min_visible: fraction of a box's area inside a tile for it to count there, in (0, 1].
        percentiles: low and high percentiles (%) of the stretch, or None for value / 257.
        seed: seed of the random split when no ``train.txt`` / ``test.txt`` is given.
        in_chans: 1 (grey) or 3 (grey repeated).
        transforms: applied to each sample.

    Raises:
        DataError: a bad option, no scenes, a scene without XML, an unreadable TIFF, or a
            split that selects no scene.
    """

    name = "air-sarship"

    def __init__(self, root: str | Path, version: str = "1.0", split: str = "train",
                 tile: int | None = 512, overlap: float = 0.5, min_visible: float = 0.5,
                 percentiles: tuple[float, float] | None = (0.5, 99.5), seed: int = 0,
                 in_chans: int = 1, transforms: Transform | None = None) -> None:
        super().__init__(in_chans, transforms)
        if version not in PAPER_SPLIT:
            raise DataError(f"AIR-SARShip version must be '1.0' or '2.0', got {version!r}")
        if split not in ("train", "test", "all"):
            raise DataError(f"AIR-SARShip split must be train, test or all, got {split!r}")
        _check_options(tile, overlap, min_visible, percentiles)
        self.root, self.version, self.split = Path(root), version, split
        self.tile, self.overlap, self.min_visible = tile, overlap, min_visible
        self.percentiles, self.seed = percentiles, seed
        self._ranges: dict[Path, tuple[float, float]] = {}
        # scene id = position among all scenes of the root (1-based), the same in every split,
        # so results written on one split never score as other scenes' on another
        number = {p: i + 1 for i, p in enumerate(self._all_scenes())}
        self.scenes = [self._scene(number[p], p) for p in self._split_scenes()]
        self.records = self._tile_records()

    # ----------------------------------------------------------------- scenes and split
    def _all_scenes(self) -> list[Path]:
        if not self.root.is_dir():
            raise DataError(f"AIR-SARShip root {self.root} does not exist")
        found = sorted(p for p in self.root.rglob("*")
                       if p.suffix.lower() in (".tif", ".tiff") and not p.name.startswith("."))
        # a root holding both releases: the other version's scenes are not this dataset's
        other = next(v for v in PAPER_SPLIT if v != self.version)
        mine = [p for p in found if not any(f"sarship-{other}" in part.lower()
                                            for part in p.relative_to(self.root).parts)]
        if len(mine) < len(found):
            log.warning("%s: left out %d scene(s) of AIR-SARShip-%s", self.root,
                     len(found) - len(mine), other)
            found = mine
        if not found:
            raise DataError(f"{self.root}: no .tif/.tiff scenes; AIR-SARShip layouts looked "
                            f"for: {LAYOUTS}")
        return found

    def _split_scenes(self) -> list[Path]:
        scenes = self._all_scenes()
        if self.split == "all":
            return scenes
        for listed in (self.root / f"{self.split}.txt",
                       self.root / "ImageSets" / "Main" / f"{self.split}.txt"):
            if listed.is_file():
                return select_listed(scenes, lambda p: strip_image_suffix(p.name),
                                     read_id_list(listed), listed)
        n_train, n_total = PAPER_SPLIT[self.version]
        order = np.random.default_rng(self.seed).permutation(len(scenes))
        n = int(round(len(scenes) * n_train / n_total))
        chosen = set(order[:n].tolist() if self.split == "train" else order[n:].tolist())
        picked = [p for i, p in enumerate(scenes) if i in chosen]
        if not picked:
            raise DataError(f"{self.root}: the seeded {self.split} split of {len(scenes)} "
                            f"scene(s) selects none; use --split all or write "
                            f"{self.split}.txt (scene ids, one a line)")
        return picked

    def _xml_for(self, image: Path) -> Path:
        """The scene's XML annotation file.

        ``<id>.xml``, ``<id>-label.xml`` or ``<id>_label.xml`` beside the scene, in an
        annotation folder beside it or its parent, or in the release's ``<name>-xml/`` twin of
        the ``<name>-data/`` folder holding the scene.
        """
        folders = [image.parent / sub for sub in XML_DIRS]
        folders += [image.parent.parent / sub for sub in XML_DIRS[1:]]
        if image.parent.name.lower().endswith("-data"):
            folders.append(image.parent.with_name(image.parent.name[:-5] + "-xml"))
        up = image.parent.parent
        if up == self.root or self.root in up.parents:  # never look outside the root
            folders += sorted(p for p in up.glob("*[xX][mM][lL]") if p.is_dir())
        names = [f"{image.stem}{tail}.xml" for tail in ("", "-label", "_label")]
        for folder in folders:
            for name in names:
                if (folder / name).is_file():
                    return folder / name
        raise DataError(f"AIR-SARShip scene {image} has no XML annotation ({' or '.join(names)}"
                        f"); layouts looked for: {LAYOUTS}")

    def _scene(self, scene_id: int, path: Path) -> dict:
        import rasterio

        xml = self._xml_for(path)
        try:
            with _Quiet(), rasterio.open(path) as src:
                width, height = src.width, src.height
        except rasterio.errors.RasterioIOError as err:
            raise DataError(f"{path}: cannot read TIFF ({err})") from None
        ann = parse_voc_xml(xml)
        boxes = as_boxes([o.box for o in ann.objects])
        boxes[:, 0::2] = boxes[:, 0::2].clip(0, width)
        boxes[:, 1::2] = boxes[:, 1::2].clip(0, height)
        boxes, _ = drop_degenerate(boxes, np.ones(len(boxes), np.int64), str(xml))
        return {"id": scene_id, "path": path, "width": width, "height": height, "boxes": boxes}

    # ----------------------------------------------------------------- tiles
    def _tile_records(self) -> list[Record]:
        records: list[Record] = []
        for sc in self.scenes:
            windows: list[Window] = ([(0, 0, sc["width"], sc["height"])] if self.tile is None
                                     else tile_windows(sc["width"], sc["height"], self.tile,
                                                       self.overlap))
            for k, win in enumerate(windows):
                boxes, _ = boxes_in_window(sc["boxes"], win, self.min_visible)
                name = f"{sc['path'].stem}_{win[0]}_{win[1]}.png"
                meta = {"scene": None, "scene_file": sc["path"].name, "scene_id": sc["id"],
                        "x0": win[0], "y0": win[1]}
                records.append(Record(sc["id"] * TILE_ID_BASE + k, name, sc["path"],
                                      win[2] - win[0], win[3] - win[1], boxes,
                                      np.ones(len(boxes), np.int64), window=win, meta=meta))
        return records

    def load_image(self, rec: Record) -> np.ndarray:
        """The record's window of its scene stretched to uint8 ``(H, W)`` or ``(H, W, 3)``.

        Read with rasterio (window only); the stretch is the scene's :func:`scene_range`,
        computed once per scene; nodata and NaN pixels of non-8-bit scenes are 0.
        """
        import rasterio
        from rasterio.windows import Window as RWindow

        if rec.path not in self._ranges:
            self._ranges[rec.path] = scene_range(rec.path, self.percentiles)
        x0, y0, x1, y1 = rec.window
        with _Quiet(), rasterio.open(rec.path) as src:
            band = src.read(1, window=RWindow(x0, y0, x1 - x0, y1 - y0))
            nodata = src.nodata
        img = scale_to_uint8(band, *self._ranges[rec.path])
        if src.dtypes[0] != "uint8":  # no data is no return (65535 would stretch to white)
            img[~np.isfinite(band) | ((band == nodata) if nodata is not None else False)] = 0
        return img if self.in_chans == 1 else np.repeat(img[:, :, None], 3, axis=2)

    def scene_record(self, scene_id: int) -> Record:
        """A whole scene as one record, its ``window`` the full scene.

        Crop the window before loading a scene-size image. Raises ``StopIteration`` for a
        scene id not in this split.
        """
        sc = next(s for s in self.scenes if s["id"] == scene_id)
        return Record(scene_id, sc["path"].name, sc["path"], sc["width"], sc["height"],
                      sc["boxes"], np.ones(len(sc["boxes"]), np.int64),
                      window=(0, 0, sc["width"], sc["height"]))

    def load_scene(self, scene_id: int) -> np.ndarray:
        """A whole scene as uint8 ``(H, W)`` (same stretch as its tiles), held whole in memory."""
        return self.load_image(self.scene_record(scene_id))

    def tile_to_scene(self) -> dict[int, tuple[int, Window]]:
        """Tile image id -> (scene id, window), for :func:`tiling.tile_results_to_scene`."""
        return {r.image_id: (r.meta["scene_id"], r.window) for r in self.records}

    def scene_coco(self) -> dict:
        """Scene-level COCO ground truth: the split's scenes and all their ships, in scene pixels.

        Scene ids as in :meth:`tile_to_scene`; no ignore regions.
        """
        images = [{"id": s["id"], "file_name": s["path"].name, "width": s["width"],
                   "height": s["height"]} for s in self.scenes]
        anns = [{"id": k + 1, "image_id": s["id"], "category_id": 1,
                 "bbox": [float(b[0]), float(b[1]), float(b[2] - b[0]), float(b[3] - b[1])],
                 "area": float((b[2] - b[0]) * (b[3] - b[1])), "iscrowd": 0}
                for k, (s, b) in enumerate((s, b) for s in self.scenes for b in s["boxes"])]
        return {"images": images, "annotations": anns, "categories": self.categories}
