"""Ship detection sets cut from rendered scenes, in the layouts of real datasets.

- ``hrsid/``: SAR chips ``JPEGImages/*.jpg`` (grey stored as 3 equal channels, like HRSID),
  ``annotations/train2017.json`` and ``test2017.json`` (COCO, category 1 ``ship``; each image
  entry has ``"scene": "inshore" | "offshore"``), ``land_masks/<stem>.png`` (255 = land).
- ``ssdd/``: the same SAR chips as ``JPEGImages/NNNNNN.jpg`` with VOC XML ``Annotations/``;
  numbers ending in 1 or 9 are exactly the test chips (the SSDD rule), and
  ``ImageSets/Main/{train,test,test_inshore,test_offshore}.txt`` list them.
- ``dota/``: the optical view of the same chips, ``images/*.png`` + ``labelTxt/*.txt`` (DOTA v1:
  ``imagesource:``, ``gsd:`` header lines, then ``x1 y1 ... x4 y4 ship 0`` oriented boxes).

Train and test chips come from different scenes (no leakage). Chips never cut a ship; a share of
chips hold no ship. Boxes are xyxy with exclusive x2/y2 (COCO ``[x, y, w, h]``); VOC boxes are the
integer hull of that box, in the same 0-based frame.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from xml.etree import ElementTree as ET

import numpy as np
from tqdm import tqdm

from saropt.errors import SaroptError
from saropt.synth.config import SEA, SHIP, WorldConfig
from saropt.synth.world import ScenePair, make_scene_pair
from saropt.synth.writers import save_png_fast
from saropt.utils.io import atomic_path, write_json_atomic, write_text_atomic
from saropt.utils.outdir import prepare_out_dir

#: ship-rich world used when no config is given (more ships, no calm patches)
SHIP_WORLD = {"offshore_ships_per_km2": 30.0, "mooring_probability": 0.85,
              "ship_length_median_m": 38.0, "calm_sea_patches": 0}
NO_SHIP_SHARE = 0.15
CHIP_OVERLAP = 0.25


def ship_world_config() -> WorldConfig:
    """The ship-rich world (:data:`SHIP_WORLD` over the defaults) used without a config."""
    return WorldConfig(**SHIP_WORLD)


def _window(pair: ScenePair, x: int, y: int, size: int) -> dict[str, Any] | None:
    """The window at (x, y) with the ships fully inside it, or None when it cuts a ship."""
    inside = []
    for s in pair.ships:
        quad = np.asarray(s["sar_quad"]) + 0.5  # contains the hull
        x0, y0 = np.minimum(quad.min(0), s["sar_box"][:2])
        x1, y1 = np.maximum(quad.max(0), s["sar_box"][2:])
        if min(x1, x + size) <= max(x0, x) or min(y1, y + size) <= max(y0, y):
            continue
        if not (x0 >= x and y0 >= y and x1 <= x + size and y1 <= y + size):
            return None
        inside.append(s)
    cls = pair.classes[y:y + size, x:x + size]
    land = float(((cls != SEA) & (cls != SHIP)).mean())
    return {"x": x, "y": y, "ships": inside, "land": land,
            "scene": "inshore" if land >= 0.02 else "offshore"}


def _chip_windows(pair: ScenePair, size: int, rng: np.random.Generator) -> list[dict[str, Any]]:
    """Windows around ships (random placement), then ship-free windows on a grid.

    Windows overlap each other by at most ``CHIP_OVERLAP`` (HRSID's chips overlap by 25 %).
    """
    h, w = pair.shape
    chosen: list[dict[str, Any]] = []

    def free(x: int, y: int) -> bool:
        return all(max(0, min(x, c["x"]) + size - max(x, c["x"])) *
                   max(0, min(y, c["y"]) + size - max(y, c["y"])) <= CHIP_OVERLAP * size * size
                   for c in chosen)

    for i in rng.permutation(len(pair.ships)):
        quad = np.asarray(pair.ships[i]["sar_quad"]) + 0.5
        x0, y0 = quad.min(0)
        x1, y1 = quad.max(0)
        lo_x, hi_x = max(0, int(np.ceil(x1)) - size), min(w - size, int(x0))
        lo_y, hi_y = max(0, int(np.ceil(y1)) - size), min(h - size, int(y0))
        if lo_x > hi_x or lo_y > hi_y:
            continue  # ship larger than a chip, or at the border
        for _ in range(6):
            x, y = int(rng.integers(lo_x, hi_x + 1)), int(rng.integers(lo_y, hi_y + 1))
            win = _window(pair, x, y, size) if free(x, y) else None
            if win is not None:
                chosen.append(win)
                break
    stride = int(round(size * (1 - CHIP_OVERLAP)))
    for y in range(0, h - size + 1, stride):
        for x in range(0, w - size + 1, stride):
            win = _window(pair, x, y, size) if free(x, y) else None
            if win is not None and not win["ships"]:
                chosen.append(win)
    return chosen


def _select(windows: list[dict[str, Any]], rng: np.random.Generator, need: int,
            have_empty: int, have_total: int) -> list[dict[str, Any]]:
    """Ship chips first; chips without ships up to ``NO_SHIP_SHARE`` of the split."""
    with_ships = [w for w in windows if w["ships"]]
    empty = [w for w in windows if not w["ships"]]
    rng.shuffle(empty)
    chosen = with_ships[:need]
    budget = int(np.ceil(NO_SHIP_SHARE * (have_total + len(chosen) + 1))) - have_empty
    chosen += empty[:max(0, min(budget, need - len(chosen)))]
    return chosen


def _quad(ship: dict[str, Any], x: int, y: int) -> np.ndarray:
    """The ship's oriented rectangle in chip edge coordinates (clockwise on screen)."""
    return np.asarray(ship["sar_quad"], float) + 0.5 - [x, y]


def _polygon_area(p: np.ndarray) -> float:
    x, y = p[:, 0], p[:, 1]
    return float(0.5 * abs(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1))))


