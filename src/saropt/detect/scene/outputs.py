"""Scene detection outputs: GeoJSON (RFC 7946), COCO results, CSV, quicklook PNG, offline map.

Each detection row carries its scene-pixel box ``[x1, y1, x2, y2]`` (edge coordinates, x2/y2
exclusive), score, category, model and location (land / inshore / offshore / unknown). The
GeoJSON polygon is the box's four corners through the scene's georeference, counter-clockwise
(RFC 7946 right-hand rule); length and width are the geodesic lengths of the box's sides (the
longer one is the length) on the WGS84 ellipsoid: the ship's axis-aligned box, not its hull.
Without georeference the polygons are in scene pixels and the file says so.
"""

from __future__ import annotations

import base64
import csv
import io
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from saropt.detect.scene.raster import Georef
from saropt.utils.io import atomic_path, write_json_atomic, write_text_atomic

CSV_FIELDS = ("id", "score", "category_id", "model", "location", "x1", "y1", "x2", "y2",
              "lon", "lat", "length_m", "width_m")


@dataclass
class SceneDetections:
    """Final detections of a scene: ``(N, 6)`` rows ``x1, y1, x2, y2, score, label``.

    Boxes in scene pixels; ``model`` names the model (or fusion) that made them;
    ``locations`` holds one of land / inshore / offshore / unknown per row.
    """

    rows: np.ndarray
    model: str
    locations: list[str]

    def __len__(self) -> int:
        return len(self.rows)


