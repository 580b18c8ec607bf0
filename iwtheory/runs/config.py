"""Experiment configs: typed dataclasses loaded from TOML, strictly.

An unknown key or a value of the wrong type is an error naming the key, never a silent
default. A config may carry a ``[quick]`` table of overrides for a seconds-long smoke run, and
any field can be overridden from the command line with ``--set key=value``.

Configs are deltas: ``extends = "other.toml"`` (a file beside this one) takes the other file's top-level settings
as defaults (not its ``[regimes]``, ``[variants]`` or ``[quick]``), and the file states only what differs. A study
multiplies its regimes by ``[variants.SUFFIX]`` tables: every regime once more, named NAME_SUFFIX, with the
variant's overrides on top.
"""

from __future__ import annotations

import dataclasses
import hashlib
import inspect
import json
import math
import os
import re
import tomllib
import types
import typing
from pathlib import Path

from iwtheory.runs.files import read_regular


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
    if origin is tuple:
        arms = typing.get_args(tp)
        if not isinstance(value, (list, tuple)) or len(value) != len(arms):
            raise ConfigError(f"{name}: expected a list of {len(arms)} values, got {value!r}")
        return tuple(_check_type(f"{name}[{i}]", v, a) for i, (v, a) in enumerate(zip(value, arms)))
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
        if isinstance(value, int):
            try:
                value = float(value)
            except OverflowError:
                raise ConfigError(f"{name}: {str(value)[:20]}... is beyond the range of a float") from None
        if not math.isfinite(value):
            raise ConfigError(f"{name}: expected a finite number, got {value!r}")
        return float(value)
    if tp is int:
        if isinstance(value, bool) or not (isinstance(value, int) or (isinstance(value, float) and math.isfinite(value)
                                                                      and value.is_integer())):
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
    """Build dataclass ``cls`` from ``data``, rejecting unknown keys, missing keys and mistyped values."""
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: expected a table of settings, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    fields = dataclasses.fields(cls)
    names = {f.name for f in fields}
    unknown = sorted(set(data) - names)
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {unknown}; known keys are {sorted(names)}")
    required = [f.name for f in fields if f.default is dataclasses.MISSING
                and f.default_factory is dataclasses.MISSING and f.name not in data]
    if required:
        raise ConfigError(f"{where}: missing required key(s) {required}")
    kwargs = {k: _check_type(f"{where}.{k}", v, hints[k]) for k, v in data.items()}
    obj = cls(**kwargs)
    if hasattr(obj, "validate"):
        obj.validate()
    return obj


def check_kwargs(func, params: dict, where: str) -> dict:
    """Check a nested table of keyword arguments for ``func``: known names, values of the annotated types."""
    if not isinstance(params, dict):
        raise ConfigError(f"{where}: expected a table, got {type(params).__name__}")
    sig = inspect.signature(func)
    hints = typing.get_type_hints(func)
    unknown = sorted(set(params) - set(sig.parameters))
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {unknown}; known keys are {sorted(sig.parameters)}")
    return {k: _check_type(f"{where}.{k}", v, hints[k]) if k in hints else v for k, v in params.items()}


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


def _read_toml(path: str | Path) -> dict:
    path = Path(path)
    if not os.path.lexists(path):
        raise ConfigError(f"config file {path} does not exist")
    data = read_regular(path, "config", ConfigError)
    try:
        return tomllib.loads(data.decode())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError, RecursionError) as e:
        raise ConfigError(f"{path}: not valid TOML: {e}") from None


MAX_EXTENDS = 4  # a chain of configs extending each other no longer than this
_BESIDE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,99}\.toml")  # a bare file name: no folder, no ".."
_NOT_INHERITED = ("quick", "regimes", "variants")


def read_config(path: str | Path, _chain: tuple = ()) -> dict:
    """A config file's settings with ``extends`` resolved: the base's top-level settings, then this file's. The
    base must be a plain TOML file in the same folder (a bare name, not a link); chains are at most
    ``MAX_EXTENDS`` long and never circular; a file that extends another must set its own ``name``."""
    path = Path(path)
    if path.is_symlink():  # the file itself: its extends base lies beside it, not beside the link
        path = path.resolve()
    data = _read_toml(path)
    base = data.pop("extends", None)
    if base is None:
        return data
    if not isinstance(base, str) or not _BESIDE.fullmatch(base):
        raise ConfigError(f"{path}: extends must name a TOML file beside it (a bare file name); got {base!r}")
    target = path.parent / base
    chain = (*_chain, path.resolve())
    if target.is_symlink():
        raise ConfigError(f"{path}: extends {base}, a link; name the file itself")
    if target.resolve() in chain:
        raise ConfigError(f"{path}: extends {base}, which extends it back (a circle of configs)")
    if len(chain) > MAX_EXTENDS:
        raise ConfigError(f"{path}: a chain of more than {MAX_EXTENDS} configs extending each other")
    if "name" not in data:
        raise ConfigError(f"{path}: extends {base} but sets no name of its own (two experiments would share one)")
    inherited = {k: v for k, v in read_config(target, chain).items() if k not in _NOT_INHERITED}
    return {**inherited, **data}