def _voc_xml(filename: str, size: int, boxes: list[list[float]]) -> str:
    root = ET.Element("annotation")
    ET.SubElement(root, "folder").text = "JPEGImages"
    ET.SubElement(root, "filename").text = filename
    sz = ET.SubElement(root, "size")
    for k, v in (("width", size), ("height", size), ("depth", 3)):
        ET.SubElement(sz, k).text = str(v)
    ET.SubElement(root, "segmented").text = "0"
    for b in boxes:
        obj = ET.SubElement(root, "object")
        ET.SubElement(obj, "name").text = "ship"
        ET.SubElement(obj, "pose").text = "Unspecified"
        ET.SubElement(obj, "truncated").text = "0"
        ET.SubElement(obj, "difficult").text = "0"
        bb = ET.SubElement(obj, "bndbox")
        vals = (int(np.floor(b[0])), int(np.floor(b[1])), int(np.ceil(b[2])), int(np.ceil(b[3])))
        for k, v in zip(("xmin", "ymin", "xmax", "ymax"), vals):
            ET.SubElement(bb, k).text = str(v)
    ET.indent(root)
    return ET.tostring(root, encoding="unicode") + "\n"


def _dota_txt(quads: list[np.ndarray]) -> str:
    lines = ["imagesource:saropt-synth", "gsd:1.0"]
    lines += [" ".join(f"{v:.1f}" for v in q.ravel()) + " ship 0" for q in quads]
    return "\n".join(lines) + "\n"


def _save_jpeg(path: Path, gray: np.ndarray) -> None:
    from PIL import Image

    with atomic_path(path) as tmp:
        Image.fromarray(np.repeat(gray[..., None], 3, axis=2)).save(tmp, quality=95)


def _ssdd_numbers(n_train: int, n_test: int) -> tuple[list[int], list[int]]:
    """Image numbers: test ones end in 1 or 9, train ones do not (the SSDD rule)."""
    train, test = [], []
    k = 1
    while len(train) < n_train or len(test) < n_test:
        if k % 10 in (1, 9):
            if len(test) < n_test:
                test.append(k)
        elif len(train) < n_train:
            train.append(k)
        k += 1
    return train, test


