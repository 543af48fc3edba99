"""The client side of Dask: one cluster chooser and one bounded submission helper.

What runs on the workers lives in each stage's ``tasks`` module.
"""

from __future__ import annotations

from .client import ClusterSpec, dask_client, local_layout
from .submit import TaskStream, bounded_map, default_limit

__all__ = ["ClusterSpec", "TaskStream", "bounded_map", "dask_client", "default_limit", "local_layout"]
