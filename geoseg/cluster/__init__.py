"""The client side of Dask: choosing a cluster and submitting work to it.

What runs on the workers lives in each stage's ``tasks`` module.
"""

from __future__ import annotations

from .client import ClusterSpec, dask_client, local_layout

__all__ = ["ClusterSpec", "dask_client", "local_layout"]
