"""Strict configuration schemas: frozen dataclasses built from YAML mappings.

:func:`build` turns a mapping into a dataclass, converting values by the
dataclass's type hints, and rejects unknown keys, missing required keys and
values of the wrong type with a :class:`~geoseg.errors.ConfigError` that names
the key.  Used by every configuration file geoseg reads (training, batch).

:func:`setting` declares one option of a step's options type (its default,
help text and bounds) once; the CLI builds its click options from it, batch
configs reuse the type, and :func:`check_settings` enforces the bounds.
"""

from __future__ import annotations

import dataclasses
import os
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Literal, TypeVar, Union, cast

from .classes import ClassInfo, parse_classes
from .errors import ConfigError, GeoSegError

__all__ = ["SETTING", "Setting", "absolute", "build", "check_settings", "convert", "output_settings", "setting",
           "settings"]

T = TypeVar("T")

#: The key of a :class:`Setting` in a dataclass field's metadata.
SETTING = "geoseg.setting"


@dataclass(frozen=True)
class Setting:
    """How one option of a step is offered and checked; kept in its dataclass field's metadata."""

    #: Help text, for ``--help`` and the docs.
    help: str
    #: Smallest allowed value (``min_open``: the bound itself is not allowed).
    minimum: float | None = None
    maximum: float | None = None
    min_open: bool = False
    #: The allowed values of a string option.
    choices: tuple[str, ...] = ()
    #: False for options that change how the work runs but not its output (part of batch idempotency keys).
    output: bool = True


def setting(
    default: T,
    *,
    help: str,
    minimum: float | None = None,
    maximum: float | None = None,
    min_open: bool = False,
    choices: tuple[str, ...] = (),
    output: bool = True,
) -> T:
    """A dataclass field with ``default`` that carries its :class:`Setting` (help text, bounds)."""
    meta = Setting(help, minimum, maximum, min_open, choices, output)
    return dataclasses.field(default=default, metadata={SETTING: meta})


def settings(cls: type) -> list[tuple[dataclasses.Field[Any], Setting, Any]]:
    """The fields of dataclass ``cls`` declared with :func:`setting`: (field, setting, resolved type hint)."""
    hints = typing.get_type_hints(cls)
    return [(f, f.metadata[SETTING], hints[f.name]) for f in fields(cls) if SETTING in f.metadata]


def output_settings(options: Any) -> dict[str, Any]:
    """The settings of ``options`` that change the output, by name (batch keys hash them)."""
    return {f.name: getattr(options, f.name) for f, meta, _ in settings(type(options)) if meta.output}


def check_settings(options: Any, where: str = "") -> None:
    """Raise :class:`~geoseg.errors.ConfigError` for a value outside its setting's bounds or choices.

    ``where`` prefixes the option's name in the message (e.g. ``"steps.vectorize."``).
    """
    for f, meta, _ in settings(type(options)):
        value = getattr(options, f.name)
        if value is None:
            continue
        name = where + f.name
        if meta.choices and value not in meta.choices:
            raise ConfigError(f"{name} {value!r} is not one of {', '.join(meta.choices)}")
        if meta.minimum is not None and (value <= meta.minimum if meta.min_open else value < meta.minimum):
            raise ConfigError(f"{name} must be {'>' if meta.min_open else '>='} {_number(meta.minimum)}, got {value}")
        if meta.maximum is not None and value > meta.maximum:
            raise ConfigError(f"{name} must be <= {_number(meta.maximum)}, got {value}")


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


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
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
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
        return tuple(convert(a, v, f"{where}[{i}]") for i, (a, v) in enumerate(zip(args, value, strict=True)))
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


def build(cls: type[T], data: Any, where: str = "") -> T:
    """Build dataclass ``cls`` from a mapping, rejecting unknown keys and wrong types."""
    label = where or "the config"
    if not isinstance(data, Mapping):
        raise ConfigError(f"{label} must be a mapping of keys to values, got {data!r}")
    known = {f.name: f for f in fields(cast(Any, cls))}
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
