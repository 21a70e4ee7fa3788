"""The ``saropt`` command: entry point, shared argparse helpers, the top-level commands.

Subcommands are grouped by concept; each group lives beside its code (``saropt/<group>/cli.py``)
and exposes ``register(subparsers)``. The commands without a group (``reproduce``, ``demo``,
``configs``) are defined here. Parsers and handlers only: the work is done by library modules
(``saropt.reproduce``, ``saropt.demo``, ``saropt.config``), which never import this module.

Heavy imports (torch, rasterio, ...) happen inside the command functions, so ``--help`` is fast.
"""

from __future__ import annotations

import argparse
import contextlib
import contextvars
import errno
import importlib
import json
import os
import sys
from pathlib import Path
from typing import Any

from saropt import __version__
from saropt.config import ConfigError
from saropt.errors import SaroptError

#: (group name, module with ``register(subparsers)``), in the order shown by ``saropt --help``;
#: the top-level commands of this module (:func:`register`) follow them.
GROUPS: list[tuple[str, str]] = [
    ("synth", "saropt.synth.cli"),
    ("data", "saropt.data.cli"),
    ("bnn", "saropt.bnn.cli"),
    ("detect", "saropt.detect.cli"),
    ("fuse", "saropt.fuse.cli"),
]


def add_config_args(parser: argparse.ArgumentParser, required: bool = False) -> None:
    """``CONFIG`` (a YAML path or built-in name) and trailing ``key=value`` overrides."""
    parser.add_argument("config", nargs=None if required else "?", default=None,
                        help="YAML config file or built-in config name (see `saropt configs`)")
    parser.add_argument("overrides", nargs="*", metavar="key=value",
                        help="config overrides with dotted keys, e.g. optim.lr=0.02")


def add_json_flag(parser: argparse.ArgumentParser) -> None:
    """``--json``: print the command's result as JSON instead of text (see :func:`emit`)."""
    parser.add_argument("--json", action="store_true", help="print results as JSON")


def add_overwrite_flag(parser: argparse.ArgumentParser, what: str = "output folder") -> None:
    """``--overwrite``: replace another run's output (the rule: saropt.utils.outdir)."""
    parser.add_argument("--overwrite", action="store_true",
                        help=f"replace the output of another run (another command or config) "
                        f"in the {what}; without it such a folder is refused")


#: where ``--json`` results go: the real stdout while :func:`main` sends other prints to stderr
_RESULTS: contextvars.ContextVar[Any] = contextvars.ContextVar("saropt_results", default=None)


