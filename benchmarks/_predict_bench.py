"""Shared parts of the predict benchmarks: stand-in networks, model files, child processes, machine load."""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import torch
from torch import nn

HERE = Path(__file__).resolve().parent


class NullNet(nn.Module):
    """A 1x1 convolution (3 bands -> 2 classes): the network costs nothing, so the pipeline is all that is timed."""

    def __init__(self, bands: int = 3, classes: int = 2) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.conv = nn.Conv2d(bands, classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


def card(**kw: Any) -> Any:
    import geoseg

    return geoseg.ModelCard(
        classes=["background", "building"], bands=["red", "green", "blue"],
        normalization={"mean": [120.0] * 3, "std": [60.0] * 3}, tile_size=512, **kw,
    )


def null_model() -> Any:
    import geoseg

    return geoseg.Model(NullNet().eval(), card())


def smp_model_file(path: Path, arch: str, encoder: str, arch_params: dict[str, Any] | None = None) -> Path:
    """A randomly initialised segmentation-models-pytorch network saved as a geoseg model file."""
    import geoseg
    from geoseg.model.network import create_network

    c = card(architecture=arch, encoder=encoder, arch_params=arch_params or {})
    torch.manual_seed(0)
    return geoseg.Model(create_network(c).eval(), c).save(path, overwrite=True)


def load() -> list[float]:
    """1, 5 and 15 minute load averages (others share this machine)."""
    return [round(x, 2) for x in os.getloadavg()]


def cpu_seconds() -> float:
    """User + system CPU time of this process so far."""
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def child(script: Path, *args: str, env: dict[str, str] | None = None, timeout: float = 3600) -> dict[str, Any]:
    """Run ``script --child ...`` in a fresh interpreter; its last stdout line is a JSON result."""
    proc = subprocess.run(
        [sys.executable, str(script), "--child", *args], capture_output=True, text=True, timeout=timeout,
        env={**os.environ, **(env or {})},
    )
    if proc.returncode != 0:
        raise SystemExit(f"{script.name} {' '.join(args)} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def timed(fn: Any) -> dict[str, float]:
    """Wall and CPU seconds of ``fn()``."""
    cpu, wall = cpu_seconds(), time.perf_counter()
    fn()
    return {"seconds": time.perf_counter() - wall, "cpu_seconds": cpu_seconds() - cpu}


def emit(record: dict[str, Any]) -> None:
    print(json.dumps(record), flush=True)
