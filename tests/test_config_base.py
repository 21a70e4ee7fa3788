"""Configs that inherit (``base:``): the loader, and the built-in paper configs written as a few
lines over their recipe, checked against the paper and against the copy-paste files they replace.

``fixtures/configs_before_base.json`` holds, for every ``bnn/``, ``detect/`` and ``osd/`` built-in
config as it was before ``base:`` existed (main at ccc6f7f), the raw YAML mapping and the validated
config (detect/osd with ``data.root=/data/x model.init=random``). A deliberate change to a
recipe updates that fixture in the same commit, so that drift is never silent. Keys added to the
config models since then must hold their field's default in every paper config.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from saropt.bnn.config import BNNConfig
from saropt.cli import main
from saropt.config import Config, ConfigError, list_builtin_configs, load_config, resolve_config
from saropt.detect.module import DetectConfig

BEFORE = json.loads((Path(__file__).parent / "fixtures" / "configs_before_base.json").read_text())


class Optim(Config):
    lr: float = 0.01
    milestones: list[int] = [30, 100]
    momentum: float = 0.9


class Exp(Config):
    name: str = "x"
    epochs: int = 200
    optim: Optim = Optim()


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


# --- the loader ---------------------------------------------------------------------------------

def test_base_by_builtin_name(tmp_path: Path) -> None:
    child = _write(tmp_path / "mine.yaml",
                   "base: detect/faster_rcnn_paper\ndata: {dataset: ssdd}\noptim: {lr: 0.01}\n")
    cfg = load_config(DetectConfig, child, ["data.root=/d"])
    assert (cfg.data.dataset, cfg.optim.lr) == ("ssdd", 0.01)  # the child's keys
    # everything else is the recipe's, nested keys merged one by one
    assert (cfg.model.name, cfg.optim.milestones, cfg.trainer.max_epochs) == (
        "faster_rcnn_r50_fpn", [8, 12], 14)
    assert (cfg.data.batch_size, cfg.optim.momentum) == (8, 0.9)


def test_base_by_relative_path_nested_and_overrides_on_top(tmp_path: Path) -> None:
    _write(tmp_path / "common" / "root.yaml",
           "name: root\nepochs: 14\noptim: {lr: 0.02, milestones: [8, 12], momentum: 0.5}\n")
    _write(tmp_path / "common" / "mid.yaml", "base: root.yaml\noptim: {milestones: [3]}\n")
    leaf = _write(tmp_path / "exp" / "leaf.yaml",
                  "base: ../common/mid\nname: leaf\noptim: {momentum: 0.8}\n")  # no .yaml: found
    cfg = load_config(Exp, leaf)
    assert cfg == Exp(name="leaf", epochs=14, optim=Optim(lr=0.02, milestones=[3], momentum=0.8))
    cfg = load_config(Exp, leaf, ["optim.lr=0.5", "epochs=2"])
    assert (cfg.optim.lr, cfg.epochs, cfg.optim.momentum) == (0.5, 2, 0.8)
    assert "base" not in resolve_config(leaf) and "base" not in cfg.to_yaml()


@pytest.mark.parametrize("files", [{"a.yaml": "base: a.yaml\n"},
                                   {"a.yaml": "base: b.yaml\n", "b.yaml": "base: c\n",
                                    "c.yaml": "base: a.yaml\nname: c\n"}])
def test_base_cycle_is_a_one_line_error(tmp_path: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        _write(tmp_path / name, text)
    with pytest.raises(ConfigError, match="cycle") as info:
        load_config(Exp, tmp_path / "a.yaml")
    msg = str(info.value)
    assert "\n" not in msg and all(name in msg for name in files)


def test_missing_or_bad_base_names_the_file(tmp_path: Path) -> None:
    child = _write(tmp_path / "child.yaml", "base: no/such_recipe\nname: c\n")
    with pytest.raises(ConfigError, match=r"child\.yaml: base 'no/such_recipe' is neither") as info:
        load_config(Exp, child)
    assert "\n" not in str(info.value)
    _write(tmp_path / "child.yaml", "base: [a, b]\n")
    with pytest.raises(ConfigError, match=r"child\.yaml: base must be a config name"):
        load_config(Exp, child)
    _write(tmp_path / "child.yaml", "base: parent.yaml\n")
    _write(tmp_path / "parent.yaml", "- 1\n")
    with pytest.raises(ConfigError, match=r"parent\.yaml: top level must be a mapping"):
        load_config(Exp, child)


def test_saved_config_is_resolved_and_reloads_to_the_same(tmp_path: Path) -> None:
    """What a run folder's config.yaml holds (``cfg.to_yaml()``) stands alone: no base."""
    cfg = load_config(DetectConfig, "detect/ssdd_faster_rcnn_osm",
                      ["data.root=/d", "model.init=random"])
    text = cfg.to_yaml()
    assert "base" not in yaml.safe_load(text)
    assert load_config(DetectConfig, _write(tmp_path / "config.yaml", text)) == cfg


def test_configs_command_prints_the_resolved_config(capsys) -> None:
    assert main(["configs", "detect/ssdd_yolov3_osm", "data.root=/d"]) == 0
    printed = yaml.safe_load(capsys.readouterr().out)
    assert "base" not in printed
    assert printed["optim"]["milestones"] == [160, 200] and printed["data"]["root"] == "/d"
    assert main(["configs", "no/such"]) == 2
    assert "neither a file nor a built-in" in capsys.readouterr().err