def _corners(rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(N, 5) x and y of each box's closed ring (x1,y1) (x1,y2) (x2,y2) (x2,y1) (x1,y1)."""
    x1, y1, x2, y2 = (rows[:, i].astype(np.float64) for i in range(4))
    return (np.stack([x1, x1, x2, x2, x1], 1), np.stack([y1, y2, y2, y1, y1], 1))


def _ccw(ring: np.ndarray) -> np.ndarray:
    x, y = ring[:, 0], ring[:, 1]
    area = np.sum(x[:-1] * y[1:] - x[1:] * y[:-1])
    return ring if area >= 0 else ring[::-1]


def unwrap(lon: np.ndarray, ref: float) -> np.ndarray:
    """Longitudes (degrees) moved by multiples of 360 to lie within 180 degrees of ``ref``.

    A scene across the antimeridian gets continuous longitudes (179.9, 180.1) instead of a jump.
    """
    lon = np.asarray(lon, np.float64)
    return ref + (lon - ref + 180.0) % 360.0 - 180.0


def wrap(lon: np.ndarray) -> np.ndarray:
    """Longitudes (degrees) into [-180, 180) (RFC 7946 positions); 180 stays 180."""
    lon = np.asarray(lon, np.float64)
    return np.where(lon == 180.0, lon, (lon + 180.0) % 360.0 - 180.0)


def geometry(dets: SceneDetections, georef: Georef) -> dict[str, np.ndarray]:
    """Per detection: box ring and centre in lon/lat degrees, length and width in metres.

    ``ring`` ``(N, 5, 2)`` lon/lat (longitudes continuous across the scene, so possibly beyond
    +-180 on a scene across the antimeridian), ``lon`` / ``lat`` ``(N,)`` of the centre (lon in
    [-180, 180)), ``length_m`` / ``width_m`` ``(N,)`` geodesic (WGS84) box sides, NaN without
    georeference (then ring and centre are scene pixels).
    """
    n = len(dets)
    xs, ys = _corners(dets.rows)
    lon, lat = georef.lonlat(xs, ys) if n else (xs, ys)
    cx = (dets.rows[:, 0] + dets.rows[:, 2]) / 2.0
    cy = (dets.rows[:, 1] + dets.rows[:, 3]) / 2.0
    clon, clat = georef.lonlat(cx, cy) if n else (cx, cy)
    if georef.georeferenced and n:
        lon = unwrap(lon, float(lon[0, 0]))
        clon = wrap(clon)
    length = width = np.full(n, np.nan)
    if georef.georeferenced and n:
        from pyproj import Geod

        g = Geod(ellps="WGS84")
        _, _, side_a = g.inv(lon[:, 0], lat[:, 0], lon[:, 1], lat[:, 1])  # along y
        _, _, side_b = g.inv(lon[:, 1], lat[:, 1], lon[:, 2], lat[:, 2])  # along x
        side_a, side_b = np.asarray(side_a), np.asarray(side_b)
        length, width = np.maximum(side_a, side_b), np.minimum(side_a, side_b)
    return {"ring": np.stack([lon, lat], axis=-1), "lon": np.asarray(clon),
            "lat": np.asarray(clat), "length_m": length, "width_m": width}


def _num(v: float, nd: int = 2) -> float | None:
    return None if not np.isfinite(v) else round(float(v), nd)


def records(dets: SceneDetections, georef: Georef) -> list[dict[str, Any]]:
    """One dict per detection: the CSV row (:data:`CSV_FIELDS`) and the GeoJSON properties.

    Pixel box rounded to 0.01 px, lon/lat in degrees (None without georeference), length and
    width in metres (None without georeference), plus the private ``_ring``.
    """
    geo = geometry(dets, georef)
    out = []
    for i, r in enumerate(dets.rows):
        out.append({"id": i + 1, "score": round(float(r[4]), 5), "category_id": int(r[5]),
                    "model": dets.model, "location": dets.locations[i],
                    "x1": round(float(r[0]), 2), "y1": round(float(r[1]), 2),
                    "x2": round(float(r[2]), 2), "y2": round(float(r[3]), 2),
                    "lon": float(geo["lon"][i]) if georef.georeferenced else None,
                    "lat": float(geo["lat"][i]) if georef.georeferenced else None,
                    "length_m": _num(geo["length_m"][i]), "width_m": _num(geo["width_m"][i]),
                    "_ring": geo["ring"][i]})
    return out


def write_geojson(path: Path, recs: list[dict[str, Any]], georef: Georef,
                  meta: dict[str, Any]) -> Path:
    """Write an RFC 7946 FeatureCollection (lon/lat WGS84), one Polygon per detection, atomically.

    Without georeference the polygons are in scene pixels; ``meta`` and the georeference
    description go to the top-level ``saropt`` member.
    """
    feats = []
    for r in recs:
        props = {k: v for k, v in r.items() if not k.startswith("_") and k not in
                 ("x1", "y1", "x2", "y2")}
        props["pixel_box"] = [r["x1"], r["y1"], r["x2"], r["y2"]]
        geom = (rfc7946_polygon(r["_ring"]) if georef.georeferenced else
                {"type": "Polygon", "coordinates": [r["_ring"].tolist()]})
        feats.append({"type": "Feature", "id": r["id"], "geometry": geom,
                      "properties": props})
    doc: dict[str, Any] = {"type": "FeatureCollection", "features": feats,
                           "saropt": {**meta, "georeference": georef.describe()}}
    return write_json_atomic(path, doc, indent=None)


def rfc7946_polygon(ring: np.ndarray) -> dict[str, Any]:
    """A lon/lat ring ``(5, 2)`` (continuous longitudes) as an RFC 7946 geometry dict.

    Counter-clockwise, longitudes in [-180, 180], and cut in two at the antimeridian (a
    MultiPolygon, RFC 7946 section 3.1.9) when it crosses it (shapely).
    """
    ring = _ccw(np.asarray(ring, np.float64))
    shift = 360.0 * np.floor((ring[:, 0].min() + 180.0) / 360.0)
    ring = ring - np.array([shift, 0.0])  # west edge in [-180, 180)
    if ring[:, 0].max() <= 180.0:
        return {"type": "Polygon", "coordinates": [ring.tolist()]}
    from shapely import affinity
    from shapely.geometry import Polygon, box
    from shapely.geometry.polygon import orient

    poly = Polygon(ring)
    parts = []
    for lo in (-180.0, 180.0):  # the part east of 180 comes back by -360
        part = poly.intersection(box(lo, -90.0, lo + 360.0, 90.0))
        parts += [orient(affinity.translate(g, xoff=-360.0 if lo > 0 else 0.0), 1.0)
                  for g in getattr(part, "geoms", [part])
                  if g.geom_type == "Polygon" and g.area > 0]
    coords = [[np.asarray(p.exterior.coords).tolist()] for p in parts]
    return ({"type": "Polygon", "coordinates": coords[0]} if len(coords) == 1 else
            {"type": "MultiPolygon", "coordinates": coords})


def write_csv(path: Path, recs: list[dict[str, Any]]) -> Path:
    """Write :func:`records` as CSV with the :data:`CSV_FIELDS` columns, atomically."""
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=CSV_FIELDS, extrasaction="ignore", lineterminator="\n")
    w.writeheader()
    w.writerows(recs)
    return write_text_atomic(path, buf.getvalue())


def coco_results(dets: SceneDetections, image_id: int) -> list[dict[str, Any]]:
    """COCO results in scene pixels (``bbox = [x, y, w, h]``), scored by ``saropt detect eval``."""
    return [{"image_id": int(image_id), "category_id": int(r[5]),
             "bbox": [round(float(r[0]), 2), round(float(r[1]), 2),
                      round(float(r[2] - r[0]), 2), round(float(r[3] - r[1]), 2)],
             "score": round(float(r[4]), 5)} for r in dets.rows]


COLOURS = {"offshore": (0, 200, 255), "inshore": (255, 160, 0), "land": (255, 40, 40),
           "unknown": (0, 200, 255)}


def quicklook(image: np.ndarray, factor: float, dets: SceneDetections, score_thr: float
              ) -> np.ndarray:
    """The decimated 8-bit scene as RGB ``(h, w, 3)`` with detection boxes drawn (OpenCV).

    ``image`` is the uint8 ``(h, w)`` decimated scene, ``factor`` scene px per image px; boxes
    with score >= ``score_thr`` are drawn 2 px outside, coloured by location (offshore and
    unknown cyan, inshore orange, land red).
    """
    import cv2

    rgb = np.repeat(image[..., None], 3, axis=2)
    for r, loc in zip(dets.rows, dets.locations):
        if r[4] < score_thr:
            continue
        x1, y1, x2, y2 = (int(round(v / factor)) for v in r[:4])
        pad = 2
        cv2.rectangle(rgb, (x1 - pad, y1 - pad), (max(x2, x1 + 1) + pad, max(y2, y1 + 1) + pad),
                      COLOURS.get(loc, COLOURS["unknown"]), 1)
    return rgb


