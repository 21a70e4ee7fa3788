"""``saropt reproduce``: every table cell has a config and exact commands; missing data is a clear
error; a run executes steps in order, resumes, and writes our numbers beside the paper's."""

from __future__ import annotations

import argparse
import json
import sys
import textwrap
from pathlib import Path

import pytest

from saropt import cli, reproduce
from saropt.errors import DataError, SaroptError

#: 003 Table 3 as transcribed in shared/papers/README.md: (ImageNet-SSD, BNN-based-SSD)
TABLE3 = {("air1", "faster_rcnn"): (0.8720, 0.8852), ("air1", "yolov3"): (0.8712, 0.8836),
          ("hrsid", "faster_rcnn"): (0.8878, 0.8932), ("hrsid", "yolov3"): (0.8364, 0.8454),
          ("air2", "faster_rcnn"): (0.8487, 0.8582), ("air2", "yolov3"): (0.8300, 0.8470),
          ("ssdd", "faster_rcnn"): (0.9624, 0.9679), ("ssdd", "yolov3"): (0.9447, 0.9468)}


def _cli(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="saropt")
    cli.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(argv)
    return args.func(args)


def test_table3_dry_run_lists_every_cell_with_config_and_commands(tmp_path, capsys):
    assert _cli(["reproduce", "table3", "--data-root", str(tmp_path / "data"), "--out",
                 str(tmp_path / "out"), "--dry-run", "--json"]) == 0
    listing = json.loads(capsys.readouterr().out)
    cells = {c["cell"]: c for c in listing["cells"]}
    assert len(cells) == 16
    for (data, det), (inet, osm) in TABLE3.items():
        for init, paper in (("imagenet", inet), ("osm", osm)):
            c = cells[f"{data}_{det}_{init}"]
            assert Path(c["config"]).is_file()
            assert c["paper"] == {"AP": paper}
            cmds = [s["command"] for s in c["commands"]]
            assert all(cmd.startswith("saropt ") for cmd in cmds)
            assert any(cmd.startswith("saropt detect train") and "model.init=" +
                       ("imagenet:" if init == "imagenet" else "bnn:") in cmd for cmd in cmds)
            assert cmds[-2].startswith("saropt detect predict")
            assert cmds[-1].startswith("saropt detect eval")
            if init == "osm":
                assert cmds[0].startswith("saropt data split")
                assert cmds[1].startswith("saropt bnn train")
                assert cmds[2].startswith("saropt bnn export")
            assert str(tmp_path / "data") in " ".join(cmds)
            assert all(v == "MISSING" for v in c["datasets"].values())
    assert _cli(["reproduce", "table3", "--data-root", str(tmp_path), "--dry-run",
                 "--only", "ssdd_yolov3_osm"]) == 0
    text = capsys.readouterr().out
    assert "## ssdd_yolov3_osm" in text and "saropt bnn train bnn/qxs_darknet53" in text
    assert "AP 0.9468" in text and "SSDD (MISSING)" in text


@pytest.mark.parametrize("table", list(reproduce.TABLES))
def test_every_command_names_an_existing_builtin_config(table):
    from saropt.config import resolve_config_path

    for cell in reproduce.load_table(table):
        for step in cell.steps:
            argv = step.run.split()
            if argv[1:3] in (["bnn", "train"], ["detect", "train"], ["fuse", "osd-train"]):
                assert resolve_config_path(argv[3]).is_file(), (cell.cell, argv[3])
            if argv[1] == "fuse" and argv[2].startswith("fuse/"):
                assert resolve_config_path(argv[2]).is_file()


@pytest.mark.parametrize("table,n", [("table1", 2), ("table2", 3), ("osd_wbf", 16)])
def test_every_builtin_table_loads(table, n):
    cells = reproduce.load_table(table)
    assert len(cells) == n
    assert len({c.cell for c in cells}) == n
    for c in cells:
        assert c.steps and c.ours and c.datasets
        assert all(s.run.split()[0] == "saropt" for s in c.steps)
    if table == "table1":
        assert cells[0].paper == {"accuracy": 0.829, "precision": 0.748, "recall": 0.993}


