"""Strict configuration schemas: frozen dataclasses built from YAML mappings.

:func:`build` turns a mapping into a dataclass, converting values by the
dataclass's type hints, and rejects unknown keys, missing required keys and
values of the wrong type with a :class:`~geoseg.errors.ConfigError` that names
the key.  Used by every configuration file geoseg reads (training, batch).
"""

from __future__ import annotations

import dataclasses
import os
import types
import typing
from collections.abc import Mapping
from dataclasses import fields
from pathlib import Path
from typing import Any, Literal, Union

from .classes import ClassInfo, parse_classes
from .errors import ConfigError, GeoSegError

__all__ = ["build", "convert", "absolute"]


def absolute(path: Path, base: Path) -> Path:
    """``path`` made absolute against ``base`` and normalised (``a/../b`` -> ``b``; links are kept)."""
    path = Path(os.path.expanduser(path))
    return Path(os.path.normpath(path if path.is_absolute() else base / path))


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def convert(tp: Any, value: Any, where: str) -> Any:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if tp is Any:
        return value
    if origin in (Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for option in (a for a in args if a is not type(None)):
            try:
                return convert(option, value, where)
            except ConfigError as exc:
                errors.append(str(exc))
        raise ConfigError(f"{where}: {value!r} is not valid ({'; or '.join(errors)})")
    if value is None:
        raise ConfigError(f"{where} must not be empty (null)")
    if origin is Literal:
        if value not in args:
            raise ConfigError(f"{where} is {value!r}; use one of {', '.join(repr(a) for a in args)}")
        return value
    if dataclasses.is_dataclass(tp):
        return build(tp, value, where)
    if tp is ClassInfo:
        raise ConfigError(f"{where}: classes are read as a whole")
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where} must be a list, got {value!r}")
        if len(args) == 2 and args[1] is Ellipsis:
            if args[0] is ClassInfo:
                try:
                    return parse_classes(value)
                except GeoSegError as exc:
                    raise ConfigError(f"{where}: {exc}") from None
            return tuple(convert(args[0], v, f"{where}[{i}]") for i, v in enumerate(value))
        if len(value) != len(args):
            raise ConfigError(f"{where} must be a list of {len(args)} values, got {value!r}")
        return tuple(convert(a, v, f"{where}[{i}]") for i, (a, v) in enumerate(zip(args, value)))
    if origin is dict:
        if not isinstance(value, Mapping):
            raise ConfigError(f"{where} must be a mapping, got {value!r}")
        return {str(k): v for k, v in value.items()}
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where} must be true or false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where} must be an integer, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, str):  # PyYAML reads 1e-3 (no dot) as a string
            try:
                value = float(value)
            except ValueError:
                raise ConfigError(f"{where} must be a number, got {value!r}") from None
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{where} must be a number, got {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{where} must be a string, got {value!r}")
        return value
    if tp is Path:
        if not isinstance(value, (str, os.PathLike)) or not str(value):
            raise ConfigError(f"{where} must be a path, got {value!r}")
        return Path(value)
    raise ConfigError(f"{where}: cannot read a {_type_name(tp)} from {value!r}")  # pragma: no cover - schema bug


def build(cls: type, data: Any, where: str = "") -> Any:
    """Build dataclass ``cls`` from a mapping, rejecting unknown keys and wrong types."""
    label = where or "the config"
    if not isinstance(data, Mapping):
        raise ConfigError(f"{label} must be a mapping of keys to values, got {data!r}")
    known = {f.name: f for f in fields(cls)}
    for key in data:
        if key not in known:
            name = f"{where}.{key}" if where else str(key)
            raise ConfigError(f"unknown key {name!r}; valid keys{' in ' + where if where else ''}: {', '.join(known)}")
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for name, f in known.items():
        if name in data:
            kwargs[name] = convert(hints[name], data[name], f"{where}.{name}" if where else name)
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise ConfigError(f"{label} is missing the required key {name!r}")
    try:
        return cls(**kwargs)
    except GeoSegError:
        raise
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{label}: {exc}") from None
