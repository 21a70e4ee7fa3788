"""Plain-text and Markdown tables for CLI output and reports."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def _fmt(v: Any, floatfmt: str) -> str:
    if isinstance(v, float):
        return format(v, floatfmt)
    return str(v)


def format_table(rows: Sequence[Sequence[Any]], headers: Sequence[str],
                 floatfmt: str = ".4f", markdown: bool = False) -> str:
    """Align ``rows`` under ``headers``; ``markdown=True`` gives a GitHub-style pipe table."""
    cells = [[_fmt(v, floatfmt) for v in row] for row in rows]
    widths = [max([len(h)] + [len(r[i]) for r in cells]) for i, h in enumerate(headers)]
    if markdown:
        line = lambda r: "| " + " | ".join(c.ljust(w) for c, w in zip(r, widths)) + " |"  # noqa: E731
        sep = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
        return "\n".join([line(headers), sep] + [line(r) for r in cells])
    line = lambda r: "  ".join(c.rjust(w) for c, w in zip(r, widths))  # noqa: E731
    return "\n".join([line(headers), line(["-" * w for w in widths])] + [line(r) for r in cells])