def _apply(data: dict, path, cls, quick: bool, quick_over, overrides, where: str):
    if quick and quick_over is None:  # --quick must never start the full study silently
        raise ConfigError(f"{path} has no [quick] table, so it has no quick variant; run it without --quick, or "
                          "add a [quick] table of overrides")
    quick_over = {} if quick_over is None else quick_over
    if not isinstance(quick_over, dict):
        raise ConfigError(f"{path}: [quick] must be a table of overrides")
    names = {f.name for f in dataclasses.fields(cls)}
    if quick:
        unknown = set(quick_over) - names
        if unknown:
            raise ConfigError(f"{path}: [quick] has unknown key(s) {sorted(unknown)}")
        data.update(quick_over)
    for text in overrides:
        k, v = parse_override(text)
        if k not in names:
            raise ConfigError(f"--set {k}: unknown key; known keys are {sorted(names)}")
        data[k] = v
    obj = from_dict(cls, data, where=where)
    if quick:  # its runs say so (a marker file beside their records), and so do the verdicts read from them
        obj._quick = True
    return obj


def load_toml(path: str | Path, cls, quick: bool = False, overrides: list[str] = ()):
    """Read a TOML config into ``cls``, applying its ``[quick]`` table and ``--set`` overrides."""
    data = read_config(path)
    if "regimes" in data or "variants" in data:
        raise ConfigError(f"{path} is a study with regimes; load it with load_study")
    return _apply(data, path, cls, quick, data.pop("quick", None), overrides, str(path))


def load_study(path: str | Path, cls, quick: bool = False, overrides: list[str] = (),
               regimes: list[str] | None = None) -> list:
    """A study: the file's top-level settings, once per ``[regimes.NAME]`` table of overrides.

    Each regime's config is base | regime | variant | [quick] (with ``quick``) | --set, its ``regime`` field
    set to NAME (NAME_SUFFIX for a regime of ``[variants.SUFFIX]``). A file without regimes is one config.
    ``regimes`` keeps only the named ones. The base is the file's top-level settings, ``extends`` resolved.
    """
    data = read_config(path)
    quick_over = data.pop("quick", None)
    tables = data.pop("regimes", None)
    variants = data.pop("variants", {})
    if tables is None:
        if regimes or variants:
            raise ConfigError(f"{path} has no [regimes] tables to choose {regimes} from" if regimes else
                              f"{path}: [variants] multiply [regimes] tables, and it has none")
        return [_apply(data, path, cls, quick, quick_over, overrides, str(path))]
    for what, t in (("regimes", tables), ("variants", variants)):
        if not isinstance(t, dict) or (what == "regimes" and not t) or not all(isinstance(v, dict) for v in t.values()):
            raise ConfigError(f"{path}: [{what}] must hold one table of overrides per {what[:-1]}")
    if "regime" in data:
        raise ConfigError(f"{path}: 'regime' is set by the [regimes.NAME] table names, not at the top level")
    named = {name: (over, {}, f"regimes.{name}") for name, over in tables.items()}
    for suffix, vover in variants.items():  # the regimes times each variant, in the regimes' order
        for name, over in tables.items():
            if f"{name}_{suffix}" in named:
                raise ConfigError(f"{path}: [variants.{suffix}] makes regime {name}_{suffix}, which a [regimes] "
                                  "table names already")
            # a regime's matched baseline is the same variant of its baseline regime
            over = {**over, "baseline": f"{over['baseline']}_{suffix}"} if over.get("baseline") else over
            named[f"{name}_{suffix}"] = (over, vover, f"regimes.{name} x variants.{suffix}")
    for name, (over, _, where) in named.items():
        base = over.get("baseline")
        if base is not None and (base not in named or base == name):
            raise ConfigError(f"{path} [{where}]: baseline {base!r} names no other regime of the study (it has "
                              f"{sorted(named)})")
    unknown = sorted(set(regimes or []) - set(named))
    if unknown:
        raise ConfigError(f"{path}: no regime(s) {unknown}; the study has {sorted(named)}")
    out = []
    for name, (over, vover, where) in named.items():
        if regimes and name not in regimes:
            continue
        merged = {**data, **over, **vover, "regime": name}
        out.append(_apply(merged, path, cls, quick, quick_over, overrides, f"{path} [{where}]"))
    return out


def check_distinct(name: str, cells: list[dict], keys: str) -> None:
    """ConfigError when a sweep resolves two cells to the same run (say a weight listed twice)."""
    hashes = [config_hash(c) for c in cells]
    if len(set(hashes)) != len(hashes):
        raise ConfigError(f"{name}: the sweep lists a cell twice (a repeated {keys}); every run must be distinct")


def config_hash(d: dict) -> str:
    """Short stable hash of a resolved config (canonical JSON)."""
    blob = json.dumps(d, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]