def write_ship_datasets(out_dir: str | Path, seed: int, n_train: int, n_test: int,
                        image_size: int = 512, scene_size: int | None = None,
                        cfg: WorldConfig | None = None, progress: bool = True,
                        overwrite: bool = False) -> Path:
    """Write ``hrsid/``, ``ssdd/`` and ``dota/`` under ``out_dir`` (see the module doc).

    Also a ``summary.json``; returns ``out_dir``. ``n_train`` / ``n_test`` chips of
    ``image_size`` px are cut from rendered scenes of ``scene_size`` px (default
    ``max(1024, 4 * image_size)``, 1 m per px). Train scenes use seeds ``seed * 1000 + k``,
    test scenes ``seed * 1000 + 500 + k``.

    Raises:
        ValueError: when ``n_train`` or ``n_test`` < 1, ``image_size`` < 64, or
            ``scene_size`` < 2 * ``image_size``.
        SaroptError: when too many scenes give too few chips, or ``out_dir`` is in use or
            holds other output and ``overwrite`` is false (OutDirError).
    """
    if n_train < 1 or n_test < 1:
        raise ValueError(f"n_train and n_test must be >= 1 (got {n_train}, {n_test})")
    if image_size < 64:
        raise ValueError(f"image_size must be >= 64 (got {image_size})")
    cfg = cfg or ship_world_config()
    scene_size = scene_size or max(1024, 4 * image_size)
    if scene_size < 2 * image_size:
        raise ValueError(f"scene_size {scene_size} must be at least twice image_size "
                         f"{image_size}")
    root = Path(out_dir)
    config = {"seed": seed, "n_train": n_train, "n_test": n_test, "image_size": image_size,
              "scene_size": scene_size, "world": cfg.model_dump(mode="json")}
    with prepare_out_dir(root, "synth ships", config, ["hrsid", "ssdd", "dota", "summary.json"],
                         overwrite=overwrite, quiet=True) as od:
        _write_ship_datasets(root, seed, n_train, n_test, image_size, scene_size, cfg, progress)
        od.finish()
    return root


def _write_ship_datasets(root: Path, seed: int, n_train: int, n_test: int, image_size: int,
                         scene_size: int, cfg: WorldConfig, progress: bool) -> None:
    ssdd_nums = dict(zip(("train", "test"), _ssdd_numbers(n_train, n_test)))
    summary: dict[str, Any] = {"root": str(root), "image_size": image_size, "ships": 0}
    bar = tqdm(total=n_train + n_test, desc="ship chips", unit="chip", disable=not progress)
    for split, n_need, base in (("train", n_train, 0), ("test", n_test, 500)):
        chips, n_scenes = _collect_chips(seed * 1000 + base, n_need, image_size, scene_size, cfg,
                                         bar)
        stats = _write_split(root, split, chips, image_size, ssdd_nums[split])
        stats["scenes_rendered"] = n_scenes
        summary[f"{split}_images"] = len(chips)
        summary[f"{split}_scenes"] = stats
        summary["ships"] += stats["ships"]
    bar.close()
    write_json_atomic(root / "summary.json", summary)


def _collect_chips(seed0: int, n_need: int, size: int, scene_size: int, cfg: WorldConfig,
                   bar: tqdm) -> tuple[list[dict[str, Any]], int]:
    chips: list[dict[str, Any]] = []
    k = 0
    while len(chips) < n_need:
        if k > 50 + 5 * n_need:
            raise SaroptError(f"could not cut {n_need} chips of {size} px from {k} scenes "
                              "(use a larger --scene-size or a smaller --size)")
        scene_seed = seed0 + k
        pair = make_scene_pair(scene_size, scene_seed, cfg)
        rng = np.random.default_rng(scene_seed + 7_000_000)
        windows = _chip_windows(pair, size, rng)
        n_empty = sum(1 for c in chips if not c["ships"])
        for win in _select(windows, rng, n_need - len(chips), n_empty, len(chips)):
            x, y = win["x"], win["y"]
            sl = (slice(y, y + size), slice(x, x + size))
            cls = pair.classes[sl]
            chips.append({**win, "scene_seed": scene_seed, "sar": pair.sar8[sl].copy(),
                          "opt": pair.optical_on_sar[sl].copy(),
                          "land_mask": (((cls != SEA) & (cls != SHIP)) * 255).astype(np.uint8)})
            bar.update(1)
        k += 1
    return chips, k


