"""Training: from a config to a model file, with class-balanced tile sampling and geographic validation.

``api`` (:func:`geoseg.train`), ``config``, ``data``, ``labels``, ``tile_index``, ``splits``, ``sampling``,
``dataset``, ``task``, ``callbacks``, ``losses``, ``augment``.
"""
