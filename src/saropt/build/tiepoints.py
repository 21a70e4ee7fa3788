"""Tie points and sub-regions (JSON) in SAR pixels.

The paper locates matching points by hand (corners of buildings, ships, roads) in each
sub-region (paper 002 section II.C-D, paper 003 Algorithm 1 steps 3-4); these are read here
from the files common tools write.

The builder's pixel convention: 0-based (x = column, y = row), pixel *centres* at integers, so
the top-left pixel's centre is (0, 0) and its outer corner (-0.5, -0.5).

Tie-point files read here (see ``docs/build.md`` for each one's convention):

- the builder's CSV: header ``subregion,sar_x,sar_y,opt_x,opt_y``, one matching point per row,
  in the builder's convention;
- QGIS Georeferencer ``.points``: ``mapX,mapY,sourceX,sourceY,enable,...`` after an optional
  ``#CRS: <WKT>`` line; source coordinates are pixel *corner* coordinates with y negative
  (``sourceX = col + 0.5``, ``sourceY = -(row + 0.5)`` at a pixel centre), map coordinates are in
  the ``#CRS`` (see :mod:`saropt.build.georef` for the map -> pixel step);
- ENVI image-to-image ``.pts``: ``; ENVI Image to Image GCP File`` header, rows ``base_x base_y
  warp_x warp_y`` in ENVI file coordinates: 1-based with (1, 1) the upper-left *corner* of the
  upper-left pixel, so a pixel centre is at ``col + 1.5`` (ENVI's documented convention).

Sub-regions JSON: ``{"<name>": {"rect": [x0, y0, x1, y1]}}`` (x1/y1 exclusive edges) or
``{"<name>": {"polygon": [[x, y], ...]}}``, in SAR pixels.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from saropt.errors import DataError
from saropt.utils.io import read_json, read_text_file

TIEPOINT_COLUMNS = ["subregion", "sar_x", "sar_y", "opt_x", "opt_y"]
#: tie-point file formats by suffix
TIEPOINT_SUFFIXES = {".csv": "csv", ".points": "qgis", ".pts": "envi"}
ENVI_HEADER = "; ENVI Image to Image GCP File"
#: QGIS and GDAL GCP pixel/line: 0 at the outer edge of the first pixel (centre at 0.5)
CORNER_TO_CENTRE = -0.5
#: ENVI file coordinates: 1 at the outer edge of the first pixel (centre at 1.5)
ENVI_TO_CENTRE = -1.5


@dataclass
class SubRegion:
    """A rectangle or polygon of the SAR grid, registered on its own (paper 002 section II.C).

    ``bbox``: ``(x0, y0, x1, y1)`` SAR px, x1/y1 exclusive, clipped to the raster;
    ``polygon``: ``(K, 2)`` x, y vertices in SAR px, None for a rectangle.
    """

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
        """``{"polygon": [[x, y], ...]}`` or ``{"rect": [x0, y0, x1, y1]}`` (SAR px)."""
        if self.polygon is not None:
            return {"polygon": self.polygon.tolist()}
        return {"rect": list(self.bbox)}


def read_tiepoints(path: Path) -> dict[str, np.ndarray]:
    """``{subregion: (N, 4) float64 array of sar_x, sar_y, opt_x, opt_y}`` from a tie-point CSV.

    Coordinates are pixels in the builder's convention (0-based, centres at integers).

    Raises:
        DataError: (a SaroptError) when the file is missing, not UTF-8, lacks a column of
            ``subregion,sar_x,sar_y,opt_x,opt_y``, has a non-numeric or non-finite coordinate,
            or holds no point.
    """
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


def tiepoint_format(path: Path, fmt: str = "auto") -> str:
    """``csv``, ``qgis`` or ``envi``: ``fmt`` unless ``auto``, else from the file's suffix.

    Raises:
        DataError: when ``fmt`` is ``auto`` and the suffix is not .csv, .points or .pts.
    """
    if fmt != "auto":
        return fmt
    found = TIEPOINT_SUFFIXES.get(Path(path).suffix.lower())
    if found is None:
        raise DataError(f"tiepoints: cannot tell the format of {path} from its suffix (.csv "
                        "builder CSV, .points QGIS, .pts ENVI); set tiepoint_format")
    return found


def _read_lines(path: Path) -> list[str]:
    if not path.is_file():
        raise DataError(f"tie-point file {path} does not exist")
    return read_text_file(path).splitlines()


def _numbers(path: Path, line_no: int, fields: list[str], n: int) -> list[float]:
    try:
        vals = [float(v) for v in fields[:n]]
    except ValueError:
        raise DataError(f"{path}: line {line_no}: expected {n} numbers, got {fields[:n]}"
                        ) from None
    if len(vals) < n or not np.all(np.isfinite(vals)):
        raise DataError(f"{path}: line {line_no}: expected {n} finite numbers, got {fields}")
    return vals


@dataclass
class QgisPoints:
    """A QGIS Georeferencer ``.points`` file: enabled points only.

    ``source``: ``(N, 2)`` x, y source-raster pixels in the builder's convention; ``map``:
    ``(N, 2)`` map coordinates in ``crs`` (e.g. metres or degrees).
    """

    source: np.ndarray  # (N, 2) source-raster pixels, builder convention
    map: np.ndarray  # (N, 2) map coordinates in ``crs``
    crs: str | None  # the #CRS line's WKT (or other definition), None when absent
    disabled: int  # rows with enable = 0, left out


def read_qgis_points(path: Path) -> QgisPoints:
    """Parse a QGIS ``.points`` file; source coordinates become builder pixels.

    ``x = sourceX - 0.5``, ``y = -sourceY - 0.5`` (QGIS pixel corners, rows negative).

    Raises:
        DataError: missing columns, non-numbers, no enabled point, or a positive ``sourceY``
            (QGIS pixel rows are negative; positive values are map coordinates of a
            georeferenced source raster, which this reader does not take).
    """
    lines = _read_lines(path)
    crs = None
    body = []
    for n, line in enumerate(lines, start=1):
        if line.startswith("#CRS:"):
            crs = line[len("#CRS:"):].strip() or None
        elif line.lstrip("#").strip().startswith("mapX,") and not body:
            body.append((n, line.lstrip("#")))  # the header, also when written as a comment
        elif line.strip() and not line.startswith("#"):
            body.append((n, line))
    if not body:
        raise DataError(f"{path}: no header line mapX,mapY,sourceX,sourceY,enable")
    header = [h.strip() for h in body[0][1].split(",")]
    names = {"mapX": "mapX", "mapY": "mapY", "sourceX": "sourceX", "sourceY": "sourceY"}
    if "pixelX" in header:  # QGIS 2 wrote pixelX,pixelY
        names.update(sourceX="pixelX", sourceY="pixelY")
    missing = [v for v in names.values() if v not in header]
    if missing:
        raise DataError(f"{path}: missing column(s) {missing}; a QGIS .points file starts with "
                        "mapX,mapY,sourceX,sourceY,enable")
    idx = {k: header.index(v) for k, v in names.items()}
    enable = header.index("enable") if "enable" in header else None
    src, mp, disabled = [], [], 0
    for n, line in body[1:]:
        fields = [f.strip() for f in line.split(",")]
        vals = _numbers(path, n, [fields[idx[k]] if idx[k] < len(fields) else "" for k in
                                  ("mapX", "mapY", "sourceX", "sourceY")], 4)
        if enable is not None and enable < len(fields) and fields[enable].lower() in ("0", "false"):
            disabled += 1
            continue
        if vals[3] > 0:
            raise DataError(f"{path}: line {n}: sourceY {vals[3]} is positive; QGIS pixel rows "
                            "are negative (georeference the raster as unreferenced in QGIS)")
        mp.append(vals[:2])
        src.append([vals[2] + CORNER_TO_CENTRE, -vals[3] + CORNER_TO_CENTRE])
    if not src:
        raise DataError(f"{path}: no enabled tie point ({disabled} disabled)")
    return QgisPoints(np.asarray(src), np.asarray(mp), crs, disabled)


def read_envi_pts(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """``(base, warp)`` ``(N, 2)`` x, y each, in builder pixels, from an ENVI ``.pts`` file.

    The file is an image-to-image GCP file; ENVI's 1-based corner coordinates become builder
    pixels by ``ENVI - 1.5``.

    Raises:
        DataError: not an image-to-image GCP file (image-to-map files hold map coordinates),
            rows without four numbers, or no point.
    """
    lines = _read_lines(path)
    comments = [line.strip().lower() for line in lines if line.lstrip().startswith(";")]
    if any("map (x,y" in c for c in comments):
        raise DataError(f"{path}: an ENVI image-to-map GCP file (map coordinates, not the "
                        "pixels of two images); export image-to-image GCPs, or use georeference:"
                        " true when both rasters carry a CRS")
    if not (lines and lines[0].strip().lower().startswith(ENVI_HEADER.lower())) and not any(
            "base image (x,y), warp image (x,y)" in c for c in comments):
        raise DataError(f"{path}: not an ENVI image-to-image GCP file (first line must be "
                        f"{ENVI_HEADER!r}, or a '; Base Image (x,y), Warp Image (x,y)' line)")
    rows = [_numbers(path, n, line.split(), 4) for n, line in enumerate(lines, start=1)
            if line.strip() and not line.lstrip().startswith(";")]
    if not rows:
        raise DataError(f"{path}: no tie points")
    arr = np.asarray(rows) + ENVI_TO_CENTRE
    return arr[:, :2], arr[:, 2:4]


def envi_roles(path: Path, source_image: str, sar: Path, optical: Path) -> None:
    """Check ``source_image`` against the ``; base file:`` / ``; warp file:`` lines ENVI writes.

    A warp file named like the SAR raster (and not the optical) with ``source_image: optical``,
    or the other way round, would swap the two images' pixels silently.

    Raises:
        DataError: the file's named warp image is the other raster.
    """
    named = {}
    for line in _read_lines(path):
        text = line.strip().lstrip(";").strip()
        for role in ("base", "warp"):
            if text.lower().startswith(f"{role} file:"):
                name = text.split(":", 1)[1].strip().replace("\\", "/").rsplit("/", 1)[-1]
                named[role] = Path(name).stem.lower()
    stems = {"sar": Path(sar).stem.lower(), "optical": Path(optical).stem.lower()}
    if stems["sar"] == stems["optical"] or "warp" not in named:
        return
    warp_is = [k for k, v in stems.items() if v == named["warp"]]
    if warp_is and warp_is[0] != source_image:
        raise DataError(f"{path}: its warp file is {named['warp']!r}, the {warp_is[0]} raster, "
                        f"but source_image is {source_image} (the warp image); set "
                        f"source_image: {warp_is[0]}")


def assign_subregions(points: np.ndarray, subregions: list[SubRegion]
                      ) -> tuple[dict[str, np.ndarray], int]:
    """Points grouped by the sub-regions holding their SAR position (a point may serve several).

    ``points``: ``(N, 4)`` sar_x, sar_y, opt_x, opt_y in px. A point belongs to a rectangle when
    its SAR position lies within the rectangle's pixel edges (``x0 - 0.5 <= x < x1 - 0.5``).

    Returns:
        ``({name: (M, 4) array}, count)``: the non-empty groups, and how many points fell in
        no sub-region.
    """
    from matplotlib.path import Path as MplPath

    groups: dict[str, np.ndarray] = {}
    used = np.zeros(len(points), bool)
    xy = points[:, :2]
    for sr in subregions:
        x0, y0, x1, y1 = sr.bbox
        inside = ((xy[:, 0] >= x0 - 0.5) & (xy[:, 0] < x1 - 0.5) & (xy[:, 1] >= y0 - 0.5)
                  & (xy[:, 1] < y1 - 0.5))
        if sr.polygon is not None:
            inside &= MplPath(sr.polygon).contains_points(xy)
        if inside.any():
            groups[sr.name] = points[inside]
        used |= inside
    return groups, int((~used).sum())


def write_tiepoints(path: Path, groups: dict[str, np.ndarray]) -> None:
    """Write ``{subregion: (N, 4)}`` as a tie-point CSV (atomically, 4 decimals, px)."""
    from saropt.utils.io import atomic_path

    with atomic_path(path) as tmp, tmp.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(TIEPOINT_COLUMNS)
        for name, pts in groups.items():
            for p in np.asarray(pts):
                w.writerow([name] + [f"{v:.4f}" for v in p[:4]])


def read_subregions(path: Path | None, sar_shape: tuple[int, int]) -> list[SubRegion]:
    """Sub-regions from JSON, clipped to the SAR raster; ``None`` gives the whole scene.

    ``sar_shape``: ``(H, W)`` of the SAR raster in px. The JSON format is in the module
    docstring.

    Raises:
        DataError: when the JSON is unreadable or not a non-empty mapping, a sub-region has
            not exactly one of ``rect``/``polygon``, a rect is not 4 numbers, a polygon has
            fewer than 3 vertices, or a sub-region does not overlap the SAR raster.
    """
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
