"""Experiment configs: typed pydantic models loaded from YAML, validated before any work starts.

Every config class derives from :class:`Config`, which forbids unknown keys, so a typo such as
``optim.lr_rate`` is an error naming the key. ``key=value`` overrides from the command line use
dotted paths (``optim.lr=0.02 data.root=/data/qxs``) and are parsed as YAML scalars.

A YAML file may start from another one with ``base: NAME_OR_PATH`` (a built-in name such as
``detect/faster_rcnn_paper``, or a path relative to the including file): the file's keys are
deep-merged over its base's (recursively, bases of bases too), then the overrides over that.
What is validated, printed and saved is the resolved config, without ``base``.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Annotated, Any, TypeVar

import yaml
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError

T = TypeVar("T", bound="Config")


class ConfigError(ValueError):
    """A config file or override that cannot be used; the message names the key and the source.

    A ``ValueError`` (not a :class:`~saropt.errors.SaroptError`); the command line prints it like
    one (``saropt: error: ...``, exit status 2), its lines joined into one.
    """


class Config(BaseModel):
    """Base of every saropt config: unknown keys are errors, values are type-checked."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, allow_inf_nan=False)

    def to_yaml(self) -> str:
        """The config as YAML text, keys in field order (what a run saves as ``config.yaml``)."""
        return yaml.safe_dump(self.model_dump(mode="json"), sort_keys=False)


#: the largest random seed NumPy's legacy ``seed``, ``random`` and Lightning accept (2**32 - 1)
MAX_SEED = 2**32 - 1
#: a random seed in 0 .. 2**32 - 1 (Lightning's ``seed_everything`` refuses others mid-run)
Seed = Annotated[int, Field(ge=0, le=MAX_SEED)]


#: DataLoader worker processes: more than this is a typo, not a machine (each is a process)
Workers = Annotated[int, Field(ge=0, le=256)]
#: learning-rate milestones (epochs >= 0)
Milestones = list[Annotated[int, Field(ge=0)]]


def ordered_pair(ge: float | None = None, gt: float | None = None, le: float | None = None,
                 lt: float | None = None, strict: bool = False) -> Any:
    """The pydantic type of a config range such as ``ship_length_m: [10, 300]``.

    A ``(low, high)`` pair of finite floats within the bounds (``ge``, ``gt``, ``le``, ``lt``,
    as pydantic's ``Field``), ``low <= high`` (``low < high`` when ``strict``); a violation is a
    validation error naming the key.
    """
    item = Annotated[float, Field(ge=ge, gt=gt, le=le, lt=lt)]

    def order(pair: tuple[float, float]) -> tuple[float, float]:
        if pair[0] > pair[1] or strict and pair[0] == pair[1]:
            raise ValueError(f"must be [low, high] with low {'<' if strict else '<='} high")
        return pair

    return Annotated[tuple[item, item], AfterValidator(order)]


def builtin_config_dir() -> Path:
    """The folder of configs shipped with saropt (``src/saropt/configs``)."""
    return Path(str(resources.files("saropt") / "configs"))


def resolve_config_path(name_or_path: str | Path) -> Path:
    """The YAML file of a path or of a built-in config name such as ``bnn/qxs_resnet50``.

    Raises :class:`ConfigError` when it is neither an existing file nor a built-in name.
    """
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
    """Names of the built-in configs (``bnn/qxs_resnet50``, ...), sorted; ``saropt configs``."""
    root = builtin_config_dir()
    return sorted(str(p.relative_to(root).with_suffix("")) for p in root.rglob("*.yaml"))


def parse_overrides(items: list[str]) -> dict[str, Any]:
    """``["a.b=1", "c=x"]`` -> ``{"a": {"b": 1}, "c": "x"}``; values are parsed as YAML.

    Raises :class:`ConfigError` for an item without ``=``, an empty key, invalid YAML, or two
    overrides that conflict (``a=1`` then ``a.b=2``).
    """
    out: dict[str, Any] = {}
    for item in items:
        if "=" not in item:
            raise ConfigError(f"override {item!r} is not of the form key=value")
        key, raw = item.split("=", 1)
        if not key or any(not part for part in key.split(".")):
            raise ConfigError(f"override {item!r} has an empty key")
        try:
            value = yaml.safe_load(raw) if raw != "" else ""
        except yaml.YAMLError as err:
            raise ConfigError(f"override {item!r}: value is not valid YAML "
                              f"({str(err).splitlines()[0]}); quote it") from None
        node = out
        parts = key.split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"override {item!r} conflicts with another override")
        node[parts[-1]] = value
    return out


