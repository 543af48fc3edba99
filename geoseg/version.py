"""The geoseg version: one place, read by the package, the model cards, reports and batch keys."""

__version__ = "0.1.0"
