"""The ``saropt`` command. Subcommands are grouped by concept; each group lives beside its code
(``saropt/<group>/cli.py``) and exposes ``register(subparsers)``.

Heavy imports (torch, rasterio, ...) happen inside the command functions, so ``--help`` is fast.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
from typing import Any

from saropt import __version__
from saropt.config import ConfigError
from saropt.errors import SaroptError

#: (group name, module with ``register(subparsers)``), in the order shown by ``saropt --help``.
GROUPS: list[tuple[str, str]] = [
    ("synth", "saropt.synth.cli"),
    ("data", "saropt.data.cli"),
    ("bnn", "saropt.bnn.cli"),
    ("detect", "saropt.detect.cli"),
    ("fuse", "saropt.fuse.cli"),
    ("reproduce", "saropt.reproduce"),
    ("demo", "saropt.demo"),
    ("configs", "saropt.cli"),
]


def add_config_args(parser: argparse.ArgumentParser, required: bool = False) -> None:
    """``CONFIG`` (a YAML path or built-in name) and trailing ``key=value`` overrides."""
    parser.add_argument("config", nargs=None if required else "?", default=None,
                        help="YAML config file or built-in config name (see `saropt configs`)")
    parser.add_argument("overrides", nargs="*", metavar="key=value",
                        help="config overrides with dotted keys, e.g. optim.lr=0.02")


def add_json_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print results as JSON")


def key_value(text: str) -> tuple[str, Any]:
    """argparse ``type`` for ``--option KEY=VALUE``: ``(key, value parsed as YAML)``."""
    import yaml

    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"--option {text!r} is not key=value")
    return key, yaml.safe_load(value)


def emit(result: Any, as_json: bool, text: str) -> None:
    """Print ``text`` for people, or ``result`` as JSON for machines."""
    if as_json:
        print(json.dumps(result, indent=2, default=str))
    else:
        print(text)


def register(subparsers: argparse._SubParsersAction) -> None:
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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="saropt",
        description="SAR-optical deep learning: QXS-SAROPT data, Bridge Neural Networks, "
        "OSM/OSD-pretrained SAR ship detectors and weighted boxes fusion.",
    )
    parser.add_argument("--version", action="version", version=f"saropt {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for _, module in GROUPS:
        importlib.import_module(module).register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        # a group without a subcommand: show that group's help
        (getattr(args, "_parser", None) or parser).print_help()
        return 0 if args.command is None else 2
    try:
        return int(args.func(args) or 0)
    except (SaroptError, ConfigError) as err:
        print(f"saropt: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("saropt: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # output piped into `head` and closed: end quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    sys.exit(main())
