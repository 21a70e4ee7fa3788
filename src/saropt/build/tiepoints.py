"""Tie points (CSV) and sub-regions (JSON) in SAR pixels.

Tie-point CSV: header ``subregion,sar_x,sar_y,opt_x,opt_y``, one matching point per row, in
0-based pixel coordinates (x = column, y = row, pixel centres at integers) of the SAR and the
optical image. Sub-regions JSON: ``{"<name>": {"rect": [x0, y0, x1, y1]}}`` (x1/y1 exclusive
edges) or ``{"<name>": {"polygon": [[x, y], ...]}}``, in SAR pixels.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from saropt.errors import DataError
from saropt.utils.io import read_json

TIEPOINT_COLUMNS = ["subregion", "sar_x", "sar_y", "opt_x", "opt_y"]


@dataclass
class SubRegion:
    """A rectangle or polygon of the SAR grid, registered on its own."""

    name: str
    bbox: tuple[int, int, int, int]  # x0, y0, x1, y1 (exclusive), clipped to the SAR raster
    polygon: np.ndarray | None = None  # (K, 2) xy vertices, None for a rectangle
    extra: dict = field(default_factory=dict)

    def mask(self, x0: int, y0: int, w: int, h: int) -> np.ndarray:
        """Boolean (h, w) mask of the window's pixel centres inside the sub-region."""
        from matplotlib.path import Path as MplPath

        ys, xs = np.mgrid[y0:y0 + h, x0:x0 + w]
        bx0, by0, bx1, by1 = self.bbox
        inside = (xs >= bx0) & (xs < bx1) & (ys >= by0) & (ys < by1)
        if self.polygon is not None:
            pts = np.column_stack([xs.ravel(), ys.ravel()])
            inside &= MplPath(self.polygon).contains_points(pts).reshape(h, w)
        return inside

    def to_json(self) -> dict:
        if self.polygon is not None:
            return {"polygon": self.polygon.tolist()}
        return {"rect": list(self.bbox)}


def read_tiepoints(path: Path) -> dict[str, np.ndarray]:
    """``{subregion: (N, 4) float array of sar_x, sar_y, opt_x, opt_y}`` from a tie-point CSV."""
    if not path.is_file():
        raise DataError(f"tie-point file {path} does not exist")
    groups: dict[str, list[list[float]]] = {}
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise DataError(f"{path}: not UTF-8 text ({err.reason} at byte {err.start}); save it "
                        "as UTF-8 CSV") from None
    with io.StringIO(text, newline="") as f:
        reader = csv.DictReader(f)
        missing = [c for c in TIEPOINT_COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise DataError(f"{path}: missing column(s) {missing}; the header must be "
                            f"{','.join(TIEPOINT_COLUMNS)}")
        for line, row in enumerate(reader, start=2):
            try:
                vals = [float(row[c]) for c in TIEPOINT_COLUMNS[1:]]
            except (TypeError, ValueError):
                raise DataError(f"{path}: line {line}: coordinates must be numbers, got "
                                f"{[row.get(c) for c in TIEPOINT_COLUMNS[1:]]}") from None
            if not np.all(np.isfinite(vals)):
                raise DataError(f"{path}: line {line}: non-finite coordinate")
            groups.setdefault(str(row["subregion"]).strip(), []).append(vals)
    if not groups:
        raise DataError(f"{path}: no tie points")
    return {k: np.asarray(v, dtype=np.float64) for k, v in groups.items()}


def write_tiepoints(path: Path, groups: dict[str, np.ndarray]) -> None:
    """Write ``{subregion: (N, 4)}`` as a tie-point CSV (atomically)."""
    from saropt.utils.io import atomic_path

    with atomic_path(path) as tmp, tmp.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(TIEPOINT_COLUMNS)
        for name, pts in groups.items():
            for p in np.asarray(pts):
                w.writerow([name] + [f"{v:.4f}" for v in p[:4]])


def read_subregions(path: Path | None, sar_shape: tuple[int, int]) -> list[SubRegion]:
    """Sub-regions from JSON, clipped to the SAR raster; ``None`` gives the whole scene."""
    h, w = sar_shape
    if path is None:
        return [SubRegion("scene", (0, 0, w, h))]
    data = read_json(path, "sub-region")
    if not isinstance(data, dict) or not data:
        raise DataError(f"{path}: expected a non-empty mapping name -> {{rect|polygon}}")
    return [_parse_subregion(path, str(name), spec, w, h) for name, spec in data.items()]


def _parse_subregion(path: Path, name: str, spec: object, w: int, h: int) -> SubRegion:
    if not isinstance(spec, dict) or ("rect" in spec) == ("polygon" in spec):
        raise DataError(f"{path}: sub-region {name!r} needs exactly one of 'rect' or 'polygon'")
    extra = {k: v for k, v in spec.items() if k not in ("rect", "polygon")}
    if "rect" in spec:
        r = spec["rect"]
        if not (isinstance(r, list) and len(r) == 4):
            raise DataError(f"{path}: sub-region {name!r}: rect must be [x0, y0, x1, y1]")
        x0, y0, x1, y1 = (int(round(float(v))) for v in r)
        poly = None
    else:
        poly = np.asarray(spec["polygon"], dtype=np.float64)
        if poly.ndim != 2 or poly.shape[1] != 2 or len(poly) < 3:
            raise DataError(f"{path}: sub-region {name!r}: polygon must be >= 3 [x, y] pairs")
        x0, y0 = np.floor(poly.min(axis=0)).astype(int)
        x1, y1 = np.ceil(poly.max(axis=0)).astype(int) + 1
    bbox = (max(0, x0), max(0, y0), min(w, x1), min(h, y1))
    if bbox[2] <= bbox[0] or bbox[3] <= bbox[1]:
        raise DataError(f"{path}: sub-region {name!r} {spec} does not overlap the SAR raster "
                        f"({w} x {h})")
    return SubRegion(name, bbox, poly, extra)
