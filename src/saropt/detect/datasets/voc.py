"""Pascal-VOC XML annotations (SSDD, AIR-SARShip-1.0) read with ``xml.etree``.

An ``<object>`` carries ``<bndbox>`` (``xmin ymin xmax ymax``), a rotated box
(``<rotated_bndbox>`` corners ``x1 y1 ... x4 y4`` as in RBox-SSDD, or roLabelImg's
``<robndbox>`` ``cx cy w h angle``, radians) or polygon ``<points>`` (``<point>x,y</point>``
..., the Gaofen/AIR-SARShip style); rotated boxes and polygons become their horizontal bounding
box; ``<bndbox>`` wins when an object has several. Coordinates are read as pixel-edge
positions as written (LabelImg, which made SSDD, writes them so), without the VOC devkit's
1-based shift: the difference is one pixel. ``<difficult>1</difficult>`` marks an object
difficult. Files are decoded from the encoding their XML declaration names (gb2312, GBK and
GB18030 are common in Chinese releases), or as UTF-16 when they start with its BOM.
"""

from __future__ import annotations

import codecs
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from saropt.errors import DataError


@dataclass
class VocObject:
    """One ``<object>``: class name, horizontal box ``(x1, y1, x2, y2)`` in pixels, difficult."""

    name: str
    box: tuple[float, float, float, float]
    difficult: bool


@dataclass
class VocAnnotation:
    """One VOC XML file: ``<filename>``, ``<size>`` width and height in pixels (None if absent)."""

    filename: str | None
    width: int | None
    height: int | None
    objects: list[VocObject]


def parse_voc_xml(path: str | Path) -> VocAnnotation:
    """Parse one VOC-style XML file (layouts in the module docstring).

    Raises:
        DataError: the file cannot be read or decoded, is not XML, or has an object without a
            readable box or with a bad ``<difficult>`` flag; the message names the file.
    """
    path = Path(path)
    try:
        root = ET.fromstring(read_xml_text(path))
    except ET.ParseError as err:
        raise DataError(f"{path}: not a readable XML annotation ({err})") from None
    size = root.find("size")
    width = _int_or_none(size, "width")
    height = _int_or_none(size, "height")
    objects = [_parse_object(obj, path) for obj in root.iter("object")]
    return VocAnnotation(root.findtext("filename"), width, height, objects)


_DECLARATION = re.compile(rb"^\s*<\?xml[^>]*?encoding\s*=\s*[\"']([A-Za-z0-9_.:-]+)[\"']")
#: declared names read with a superset codec (gb2312/GBK files often hold GB18030 characters)
_SUPERSET = {"gb2312": "gb18030", "gbk": "gb18030", "cp936": "gb18030", "x-gbk": "gb18030"}


def read_xml_text(path: Path) -> str:
    """The text of an XML file decoded from the encoding its declaration names, declaration removed.

    Encodings: gb2312, GBK, GB18030, latin-1, ... (gb2312 and GBK read as GB18030); default
    UTF-8, a BOM allowed; UTF-16 by its BOM. The declaration is removed so that expat, which
    reads no multi-byte encodings but UTF-8, parses the text.

    Raises:
        DataError: the file cannot be read, declares an unknown encoding or is not valid text
            in it.
    """
    try:
        raw = path.read_bytes()
    except OSError as err:
        raise DataError(f"{path}: cannot read ({err})") from None
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")):  # UTF-16 with its byte-order mark
        try:
            return re.sub(r"^\ufeff?\s*<\?xml[^>]*\?>", "", raw.decode("utf-16"), count=1)
        except UnicodeDecodeError as err:
            raise DataError(f"{path}: not valid UTF-16 text ({err.reason} at byte "
                            f"{err.start})") from None
    match = _DECLARATION.match(raw.lstrip(b"\xef\xbb\xbf"))
    declared = match.group(1).decode("ascii").lower() if match else "utf-8"
    try:
        codecs.lookup(declared)
    except LookupError:
        raise DataError(f"{path}: declares the unknown encoding {declared!r}") from None
    try:
        text = raw.decode(_SUPERSET.get(declared, declared))
    except UnicodeDecodeError as err:
        raise DataError(f"{path}: not valid {declared} text ({err.reason} at byte "
                        f"{err.start})") from None
    return re.sub(r"^\ufeff?\s*<\?xml[^>]*\?>", "", text, count=1)


def _int_or_none(node: ET.Element | None, tag: str) -> int | None:
    text = node.findtext(tag) if node is not None else None
    try:
        return int(float(text)) if text else None
    except ValueError:
        return None


def _parse_object(obj: ET.Element, path: Path) -> VocObject:
    name = (obj.findtext("name") or obj.findtext("possibleresult/name") or "ship").strip()
    from saropt.detect.datasets.coco import coco_flag

    difficult = bool(coco_flag(obj.findtext("difficult"), f"{path}: object {name!r} <difficult>"))
    bnd = obj.find("bndbox")
    try:
        if bnd is not None:
            box = tuple(float(bnd.findtext(k)) for k in ("xmin", "ymin", "xmax", "ymax"))
        else:
            pts = _rotated_corners(obj)
            if pts is None:
                pts = np.array([[float(v) for v in p.text.replace(" ", "").split(",")[:2]]
                                for p in obj.iter("point")])
            if len(pts) < 2:
                raise ValueError("no <bndbox>, <rotated_bndbox>, <robndbox> or 2 <point>s")
            box = (pts[:, 0].min(), pts[:, 1].min(), pts[:, 0].max(), pts[:, 1].max())
    except (TypeError, ValueError, AttributeError) as err:
        raise DataError(f"{path}: object {name!r} has no readable box ({err})") from None
    return VocObject(name, tuple(float(v) for v in box), difficult)


def _rotated_corners(obj: ET.Element) -> np.ndarray | None:
    """``(4, 2)`` corners in pixels of an object's rotated box, or None when it has none.

    ``<rotated_bndbox>`` with ``x1 y1 ... x4 y4`` (the official RBox-SSDD), or roLabelImg's
    ``<robndbox>`` ``cx cy w h angle`` (angle in radians, as roLabelImg writes it).
    """
    rot = obj.find("rotated_bndbox")
    if rot is None:
        rot = obj.find("robndbox")
    if rot is None:
        return None
    if rot.find("x1") is not None:
        return np.array([[float(rot.findtext(f"x{k}")), float(rot.findtext(f"y{k}"))]
                         for k in range(1, 5)])
    if rot.tag != "robndbox":
        raise ValueError("<rotated_bndbox> without its corners x1 y1 ... x4 y4")
    cx, cy, w, h, angle = (float(rot.findtext(k)) for k in ("cx", "cy", "w", "h", "angle"))
    c, s = np.cos(angle), np.sin(angle)
    half = np.array([[-w, -h], [w, -h], [w, h], [-w, h]]) / 2
    return np.stack([cx + half[:, 0] * c - half[:, 1] * s,
                     cy + half[:, 0] * s + half[:, 1] * c], axis=1)
