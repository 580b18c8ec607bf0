"""Experiment configs: typed dataclasses loaded from TOML, strictly.

An unknown key or a value of the wrong type is an error naming the key, never a silent
default. A config may carry a ``[quick]`` table of overrides for a seconds-long smoke run, and
any field can be overridden from the command line with ``--set key=value``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import tomllib
import types
import typing
from pathlib import Path


class ConfigError(ValueError):
    """A config file or override that does not fit its schema."""


def _check_type(name: str, value, tp):
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        errors = []
        for arm in typing.get_args(tp):
            try:
                return _check_type(name, value, arm)
            except ConfigError as e:
                errors.append(str(e))
        raise ConfigError(f"{name}: {value!r} matches none of {tp}")
    if tp is type(None):
        if value is None:
            return None
        raise ConfigError(f"{name}: expected nothing, got {value!r}")
    if origin is list:
        (arm,) = typing.get_args(tp)
        if not isinstance(value, list):
            raise ConfigError(f"{name}: expected a list, got {type(value).__name__} {value!r}")
        return [_check_type(f"{name}[{i}]", v, arm) for i, v in enumerate(value)]
    if origin is dict or tp is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{name}: expected a table, got {type(value).__name__}")
        return dict(value)
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{name}: expected a number, got {type(value).__name__} {value!r}")
        return float(value)
    if tp is int:
        if isinstance(value, bool) or not (isinstance(value, int) or (isinstance(value, float) and value.is_integer())):
            raise ConfigError(f"{name}: expected an integer, got {type(value).__name__} {value!r}")
        return int(value)
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{name}: expected true or false, got {value!r}")
        return value
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{name}: expected a string, got {type(value).__name__} {value!r}")
        return value
    raise ConfigError(f"{name}: unsupported field type {tp}")


def from_dict(cls, data: dict, where: str = "config"):
    """Build dataclass ``cls`` from ``data``, rejecting unknown keys and mistyped values."""
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {unknown}; known keys are {sorted(names)}")
    kwargs = {k: _check_type(f"{where}.{k}", v, hints[k]) for k, v in data.items()}
    obj = cls(**kwargs)
    if hasattr(obj, "validate"):
        obj.validate()
    return obj


def parse_override(text: str) -> tuple[str, object]:
    """'key=value' with the value read as TOML (numbers, booleans, lists), falling back to a string."""
    if "=" not in text:
        raise ConfigError(f"--set expects key=value; got {text!r}")
    key, raw = text.split("=", 1)
    try:
        value = tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw
    return key.strip(), value


def load_toml(path: str | Path, cls, quick: bool = False, overrides: list[str] = ()):
    """Read a TOML config into ``cls``, applying its ``[quick]`` table and ``--set`` overrides."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file {path} does not exist")
    try:
        data = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path}: not valid TOML: {e}") from None
    quick_over = data.pop("quick", {})
    if not isinstance(quick_over, dict):
        raise ConfigError(f"{path}: [quick] must be a table of overrides")
    if quick:
        unknown = set(quick_over) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise ConfigError(f"{path}: [quick] has unknown key(s) {sorted(unknown)}")
        data.update(quick_over)
    for text in overrides:
        k, v = parse_override(text)
        data[k] = v
    return from_dict(cls, data, where=str(path))


def config_hash(d: dict) -> str:
    """Short stable hash of a resolved config (canonical JSON)."""
    blob = json.dumps(d, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]