# --- the built-in paper configs ---------------------------------------------------------------

#: paper 003 sec. 4.2.2 (Table 3 protocol) as config keys.
PAPER = {
    "faster_rcnn": {("optim", "lr"): 0.02, ("optim", "milestones"): [8, 12],
                    ("optim", "gamma"): 0.1, ("data", "batch_size"): 8,
                    ("trainer", "max_epochs"): 14, ("model", "name"): "faster_rcnn_r50_fpn"},
    "yolov3": {("optim", "lr"): 0.001, ("optim", "milestones"): [160, 200],
               ("optim", "gamma"): 0.1, ("optim", "warmup_iters"): 500,
               ("data", "batch_size"): 12, ("trainer", "max_epochs"): 240,
               ("model", "name"): "yolov3_darknet53"},
}
#: per-dataset input sizes: Faster R-CNN (min_size, max_size); YOLOv3 test size.
SIZES = {"faster_rcnn": {"ssdd": (600, 1000), "hrsid": (800, 800), "airsarship1": (512, 512),
                         "airsarship2": (512, 512)},
         "yolov3": dict.fromkeys(("ssdd", "hrsid", "airsarship1", "airsarship2"), 416)}
DATASET = {"ssdd": "ssdd", "hrsid": "hrsid", "airsarship1": "air-sarship-1.0",
           "airsarship2": "air-sarship-2.0"}
CELLS = [(ds, det, init) for ds in DATASET for det in PAPER for init in ("imagenet", "osm")]


def _without_cell_keys(cfg: dict[str, Any]) -> dict[str, Any]:
    """``cfg`` less the keys a Table 3 cell sets itself (documented in the cell files)."""
    out = copy.deepcopy(cfg)
    for key in ("description", "out_dir"):
        out.pop(key)
    for key in ("init",):
        out["model"].pop(key)
    for key in ("min_size", "max_size", "input_size"):
        out["model"]["options"].pop(key, None)
    for key in ("dataset", "root"):
        out["data"].pop(key)
    return out


def test_table3_has_sixteen_cells() -> None:
    assert {f"detect/{d}_{m}_{i}" for d, m, i in CELLS} <= set(list_builtin_configs())
    assert len(CELLS) == 16


@pytest.mark.parametrize("ds,det,init", CELLS)
def test_table3_cell_is_the_paper_recipe(ds: str, det: str, init: str) -> None:
    name = f"{ds}_{det}_{init}"
    cell = resolve_config(f"detect/{name}")
    for (section, key), value in PAPER[det].items():
        assert cell[section][key] == value, (name, section, key)
    assert _without_cell_keys(cell) == _without_cell_keys(resolve_config(f"detect/{det}_paper"))
    # the documented per-cell keys
    assert cell["data"]["dataset"] == DATASET[ds] and cell["data"]["root"] == "???"
    assert cell["model"]["init"] == {"imagenet": "imagenet:???", "osm": "bnn:???"}[init]
    assert cell["out_dir"] == f"runs/detect/{name}"
    opts = cell["model"]["options"]
    size = (opts["min_size"], opts["max_size"]) if det == "faster_rcnn" else opts["input_size"]
    assert size == SIZES[det][ds]


@pytest.mark.parametrize("name", sorted(BEFORE))
def test_config_resolves_as_its_copy_paste_file_did(name: str) -> None:
    before = BEFORE[name]
    if not name.startswith("osd/"):  # the OSD files left defaults implicit; validated below
        assert resolve_config(name) == before["yaml"]
    if name.startswith("bnn/"):
        cfg = load_config(BNNConfig, name)
    else:
        cfg = load_config(DetectConfig, name, ["data.root=/data/x", "model.init=random"])
    now = cfg.model_dump(mode="json")
    assert _known_keys(now, before["validated"]) == before["validated"]
    for path, value in _added_keys(cfg, before["validated"]):
        assert value == _field_default(cfg, path), f"{name}: new key {path} is not its default"


def _known_keys(now: dict[str, Any], before: dict[str, Any]) -> dict[str, Any]:
    """``now`` restricted to the keys of ``before`` (recursively, where both are mappings)."""
    return {k: _known_keys(now[k], v) if isinstance(v, dict) and isinstance(now.get(k), dict)
            else now.get(k, "<missing>") for k, v in before.items()}


def _added_keys(cfg: Config, before: dict[str, Any], prefix: tuple[str, ...] = ()
                ) -> list[tuple[tuple[str, ...], Any]]:
    """``(path, value)`` of every field of ``cfg`` that ``before`` does not have."""
    out = []
    for key in type(cfg).model_fields:
        value = getattr(cfg, key)
        if key not in before:
            out.append(((*prefix, key), value))
        elif isinstance(value, Config) and isinstance(before[key], dict):
            out += _added_keys(value, before[key], (*prefix, key))
    return out


def _field_default(cfg: Config, path: tuple[str, ...]) -> Any:
    """The declared default of the field at ``path`` below ``cfg``."""
    for key in path[:-1]:
        cfg = getattr(cfg, key)
    return type(cfg).model_fields[path[-1]].get_default(call_default_factory=True)
