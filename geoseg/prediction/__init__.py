"""Prediction: a scene through a model, tile by tile, stitched into a land-cover COG.

``api`` (:func:`geoseg.predict`) and ``options``; ``plan`` (blocks of tiles and the seams between them),
``read`` (decoding threads), ``device`` (normalise, predict, blend and sum where the network runs),
``local`` (threads in this process) and ``on_dask`` + ``tasks`` (Dask workers); ``blend``, ``stitch``
(fixed-point sums), ``write`` (COG), ``style`` and ``parts``.
"""