def emit(result: Any, as_json: bool, text: str) -> None:
    """Print ``text`` for people, or ``result`` as JSON for machines.

    With ``--json`` the JSON is all that reaches stdout (:func:`main` sends the lines a command
    prints for people on the way, such as resume notes, to stderr), so it can be piped to a
    parser.
    """
    if as_json:
        print(json.dumps(result, indent=2, default=str), file=_RESULTS.get() or sys.stdout)
    else:
        print(text)


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the top-level commands ``reproduce``, ``demo`` and ``configs``."""
    _register_reproduce(subparsers)
    _register_demo(subparsers)
    _register_configs(subparsers)


# ------------------------------------------------------------------ reproduce


def _register_reproduce(subparsers: argparse._SubParsersAction) -> None:
    from saropt.reproduce import TABLES

    p = subparsers.add_parser(
        "reproduce", help="run a paper table's experiments (table1, table2, table3, osd_wbf)",
        description="Run the experiments behind a table of the papers, one cell per YAML in "
        "configs/reproduce/<table>/, and write a Markdown table with our numbers beside the "
        "paper's. Resumable: finished steps and cells are skipped.",
        epilog="tables:\n" + "\n".join(f"  {k}: {v}" for k, v in TABLES.items())
        + "\nexample:\n  saropt reproduce table3 --data-root /data --only hrsid_faster_rcnn_osm"
        " --dry-run", formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("table", help="table1 | table2 | table3 | osd_wbf, or a folder of cell YAMLs")
    p.add_argument("--data-root", required=True, type=Path,
                   help="folder holding the datasets (QXS-SAROPT/, SSDD/, HRSID/, ...)")
    p.add_argument("--only", nargs="+", metavar="CELL", help="run only these cells")
    p.add_argument("--dry-run", action="store_true",
                   help="list each cell's config and exact commands; run nothing")
    p.add_argument("--out", type=Path, default=Path("runs/reproduce"),
                   help="output folder (default runs/reproduce)")
    add_json_flag(p)
    p.set_defaults(func=_cmd_reproduce, _parser=p)


def _cmd_reproduce(args: argparse.Namespace) -> int:
    from saropt.reproduce import dry_run, dry_run_text, load_table, run_table

    data_root, out = args.data_root.resolve(), args.out.resolve()
    try:
        cells = load_table(args.table, args.only)
    except ConfigError as err:
        raise SaroptError(str(err)) from None
    if args.dry_run:
        listing = dry_run(args.table, cells, data_root, out)
        emit(listing, args.json, dry_run_text(listing))
        return 0
    result = run_table(args.table, data_root, out, args.only)
    emit(result, args.json, Path(result["markdown"]).read_text())
    return 0


# ------------------------------------------------------------------ demo


def _register_demo(subparsers: argparse._SubParsersAction) -> None:
    from saropt.cli_types import seed_int

    p = subparsers.add_parser("demo", help="run every stage on a small synthetic world and "
                              "write a report (Markdown + PNG)")
    p.add_argument("--out", default="demo_report", help="report folder (default: demo_report)")
    p.add_argument("--seed", type=seed_int, default=0)
    p.add_argument("--only", nargs="*", default=None,
                   help="run only stages whose module name contains one of these words")
    p.set_defaults(func=_cmd_demo)


def _cmd_demo(args: argparse.Namespace) -> int:
    from saropt.demo import run_demo

    run_demo(args.out, args.seed, args.only)
    return 0


# ------------------------------------------------------------------ configs


def _register_configs(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "configs", help="list the built-in experiment configs, or print one resolved",
        description="Without CONFIG: list the built-in configs. With CONFIG (a built-in name or a "
        "YAML file): print it resolved, its base: chain merged and key=value overrides applied.")
    p.add_argument("config", nargs="?", help="built-in config name or YAML file to print")
    p.add_argument("overrides", nargs="*", help="key=value overrides (dotted keys)")
    p.set_defaults(func=_cmd_configs)


def _cmd_configs(args: argparse.Namespace) -> int:
    import yaml

    from saropt.config import (
        builtin_config_dir,
        deep_merge,
        list_builtin_configs,
        parse_overrides,
        resolve_config,
    )

    if args.config is not None:
        data = deep_merge(resolve_config(args.config), parse_overrides(args.overrides))
        print(yaml.safe_dump(data, sort_keys=False), end="")
        return 0
    print(f"# built-in configs in {builtin_config_dir()}")
    for name in list_builtin_configs():
        print(name)
    return 0


# ------------------------------------------------------------------ entry point


def build_parser() -> argparse.ArgumentParser:
    """The whole ``saropt`` argparse tree: the groups of :data:`GROUPS`, then :func:`register`."""
    parser = argparse.ArgumentParser(
        prog="saropt",
        description="SAR-optical deep learning: QXS-SAROPT data, Bridge Neural Networks, "
        "OSM/OSD-pretrained SAR ship detectors and weighted boxes fusion.",
    )
    parser.add_argument("--version", action="version", version=f"saropt {__version__}")
    parser.add_argument("--debug", action="store_true",
                        help="show the full traceback of an unexpected error (also: "
                        "SAROPT_DEBUG=1)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for _, module in GROUPS:
        importlib.import_module(module).register(sub)
    register(sub)
    return parser


def expand_short_forms(argv: list[str]) -> list[str]:
    """``argv`` with the subcommand a short form leaves out spelled out.

    argparse has no default subcommand: ``saropt fuse A.json B.json ...`` becomes ``saropt fuse
    run A.json B.json ...`` here (:func:`saropt.fuse.cli.with_default_run`). Words before the
    command (``--debug``) are kept.
    """
    from saropt.fuse.cli import with_default_run

    i = next((i for i, word in enumerate(argv) if not word.startswith("-")), len(argv))
    return [*argv[:i], *with_default_run(argv[i:])]


def _run(args: argparse.Namespace) -> int:
    """Run the parsed command; with ``--json``, stdout carries the JSON result alone."""
    if not getattr(args, "json", False):
        return int(args.func(args) or 0)
    token = _RESULTS.set(sys.stdout)
    try:
        with contextlib.redirect_stdout(sys.stderr):
            return int(args.func(args) or 0)
    finally:
        _RESULTS.reset(token)


def main(argv: list[str] | None = None) -> int:
    """Run one ``saropt`` command; every failure ends as one line on stderr and exit status 2.

    Expected failures (:class:`SaroptError`, :class:`ConfigError`, file-system errors, text that
    is not UTF-8, memory) print ``saropt: error: ...`` naming the file and what to do. Anything
    else prints one line and the path of a file holding the full traceback; ``--debug`` (or
    ``SAROPT_DEBUG=1``) raises it instead.
    """
    parser = build_parser()
    args = parser.parse_args(expand_short_forms(sys.argv[1:] if argv is None else argv))
    if not getattr(args, "func", None):
        # a group without a subcommand: show that group's help
        (getattr(args, "_parser", None) or parser).print_help()
        return 0 if args.command is None else 2
    debug = args.debug or os.environ.get("SAROPT_DEBUG", "") not in ("", "0")
    try:
        return _run(args)
    except KeyboardInterrupt:
        print("saropt: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # output piped into `head` and the like: not an error
        _silence_stdout()
        return 0
    except Exception as err:  # noqa: BLE001 - the one place that turns failures into one line
        message = error_message(err)
        if message is None:
            if debug:
                raise
            message = _unexpected(err)
        print(f"saropt: error: {message}", file=sys.stderr)
        return 2


def error_message(err: BaseException) -> str | None:
    """The one-line message of an expected failure, or None for an unexpected one (a bug)."""
    if isinstance(err, (SaroptError, ConfigError)):
        return _one_line(str(err))
    if isinstance(err, OSError):
        return os_error_message(err)
    if isinstance(err, UnicodeDecodeError):
        return (f"an input file is not UTF-8 text ({err.reason} at byte {err.start}); "
                "save it as UTF-8 and rerun")
    if isinstance(err, MemoryError):
        return ("out of memory; use smaller inputs (patch size, batch size, scene size) or a "
                "machine with more memory")
    return None


def _one_line(text: str) -> str:
    """Multi-line messages (config errors listing several keys) joined with '; '."""
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    return lines[0] + (" " + "; ".join(lines[1:]) if len(lines) > 1 else "")


_OS_HINTS: dict[int, str] = {
    errno.EACCES: "permission denied; choose a location you can write to (e.g. another --out) "
                  "or fix its permissions",
    errno.EPERM: "operation not permitted; choose another location or fix its permissions",
    errno.EROFS: "read-only file system; choose another location",
    errno.EEXIST: "already exists and is in the way (a file where a folder is needed?); "
                  "remove it or choose another path",
    errno.EISDIR: "is a folder, but a file is needed here; give a file path",
    errno.ENOTDIR: "a part of this path is a file, not a folder; choose another path",
    errno.ENOENT: "does not exist; check the path",
    errno.ENOSPC: "no space left on the device; free space and rerun (finished outputs are "
                  "kept, partial ones were not written under their final names)",
    errno.EDQUOT: "disk quota exceeded; free space and rerun",
    errno.ENAMETOOLONG: "file name too long; choose a shorter path",
}


def os_error_message(err: OSError) -> str:
    """``PATH: what happened; what to do`` for a file-system error."""
    paths = [p for p in (err.filename, err.filename2) if p is not None]
    hint = _OS_HINTS.get(err.errno or -1, err.strerror or str(err))
    if not paths:
        return hint if err.errno in _OS_HINTS else str(err) or type(err).__name__
    where = " -> ".join(os.fsdecode(p) if isinstance(p, (str, bytes, os.PathLike)) else str(p)
                        for p in paths)
    return f"{where}: {hint}"


def _unexpected(err: BaseException) -> str:
    """Write the traceback to a file; the one-line message names the error and that file."""
    import tempfile
    import traceback

    text = "".join(traceback.format_exception(type(err), err, err.__traceback__))
    summary = str(err).splitlines()[0] if str(err) else ""
    try:
        fd, path = tempfile.mkstemp(prefix="saropt-traceback-", suffix=".txt")
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
        where = f"full traceback in {path}"
    except OSError:
        where = "the traceback could not be written to a file"
    return (f"unexpected {type(err).__name__}: {summary[:300]} ({where}; rerun with --debug to "
            "show it; please report it)")


def _silence_stdout() -> None:
    """After a closed pipe, point stdout at /dev/null so the interpreter's flush stays quiet."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass


if __name__ == "__main__":
    sys.exit(main())