def _write_split(root: Path, split: str, chips: list[dict[str, Any]], size: int,
                 numbers: list[int]) -> dict[str, int]:
    images, anns = [], []
    lists: dict[str, list[str]] = {"all": [], "inshore": [], "offshore": []}
    stats = {"inshore": 0, "offshore": 0, "without_ships": 0, "ships": 0}
    for chip, num in zip(chips, numbers):
        x, y = chip["x"], chip["y"]
        stem = f"P{chip['scene_seed']:04d}_{x}_{x + size}_{y}_{y + size}"
        _save_jpeg(root / "hrsid" / "JPEGImages" / f"{stem}.jpg", chip["sar"])
        save_png_fast(root / "hrsid" / "land_masks" / f"{stem}.png", chip["land_mask"])
        image_id = len(images) + 1
        images.append({"id": image_id, "file_name": f"{stem}.jpg", "width": size, "height": size,
                       "scene": chip["scene"], "scene_seed": chip["scene_seed"],
                       "offset_xy": [x, y]})
        boxes, quads = [], []
        for s in chip["ships"]:
            x0, y0, x1, y1 = (v - o for v, o in zip(s["sar_box"], (x, y, x, y)))
            hull = np.asarray(s["sar_hull"]) + 0.5 - [x, y]
            anns.append({"id": len(anns) + 1, "image_id": image_id, "category_id": 1,
                         "bbox": [round(x0, 2), round(y0, 2), round(x1 - x0, 2),
                                  round(y1 - y0, 2)],
                         "area": round(_polygon_area(hull), 2), "iscrowd": 0,
                         "segmentation": [hull.round(2).ravel().tolist()]})
            boxes.append([x0, y0, x1, y1])
            quads.append(_quad(s, x, y))
        ssdd_name = f"{num:06d}"
        _save_jpeg(root / "ssdd" / "JPEGImages" / f"{ssdd_name}.jpg", chip["sar"])
        write_text_atomic(root / "ssdd" / "Annotations" / f"{ssdd_name}.xml",
                          _voc_xml(f"{ssdd_name}.jpg", size, boxes))
        save_png_fast(root / "dota" / "images" / f"{stem}.png", chip["opt"])
        write_text_atomic(root / "dota" / "labelTxt" / f"{stem}.txt", _dota_txt(quads))
        lists["all"].append(ssdd_name)
        lists[chip["scene"]].append(ssdd_name)
        stats[chip["scene"]] += 1
        stats["without_ships"] += not chip["ships"]
        stats["ships"] += len(chip["ships"])
    coco = {"info": {"description": f"saropt synthetic HRSID-style {split} set"},
            "images": images, "annotations": anns,
            "categories": [{"id": 1, "name": "ship", "supercategory": "ship"}]}
    write_json_atomic(root / "hrsid" / "annotations" / f"{split}2017.json", coco, indent=None)
    sets = root / "ssdd" / "ImageSets" / "Main"
    write_text_atomic(sets / f"{split}.txt", "\n".join(lists["all"]) + "\n")
    if split == "test":
        for scene in ("inshore", "offshore"):
            write_text_atomic(sets / f"test_{scene}.txt", "".join(f"{s}\n" for s in lists[scene]))
    return stats


def read_summary(root: str | Path) -> dict[str, Any]:
    """The ``summary.json`` written by :func:`write_ship_datasets` under ``root``."""
    return json.loads((Path(root) / "summary.json").read_text())



