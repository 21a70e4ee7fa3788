"""Patch grid and blocks: where patches are cut, and how they are grouped for warping.

Patches are ``size`` x ``size`` SAR windows on a grid anchored at the sub-region's top-left
corner with stride ``round(size * (1 - overlap))`` (205 px for 256 px at 20 % overlap, paper 002
section II.F and paper 003 Algorithm 1 step 6; paper 002's "stride of 52" is a typo for this),
kept when every pixel centre lies in the sub-region. Neighbouring patches are grouped
``block`` x ``block`` into blocks, the unit of warping, of writing and of resuming: a block's
SAR and optical windows are read and warped once.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from saropt.build.tiepoints import SubRegion


@dataclass
class Block:
    """Neighbouring patches sharing one warped window."""

    index: tuple[int, int]  # block row, block column
    positions: list[tuple[int, int]]  # (x, y) of each patch's top-left SAR pixel

    def window(self, size: int) -> tuple[int, int, int, int]:
        """``(x0, y0, w, h)`` in SAR px of the window covering all patches of side ``size``."""
        xs = [p[0] for p in self.positions]
        ys = [p[1] for p in self.positions]
        return min(xs), min(ys), max(xs) + size - min(xs), max(ys) + size - min(ys)

    @property
    def name(self) -> str:
        """``b<row>_<col>`` (4 digits each), the block's file-name stem."""
        return f"b{self.index[0]:04d}_{self.index[1]:04d}"


def grid_positions(sr: SubRegion, size: int, stride: int) -> list[tuple[int, int, int, int]]:
    """(x, y, row, col) of every patch inside the sub-region, row-major.

    ``x``, ``y``: the patch's top-left SAR pixel; ``row``, ``col``: its grid index. ``size``
    and ``stride`` in SAR px. A polygon sub-region keeps a patch only when its border pixel
    centres lie inside the polygon and no polygon vertex lies inside the patch.
    """
    x0, y0, x1, y1 = sr.bbox
    out = []
    for r, y in enumerate(range(y0, y1 - size + 1, stride)):
        for c, x in enumerate(range(x0, x1 - size + 1, stride)):
            if sr.polygon is None or _inside_polygon(sr.polygon, x, y, size):
                out.append((x, y, r, c))
    return out


def _inside_polygon(poly: np.ndarray, x: int, y: int, size: int) -> bool:
    """All border pixel centres of the patch inside, and no polygon vertex inside the patch."""
    from matplotlib.path import Path as MplPath

    e = np.arange(size, dtype=float)
    last = float(size - 1)
    border = np.concatenate([np.column_stack([e, np.zeros(size)]),
                             np.column_stack([e, np.full(size, last)]),
                             np.column_stack([np.zeros(size), e]),
                             np.column_stack([np.full(size, last), e])]) + [x, y]
    if not MplPath(poly).contains_points(border).all():
        return False
    vx, vy = poly[:, 0], poly[:, 1]
    return not np.any((vx > x) & (vx < x + last) & (vy > y) & (vy < y + last))


def plan_blocks(sr: SubRegion, size: int, stride: int, block: int) -> list[Block]:
    """Patches of the sub-region grouped ``block`` x ``block`` by grid index, row-major."""
    groups: dict[tuple[int, int], list[tuple[int, int]]] = {}
    for x, y, r, c in grid_positions(sr, size, stride):
        groups.setdefault((r // block, c // block), []).append((x, y))
    return [Block(k, groups[k]) for k in sorted(groups)]
