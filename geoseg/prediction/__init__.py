"""Prediction: a scene through a model, tile by tile, stitched into a land-cover COG.

``api`` (:func:`geoseg.predict`) and ``options``; ``plan`` (blocks of tiles and the seams between them),
``read`` + ``file_blocks`` (decoding), ``device`` (normalise, predict, blend and sum where the network runs),
``techniques`` (ensembles and test-time augmentation, averaged on the device),
``local`` (threads in this process) and ``on_dask`` + ``tasks`` (Dask workers); ``blend``, ``stitch``
(fixed-point sums), ``write`` (COG), ``style`` and ``parts``; ``pseudo_labels`` (confident predictions as
training label rasters) and ``refine`` (edge-aware refinement of probabilities: ``--refine guided``).
"""