def deep_merge(base: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    """``update`` merged over ``base`` recursively (nested dicts merged, other values replaced).

    Returns a new dict; neither input is changed.
    """
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
        whole = e["type"] == "extra_forbidden" or not e["loc"]  # not the whole config again
        lines.append(f"  {key}: {msg}" + ("" if whole else f" (got {e.get('input')!r})"))
    return "\n".join(lines)


def build_config(cls: type[T], data: dict[str, Any] | None = None,
                 overrides: list[str] | None = None, source: str = "<dict>") -> T:
    """Validate ``data`` merged with ``overrides`` into ``cls``.

    Raises :class:`ConfigError` (one line per bad key, ``source`` named) for invalid values or
    unknown keys, and for malformed overrides.
    """
    merged = deep_merge(data or {}, parse_overrides(overrides or []))
    try:
        return cls.model_validate(merged)
    except ValidationError as err:
        raise ConfigError(_format_errors(err, source)) from None


def read_yaml(path: str | Path) -> Any:
    """Parse a YAML file; unreadable, non-UTF-8 or invalid YAML is a ConfigError naming it."""
    path = Path(path)
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as err:
        raise ConfigError(f"{path}: not UTF-8 text ({err.reason} at byte {err.start}); save it "
                          "as UTF-8") from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML: {' '.join(str(err).split())}") from None


def _read_mapping(path: Path) -> dict[str, Any]:
    """The top-level mapping of one YAML file (empty file: ``{}``); bad YAML is a ConfigError."""
    loaded = read_yaml(path)
    if loaded is not None and not isinstance(loaded, dict):
        raise ConfigError(f"{path}: top level must be a mapping, got {type(loaded).__name__}")
    return loaded or {}


def _base_path(base: Any, including: Path) -> Path:
    """The file a ``base:`` value names.

    A path relative to ``including``'s folder, else a built-in config name; neither is a
    ConfigError naming ``including``.
    """
    if not isinstance(base, str) or not base.strip():
        raise ConfigError(f"{including}: base must be a config name or a path, got {base!r}")
    for folder in (including.parent, builtin_config_dir()):
        for cand in (folder / base, folder / f"{base}.yaml"):
            if cand.is_file():
                return cand
    raise ConfigError(
        f"{including}: base {base!r} is neither a file (relative to {including.parent}) "
        f"nor a built-in config (list them with `saropt configs`)"
    )


def read_config_file(path: Path, _chain: tuple[Path, ...] = ()) -> dict[str, Any]:
    """One YAML config file with its ``base:`` chain resolved, without ``base``.

    The file's keys are deep-merged over its base's (which may itself have a base).

    Raises:
        ConfigError: bad YAML, a top level that is not a mapping, a base that is not found, or a
            cycle of bases (the message lists the files of the cycle).
    """
    here = path.resolve()
    if here in _chain:
        cycle = " -> ".join(str(p) for p in (*_chain[_chain.index(here):], here))
        raise ConfigError(f"{path}: config bases form a cycle: {cycle}")
    data = _read_mapping(path)
    if "base" not in data:
        return data
    base = data.pop("base")
    return deep_merge(read_config_file(_base_path(base, path), (*_chain, here)), data)


def resolve_config(name_or_path: str | Path) -> dict[str, Any]:
    """A config file or built-in name read with its ``base:`` chain resolved (no validation).

    Raises :class:`ConfigError` as :func:`resolve_config_path` and :func:`read_config_file`.
    """
    return read_config_file(resolve_config_path(name_or_path))


def load_config(cls: type[T], name_or_path: str | Path | None,
                overrides: list[str] | None = None) -> T:
    """Load a YAML config, apply ``key=value`` overrides, validate into ``cls``.

    ``name_or_path``: a file or built-in name (``base:`` resolved), or None for ``cls``'s
    defaults. Raises :class:`ConfigError` naming the file and every bad key.
    """
    data: dict[str, Any] = {}
    source = "defaults"
    if name_or_path is not None:
        path = resolve_config_path(name_or_path)
        source = str(path)
        data = read_config_file(path)
    return build_config(cls, data, overrides, source)