def test_missing_dataset_names_the_folder(tmp_path):
    (tmp_path / "HRSID").mkdir()
    with pytest.raises(DataError) as err:
        _cli(["reproduce", "table3", "--data-root", str(tmp_path), "--only",
              "hrsid_faster_rcnn_osm", "hrsid_faster_rcnn_imagenet", "--out", str(tmp_path / "o")])
    msg = str(err.value)
    assert str(tmp_path / "QXS-SAROPT") in msg and str(tmp_path / "pretrained") in msg
    assert "HRSID/" not in msg.split("\n")[1]
    assert "hrsid_faster_rcnn_osm" in msg
    assert not (tmp_path / "o").exists()  # nothing ran
    with pytest.raises(SaroptError, match="no cell"):
        reproduce.load_table("table3", ["nope"])
    with pytest.raises(SaroptError, match="unknown table"):
        reproduce.load_table("table9")


def _toy_table(tmp_path: Path) -> Path:
    """A one-cell table whose steps are small Python commands (no braces: they are templates)."""
    table = tmp_path / "toy"
    table.mkdir()
    counter = tmp_path / "count.txt"
    script = tmp_path / "step.py"
    script.write_text(textwrap.dedent(f"""
        import json, sys
        from pathlib import Path
        c = Path({str(counter)!r})
        c.write_text(str(int(c.read_text() or 0) + 1) if c.exists() else "1")
        out = Path(sys.argv[1]); out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(dict(all=dict(ap50=dict(voc07_11pt=0.5)), data=sys.argv[2])))
    """))
    (table / "cell_a.yaml").write_text(textwrap.dedent(f"""
        table: toy
        cell: cell_a
        title: a toy cell
        source: nowhere
        datasets: [TOY]
        paper: {{AP: 0.9}}
        ours: {{AP50 VOC07 11-pt: all.ap50.voc07_11pt}}
        result: toy/metrics.json
        steps:
          - name: make metrics
            creates: toy/metrics.json
            run: "{{python}} {script} {{out}}/toy/metrics.json {{data}}/TOY"
    """))
    return table


def test_run_executes_resumes_and_writes_markdown(tmp_path, capsys):
    table = _toy_table(tmp_path)
    (tmp_path / "data" / "TOY").mkdir(parents=True)
    out = tmp_path / "out"
    args = ["reproduce", str(table), "--data-root", str(tmp_path / "data"), "--out", str(out)]
    assert _cli(args) == 0
    md = (out / "toy.md").read_text()
    assert "| cell_a" in md and "0.9000" in md and "0.5000" in md
    assert "paper AP" in md and "ours AP50 VOC07 11-pt" in md
    assert json.loads((out / "toy" / "metrics.json").read_text())["data"].endswith("TOY")
    assert (out / "logs" / "cell_a" / "make_metrics.log").is_file()
    assert (tmp_path / "count.txt").read_text() == "1"
    assert _cli(args) == 0  # resumed: the cell's result exists, nothing runs again
    assert (tmp_path / "count.txt").read_text() == "1"
    (out / "results" / "cell_a.json").unlink()  # the step finished before: skipped
    assert _cli(args) == 0
    assert (tmp_path / "count.txt").read_text() == "1"
    # output present but no completion marker (a kill half-way): the command runs again
    for marker in (out / ".done").iterdir():
        marker.unlink()
    (out / "results" / "cell_a.json").unlink()
    assert _cli(args) == 0
    assert (tmp_path / "count.txt").read_text() == "2"


def test_failing_step_is_reported_with_its_log(tmp_path):
    table = _toy_table(tmp_path)
    cfg = table / "cell_a.yaml"
    cfg.write_text(cfg.read_text().replace("{python} ", "{python} -c 'raise SystemExit(3)' "))
    (tmp_path / "data" / "TOY").mkdir(parents=True)
    with pytest.raises(SaroptError, match=r"cell cell_a, step 'make metrics' failed \(exit 3\)"):
        reproduce.run_table(table, tmp_path / "data", tmp_path / "out")


def test_saropt_commands_run_this_interpreter():
    step = reproduce.ReproStep(name="x", run="saropt fuse a.json --gt {data}/g.json")
    argv = reproduce.step_argv(step, Path("/d"), Path("/o"))
    assert argv[:3] == [sys.executable, "-m", "saropt.cli"]
    assert argv[3:] == ["fuse", "a.json", "--gt", "/d/g.json"]


def test_paths_with_spaces_stay_one_argument():
    step = reproduce.ReproStep(name="x", run="saropt detect eval --pred {out}/p.json")
    argv = reproduce.step_argv(step, Path("/d"), Path("/my runs"))
    assert argv[-1] == "/my runs/p.json"
