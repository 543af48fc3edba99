"""Evaluation: a land-cover prediction against truth, pixel and polygon metrics, and a report.

``api`` (:func:`geoseg.evaluate`), ``truth``, ``polygons``, ``matching``, ``seam_metric``, ``report/``.
"""
