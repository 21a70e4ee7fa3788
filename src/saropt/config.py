"""Experiment configs: typed pydantic models loaded from YAML, validated before any work starts.

Every config class derives from :class:`Config`, which forbids unknown keys, so a typo such as
``optim.lr_rate`` is an error naming the key. ``key=value`` overrides from the command line use
dotted paths (``optim.lr=0.02 data.root=/data/qxs``) and are parsed as YAML scalars.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

T = TypeVar("T", bound="Config")


class ConfigError(ValueError):
    """A config file or override that cannot be used; the message names the key and the source."""


class Config(BaseModel):
    """Base of every saropt config: unknown keys are errors, values are type-checked."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.model_dump(mode="json"), sort_keys=False)


def builtin_config_dir() -> Path:
    """The folder of configs shipped with saropt (``src/saropt/configs``)."""
    return Path(str(resources.files("saropt") / "configs"))


def resolve_config_path(name_or_path: str | Path) -> Path:
    """A path to a YAML file, or the name of a built-in config such as ``bnn/qxs_resnet50``."""
    p = Path(name_or_path)
    if p.is_file():
        return p
    for cand in (builtin_config_dir() / p, builtin_config_dir() / f"{p}.yaml"):
        if cand.is_file():
            return cand
    raise ConfigError(
        f"config {str(name_or_path)!r} is neither a file nor a built-in config "
        f"(built-ins live in {builtin_config_dir()}; list them with `saropt configs`)"
    )


def list_builtin_configs() -> list[str]:
    root = builtin_config_dir()
    return sorted(str(p.relative_to(root).with_suffix("")) for p in root.rglob("*.yaml"))


def parse_overrides(items: list[str]) -> dict[str, Any]:
    """``["a.b=1", "c=x"]`` -> ``{"a": {"b": 1}, "c": "x"}``; values are parsed as YAML."""
    out: dict[str, Any] = {}
    for item in items:
        if "=" not in item:
            raise ConfigError(f"override {item!r} is not of the form key=value")
        key, raw = item.split("=", 1)
        if not key or any(not part for part in key.split(".")):
            raise ConfigError(f"override {item!r} has an empty key")
        value = yaml.safe_load(raw) if raw != "" else ""
        node = out
        parts = key.split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"override {item!r} conflicts with another override")
        node[parts[-1]] = value
    return out


def deep_merge(base: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for k, v in update.items():
        if isinstance(v, dict) and isinstance(merged.get(k), dict):
            merged[k] = deep_merge(merged[k], v)
        else:
            merged[k] = v
    return merged


def _format_errors(err: ValidationError, source: str) -> str:
    lines = [f"invalid config ({source}):"]
    for e in err.errors():
        key = ".".join(str(x) for x in e["loc"]) or "<root>"
        msg = "unknown key" if e["type"] == "extra_forbidden" else e["msg"]
        lines.append(f"  {key}: {msg}" + ("" if e["type"] == "extra_forbidden" else
                                          f" (got {e.get('input')!r})"))
    return "\n".join(lines)


def build_config(cls: type[T], data: dict[str, Any] | None = None,
                 overrides: list[str] | None = None, source: str = "<dict>") -> T:
    """Validate ``data`` merged with ``overrides`` into ``cls``; errors name every bad key."""
    merged = deep_merge(data or {}, parse_overrides(overrides or []))
    try:
        return cls.model_validate(merged)
    except ValidationError as err:
        raise ConfigError(_format_errors(err, source)) from None


def load_config(cls: type[T], name_or_path: str | Path | None,
                overrides: list[str] | None = None) -> T:
    """Load a YAML config (file or built-in name), apply overrides, validate into ``cls``."""
    data: dict[str, Any] = {}
    source = "defaults"
    if name_or_path is not None:
        path = resolve_config_path(name_or_path)
        source = str(path)
        try:
            loaded = yaml.safe_load(path.read_text())
        except yaml.YAMLError as err:
            raise ConfigError(f"{path}: not valid YAML: {err}") from None
        if loaded is not None and not isinstance(loaded, dict):
            raise ConfigError(f"{path}: top level must be a mapping, got {type(loaded).__name__}")
        data = loaded or {}
    return build_config(cls, data, overrides, source)
