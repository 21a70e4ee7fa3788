"""A Markdown report with PNG figures beside it, written atomically (demo, eval, summaries)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from saropt.utils.io import save_figure_atomic, write_text_atomic
from saropt.utils.table import format_table


class Report:
    """Collects sections, tables and figures; ``write()`` renders ``out_dir/report.md``."""

    def __init__(self, out_dir: str | Path, title: str) -> None:
        self.out_dir = Path(out_dir)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.lines: list[str] = [f"# {title}", ""]

    def section(self, title: str, text: str = "") -> None:
        """Start a ``##`` section, optionally with a first paragraph."""
        self.lines += [f"## {title}", ""] + ([text, ""] if text else [])

    def text(self, text: str) -> None:
        """Add a Markdown paragraph."""
        self.lines += [text, ""]

    def table(self, rows: Sequence[Sequence[Any]], headers: Sequence[str],
              floatfmt: str = ".4f") -> None:
        """Add a Markdown pipe table (floats formatted with ``floatfmt``)."""
        self.lines += [format_table(rows, headers, floatfmt, markdown=True), ""]

    def figure(self, fig: Any, name: str, caption: str = "") -> Path:
        """Save a matplotlib figure as ``out_dir/figures/name`` and reference it."""
        path = save_figure_atomic(fig, self.out_dir / "figures" / name)
        self.image(path, caption)
        return path

    def image(self, path: str | Path, caption: str = "") -> None:
        """Reference an image file inside ``out_dir`` (relative link), with an italic caption.

        Raises ``ValueError`` when ``path`` lies outside ``out_dir``.
        """
        rel = Path(path).resolve().relative_to(self.out_dir.resolve())
        self.lines += [f"![{caption or rel.stem}]({rel.as_posix()})", ""]
        if caption:
            self.lines += [f"*{caption}*", ""]

    def write(self) -> Path:
        """Write ``out_dir/report.md`` atomically and return its path."""
        return write_text_atomic(self.out_dir / "report.md", "\n".join(self.lines))
