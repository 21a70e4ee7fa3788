"""Shared core: configs, overrides, CLI plumbing, atomic writes, weight loading with reports."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from torch import nn

from saropt.cli import main
from saropt.config import Config, ConfigError, build_config, load_config, parse_overrides
from saropt.utils.io import atomic_path, write_json_atomic
from saropt.utils.table import format_table
from saropt.utils.weights import load_state_dict_report, read_weights


class Optim(Config):
    lr: float = 0.01
    milestones: list[int] = [30, 100]


class Exp(Config):
    name: str = "x"
    epochs: int = 200
    optim: Optim = Optim()


def test_overrides_parse_as_yaml_scalars():
    assert parse_overrides(["a.b=1", "c=x", "d=[1, 2]", "e=true"]) == {
        "a": {"b": 1}, "c": "x", "d": [1, 2], "e": True}


def test_config_overrides_and_defaults(tmp_path: Path):
    cfg_file = tmp_path / "exp.yaml"
    cfg_file.write_text("epochs: 14\noptim:\n  lr: 0.02\n")
    cfg = load_config(Exp, cfg_file, ["optim.milestones=[8, 12]"])
    assert (cfg.epochs, cfg.optim.lr, cfg.optim.milestones) == (14, 0.02, [8, 12])


@pytest.mark.parametrize("override, key", [("optim.lr_rate=1", "optim.lr_rate"),
                                           ("epochs=many", "epochs"),
                                           ("bogus=1", "bogus")])
def test_bad_keys_are_named(override: str, key: str):
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        build_config(Exp, {}, [override])


def test_bad_override_syntax():
    with pytest.raises(ConfigError, match="key=value"):
        parse_overrides(["lr0.1"])


def test_missing_config_is_clear_error():
    with pytest.raises(ConfigError, match="neither a file nor a built-in"):
        load_config(Exp, "no/such/config")


def test_non_mapping_yaml(tmp_path: Path):
    f = tmp_path / "bad.yaml"
    f.write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="mapping"):
        load_config(Exp, f)


def test_atomic_path_leaves_nothing_on_error(tmp_path: Path):
    target = tmp_path / "out.json"
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("crash")
    assert not target.exists() and list(tmp_path.iterdir()) == []
    write_json_atomic(target, {"a": 1})
    assert json.loads(target.read_text()) == {"a": 1}


def test_format_table_markdown():
    text = format_table([("a", 0.5)], ["k", "v"], markdown=True)
    assert text.splitlines() == ["| k | v      |", "|---|--------|", "| a | 0.5000 |"]


def test_cli_version_and_help(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0 and "saropt" in capsys.readouterr().out
    assert main([]) == 0


def test_weights_report_adapts_input_channels_and_lists_mismatches(tmp_path: Path):
    src = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.Conv2d(4, 2, 1))
    dst = nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.Conv2d(4, 5, 1))
    report = load_state_dict_report(dst, src.state_dict())
    assert report.adapted == ["0.weight"]
    assert "0.bias" in report.matched and "1.running_mean" in report.matched
    assert [m[0] for m in report.mismatched] == ["2.weight", "2.bias"]
    assert set(report.missing) == {"2.weight", "2.bias"}
    # RGB -> grey sums the filters: a grey image gives the same response as the RGB net on it
    x = torch.rand(1, 1, 8, 8)
    torch.testing.assert_close(dst[0](x), src[0](x.repeat(1, 3, 1, 1)))
    path = tmp_path / "w.pt"
    torch.save({"state_dict": src.state_dict(), "epoch": 3}, path)
    state, meta = read_weights(path)
    assert meta == {"epoch": 3} and set(state) == set(src.state_dict())
