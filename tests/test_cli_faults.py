"""Every subcommand answers a fault with one line: ``saropt: error: ...`` on stderr, exit 2, no
traceback. The argparse tree is enumerated, so a command added later is covered too: with an
output path nobody can create (its parent is a file; root cannot create it either) and with a
config or input file that is not UTF-8."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest
from _qxs_fixtures import write_tiny_coco

from saropt.cli import build_parser, main

NOT_UTF8 = b"model: \xff\xfe\xe9 caf\xe9\n"
#: commands whose documented answer to bad data is a problem report on stdout and exit 1
REPORTS_PROBLEMS = {("data", "check")}
PATCH = 64
SAR_DIR, OPT_DIR = f"sar_{PATCH}_oc_0.2", f"opt_{PATCH}_oc_0.2"


def leaf_commands(parser: argparse.ArgumentParser, prefix: tuple[str, ...] = ()
                  ) -> dict[tuple[str, ...], argparse.ArgumentParser]:
    """Every runnable subcommand of the CLI, by its words."""
    out = {}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in dict(action.choices.items()).items():
                out.update(leaf_commands(sub, (*prefix, name)))
    if not out and prefix:
        out[prefix] = parser
    return out


@pytest.fixture(scope="module")
def world(tmp_path_factory, synth_qxs_root, synth_scene_dir, tiny_bnn_run):
    """Small valid inputs, a not-UTF-8 file and an output path that cannot be created."""
    base = tmp_path_factory.mktemp("faults")
    blocker = base / "a_file"
    blocker.write_text("I am a file, not a folder\n")
    bad = base / "latin1.yaml"
    bad.write_bytes(NOT_UTF8)
    write_tiny_coco(base)
    return {"base": base, "blocked": blocker / "out", "bad": bad, "qxs": synth_qxs_root,
            "split": tiny_bnn_run[1], "scene": synth_scene_dir, "gt": base / "gt.json",
            "pred": base / "pred.json"}


@pytest.fixture(scope="module")
def bnn_checkpoint(tiny_bnn_run):
    return tiny_bnn_run[0] / "checkpoints" / "last.ckpt"


def good_argv(words: tuple[str, ...], w: dict, ckpt: Path) -> list[str] | None:
    """Valid inputs with the unwritable output, for the commands known today."""
    u = str(w["blocked"])
    qxs = [str(w["qxs"]), "--sar-dir", SAR_DIR, "--opt-dir", OPT_DIR]
    scene = w["scene"]
    table: dict[tuple[str, ...], list[str]] = {
        ("synth", "scene"): ["--size", "64", "--out", u, "--quiet"],
        ("synth", "pairs"): ["--n", "1", "--patch-size", "32", "--scene-size", "64", "--out", u,
                             "--quiet"],
        ("synth", "ships"): ["--n-train", "1", "--n-test", "1", "--size", "64", "--out", u,
                             "--quiet"],
        ("data", "split"): [*qxs, "--train-frac", "0.5", "--test-frac", "0.5", "--out", u],
        ("data", "cache"): [*qxs, "--out", u],
        ("data", "build"): ["build/default", f"sar={scene / 'sar.tif'}",
                            f"optical={scene / 'optical.tif'}",
                            f"tiepoints={scene / 'tiepoints.csv'}",
                            f"subregions={scene / 'subregions.json'}", f"out={u}"],
        ("bnn", "train"): ["bnn/synthetic_resnet18", f"data.root={w['qxs']}",
                           f"data.split={w['split']}", f"data.patch_size={PATCH}",
                           f"data.sar_dir={SAR_DIR}", f"data.opt_dir={OPT_DIR}", f"out_dir={u}"],
        ("bnn", "eval"): [str(ckpt), "--split", str(w["split"]), "--out", u],
        ("bnn", "export"): [str(ckpt), "--out", u],
        ("bnn", "embed"): [str(ckpt), str(w["qxs"] / SAR_DIR), "--modality", "sar", "--out",
                           f"{u}/codes.npy"],
        ("detect", "eval"): ["--gt", str(w["gt"]), "--pred", str(w["pred"]), "--out", u],
        ("detect", "train"): ["detect/synthetic_faster_rcnn_r18", f"data.root={w['base']}",
                              f"out_dir={u}"],
        ("fuse", "run"): [str(w["pred"]), str(w["pred"]), "--gt", str(w["gt"]), "--out",
                          f"{u}/fused.json"],
        ("fuse", "compare"): [str(w["pred"]), str(w["pred"]), "--gt", str(w["gt"]), "--names",
                              "a", "b", "--out", u],
        ("fuse", "osd-train"): ["osd/faster_rcnn_dota", f"data.root={w['base']}", f"out_dir={u}"],
        ("demo",): ["--out", u],
        ("reproduce",): ["table1", "--data-root", str(w["base"]), "--out", u],
    }
    return table.get(words)


def synthesized_argv(parser: argparse.ArgumentParser, w: dict) -> list[str]:
    """Arguments made from the parser alone: every input is the not-UTF-8 file, every output
    the path that cannot be created, numbers 1, choices their first."""
    argv: list[str] = []
    required_groups = [g for g in parser._mutually_exclusive_groups if g.required]
    chosen = {id(g._group_actions[0]) for g in required_groups}
    for a in parser._actions:
        if isinstance(a, (argparse._HelpAction, argparse._VersionAction)):
            continue
        if not a.option_strings:
            if a.nargs in ("*", "?") and a.dest != "config":
                continue
            argv += [_value(a, w)] * (1 if a.nargs in (None, "?", "+") else int(a.nargs or 1))
        elif a.required or id(a) in chosen or a.dest in ("out", "out_dir"):
            if a.nargs == 0:
                argv.append(a.option_strings[0])
            else:
                argv += [a.option_strings[0], _value(a, w)]
    return argv


def _value(a: argparse.Action, w: dict) -> str:
    if a.dest in ("out", "out_dir", "gt_out"):
        return str(w["blocked"])
    if a.choices:
        return str(next(iter(a.choices)))
    if a.type in (int, float) or getattr(a.type, "__name__", "") in ("integer", "number"):
        return "1"
    return str(w["bad"])


def run(argv: list[str], capsys) -> tuple[int, str, str]:
    capsys.readouterr()
    rc = main(argv)
    cap = capsys.readouterr()
    return rc, cap.out, cap.err


def assert_one_line(words, argv, rc: int, out: str, err: str) -> None:
    shown = f"saropt {' '.join(words)} {' '.join(argv)}"
    assert "Traceback" not in out + err, shown
    if words in REPORTS_PROBLEMS and rc == 1:
        return
    assert rc == 2, f"{shown}: exit {rc}\n{err}"
    lines = [ln for ln in err.splitlines() if ln.strip() and "%|" not in ln]  # no progress bars
    assert len(lines) == 1 and lines[0].startswith("saropt: error: "), f"{shown}:\n{err}"


COMMANDS = sorted(leaf_commands(build_parser()))


@pytest.mark.parametrize("words", COMMANDS, ids=" ".join)
def test_every_command_unwritable_output_is_one_line(words, world, bnn_checkpoint, capsys,
                                                     one_torch_thread):
    parser = leaf_commands(build_parser())[words]
    argv = good_argv(words, world, bnn_checkpoint)
    has_output = any(a.dest in ("out", "out_dir") for a in parser._actions) or \
        any(a.dest in ("config",) for a in parser._actions)
    if argv is None:
        if not has_output:
            pytest.skip("writes no output")
        argv = synthesized_argv(parser, world)
    rc, out, err = run([*words, *argv], capsys)
    assert_one_line(words, argv, rc, out, err)
    if good_argv(words, world, bnn_checkpoint) is not None and words != ("reproduce",):
        assert "a_file" in err, err  # the message names the path that could not be written


@pytest.mark.parametrize("words", COMMANDS, ids=" ".join)
def test_every_command_non_utf8_input_is_one_line(words, world, capsys):
    parser = leaf_commands(build_parser())[words]
    argv = synthesized_argv(parser, world)
    if not argv:
        pytest.skip("takes no input")
    rc, out, err = run([*words, *argv], capsys)
    assert_one_line(words, argv, rc, out, err)
    if any(a.dest == "config" for a in parser._actions):
        assert "latin1.yaml" in err and "UTF-8" in err, err


def test_enumeration_finds_the_known_commands():
    assert {("synth", "pairs"), ("data", "cache"), ("bnn", "train"), ("detect", "eval"),
            ("fuse", "compare"), ("demo",)} <= set(COMMANDS)