def save_png(path: Path, rgb: np.ndarray) -> Path:
    """Write a uint8 image as PNG (Pillow), atomically; returns ``path``."""
    from PIL import Image

    with atomic_path(path) as tmp:
        Image.fromarray(rgb).save(tmp)
    return path


def _static(name: str) -> str:
    return (resources.files("saropt.detect.scene") / "static" / name).read_text()


def write_map(path: Path, quicklook_png: Path, recs: list[dict[str, Any]], georef: Georef,
              size: tuple[int, int], score_thr: float) -> Path:
    """Write an offline HTML map (folium) of the quicklook and the detections, atomically.

    The quicklook is an image overlay on the scene's lon/lat bounds and the detections (score
    >= ``score_thr``) are polygons with a tooltip each. Leaflet's JS and CSS are embedded (no
    CDN) and there is no tile layer: the file loads nothing from the network. Needs a
    georeferenced scene; ``size`` is the scene ``(width, height)`` in px.
    """
    import folium
    from PIL import Image

    w, h = size
    bx = np.array([0, w, w, 0, w / 2]), np.array([0, 0, h, h, h / 2])
    lon, lat = georef.lonlat(*bx)
    ref = float(lon[4])
    lon = unwrap(lon, ref)  # Leaflet takes continuous longitudes across the antimeridian
    bounds = [[float(lat[:4].min()), float(lon[:4].min())],
              [float(lat[:4].max()), float(lon[:4].max())]]
    buf = io.BytesIO()
    Image.fromarray(overlay_image(np.asarray(Image.open(quicklook_png).convert("RGB")), lon,
                                  lat)).save(buf, format="PNG")
    image = "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")
    m = folium.Map(location=[float(lat[4]), float(lon[4])], tiles=None, control_scale=True)
    m.default_js, m.default_css = [], []
    m.get_root().header.add_child(folium.Element(
        f"<style>{_static('leaflet.css')}</style>\n<script>{_static('leaflet.js')}</script>"))
    folium.raster_layers.ImageOverlay(image, bounds=bounds, name="scene",
                                      opacity=1.0).add_to(m)
    feats = [{"type": "Feature", "geometry": {"type": "Polygon", "coordinates": [
                 _ccw(np.column_stack([unwrap(r["_ring"][:, 0], ref), r["_ring"][:, 1]]))
                 .tolist()]},
              "properties": {"id": r["id"], "score": r["score"], "location": r["location"],
                             "length_m": r["length_m"]}}
             for r in recs if r["score"] >= score_thr]
    if feats:
        folium.GeoJson({"type": "FeatureCollection", "features": feats}, name="ships",
                       style_function=lambda f: {"color": "#00c8ff", "weight": 2,
                                                 "fillOpacity": 0.0},
                       tooltip=folium.GeoJsonTooltip(["id", "score", "location", "length_m"])
                       ).add_to(m)
    m.fit_bounds(bounds)
    html = m.get_root().render()
    return write_text_atomic(path, html)


def overlay_image(rgb: np.ndarray, lon: np.ndarray, lat: np.ndarray) -> np.ndarray:
    """The quicklook turned north-up / east-right for a map overlay.

    ``lon`` / ``lat`` are the scene corners (top-left, top-right, bottom-right, bottom-left):
    a south-up raster (positive pixel height, an ascending-pass GRD) is flipped vertically, an
    east-left one horizontally.
    """
    if lat[0] + lat[1] < lat[2] + lat[3]:  # the first row lies south of the last
        rgb = rgb[::-1]
    if lon[0] + lon[3] > lon[1] + lon[2]:  # the first column lies east of the last
        rgb = rgb[:, ::-1]
    return np.ascontiguousarray(rgb)


def remote_urls(html: str) -> list[str]:
    """Remote URLs a browser would fetch for the page, sorted; empty for an offline page.

    ``<script src>``, ``<link href>``, ``<img src>``, CSS ``url()`` and Leaflet tile-layer
    templates (plain ``<a href>`` links, such as Leaflet's attribution, are not fetched).
    """
    import re

    pats = [r"""<script[^>]*\bsrc\s*=\s*["'](https?:)?//[^"']+""",
            r"""<link[^>]*\bhref\s*=\s*["'](https?:)?//[^"']+""",
            r"""<img[^>]*\bsrc\s*=\s*["'](https?:)?//[^"']+""",
            r"""url\(\s*["']?(https?:)?//[^)"']+""", r"""tileLayer\(\s*["'][^"']+"""]
    return sorted({m.group(0) for p in pats for m in re.finditer(p, html)})
