"""Prediction: a scene through a model, tile by tile, stitched into a land-cover COG.

``api`` (:func:`geoseg.predict`), ``tasks`` (on Dask workers), ``blend``, ``stitch``, ``write`` (COG).
"""
