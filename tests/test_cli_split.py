"""Library and command line apart: only ``cli`` modules use argparse, no library module imports
``saropt.cli``; the ``saropt fuse`` short form is spelled out before parsing (plain argparse)."""

from __future__ import annotations

import argparse
import ast
import json
from pathlib import Path

import pytest
from _qxs_fixtures import write_tiny_coco

import saropt
from saropt.cli import build_parser, expand_short_forms, main
from saropt.fuse import cli as fuse_cli

SRC = Path(saropt.__file__).parent
#: modules allowed to use argparse: the command line
CLI_MODULES = {"cli.py", "cli_types.py"}


def _imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names |= {f"{node.module}.{a.name}" for a in node.names}
    return names


def test_only_cli_modules_use_argparse_and_no_library_module_imports_the_cli():
    uses_argparse, imports_cli = [], []
    for path in sorted(SRC.rglob("*.py")):
        if path.name in CLI_MODULES:
            continue
        names = _imports(path)
        rel = str(path.relative_to(SRC))
        if "argparse" in names:
            uses_argparse.append(rel)
        if {"saropt.cli", "saropt.cli_types"} & names:
            imports_cli.append(rel)
    assert uses_argparse == [] and imports_cli == []
    assert (SRC / "detect" / "cli.py").is_file()  # the scan saw the package


@pytest.mark.parametrize("argv, expected", [
    (["fuse", "a.json", "b.json", "--gt", "g.json"],
     ["fuse", "run", "a.json", "b.json", "--gt", "g.json"]),
    (["--debug", "fuse", "fuse/nms", "out=f.json"], ["--debug", "fuse", "run", "fuse/nms",
                                                     "out=f.json"]),
    (["fuse", "--gt", "g.json", "a.json"], ["fuse", "run", "--gt", "g.json", "a.json"]),
    (["fuse", "compare", "a.json", "--gt", "g.json"], ["fuse", "compare", "a.json", "--gt",
                                                       "g.json"]),
    (["fuse", "run", "a.json"], ["fuse", "run", "a.json"]),
    (["fuse", "-h"], ["fuse", "-h"]),
    (["fuse", "--help"], ["fuse", "--help"]),
    (["fuse"], ["fuse"]),
    (["detect", "a.json"], ["detect", "a.json"]),
    (["--version"], ["--version"]),
    ([], []),
])
def test_fuse_short_form_is_spelled_out(argv, expected):
    assert expand_short_forms(argv) == expected


def test_fuse_subcommands_are_the_parsers():
    """``SUBCOMMANDS`` (what the short form leaves alone) is the set of ``fuse`` parsers."""
    fuse = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction)
                ).choices["fuse"]
    sub = next(a for a in fuse._actions if isinstance(a, argparse._SubParsersAction))
    assert tuple(sub.choices) == fuse_cli.SUBCOMMANDS


def test_fuse_short_form_through_the_entry_point(tmp_path, capsys):
    gt, pred = write_tiny_coco(tmp_path)
    out = tmp_path / "fused.json"
    assert main(["fuse", str(pred), str(pred), "--gt", str(gt), "--out", str(out), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["n_inputs"] == [1, 1] and summary["n_fused"] == 1
    fused = json.loads(out.read_text())
    assert len(fused) == 1 and fused[0]["bbox"] == pytest.approx([4, 4, 10, 10])
    # the group alone still shows its help (exit 2), and -h is the group's help
    assert main(["fuse"]) == 2
    assert "osd-transfer" in capsys.readouterr().out
    with pytest.raises(SystemExit) as exit_:
        main(["fuse", "-h"])
    assert exit_.value.code == 0
    assert "is short for saropt fuse run" in " ".join(capsys.readouterr().out.split())


def test_no_subclass_of_argparse_private_classes():
    """Plain argparse: no class derives from ``argparse._SubParsersAction`` and the like."""
    private = []
    for path in sorted(SRC.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.ClassDef):
                private += [f"{path.relative_to(SRC)}:{node.name}" for b in node.bases
                            if isinstance(b, ast.Attribute) and isinstance(b.value, ast.Name)
                            and b.value.id == "argparse" and b.attr.startswith("_")]
    assert private == []
