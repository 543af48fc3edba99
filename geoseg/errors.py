"""One exception tree for geoseg.

Every error a user can cause derives from :class:`GeoSegError` and from the
builtin exception that matches it, so callers may catch either.  Messages say
what was wrong, the values involved, and how to fix it.
"""

from __future__ import annotations

__all__ = [
    "GeoSegError",
    "InputError",
    "ModelError",
    "ConfigError",
    "OutputExistsError",
    "LabelError",
]


class GeoSegError(Exception):
    """Root of every error geoseg raises on purpose."""


class InputError(GeoSegError, ValueError):
    """An input raster or vector file cannot be used as it is."""


class ModelError(GeoSegError, ValueError):
    """A model file or model card is missing, malformed or incompatible."""


class ConfigError(GeoSegError, ValueError):
    """A configuration file or option is invalid."""


class LabelError(GeoSegError, ValueError):
    """Training or truth labels cannot be used as they are."""


class OutputExistsError(GeoSegError, FileExistsError):
    """The output exists and overwriting was not asked for."""
