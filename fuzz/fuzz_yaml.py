"""Fuzz configuration reading: YAML text through the bounded loader into the batch and training schemas.

Every input must end in a :class:`~geoseg.errors.ConfigError` or a validated
config; nothing may take more than a moment (alias bombs, deep nesting).
"""

from __future__ import annotations

import sys
from collections.abc import Iterator, Mapping

import _harness  # noqa: F401  (puts tests/ on the path)

try:
    import atheris

    with atheris.instrument_imports(include=["geoseg"]):
        from geoseg.batch.config import BatchConfig
        from geoseg.errors import ConfigError
        from geoseg.safety.yaml_loader import load_yaml
        from geoseg.training.config import load_config
except ImportError:
    from geoseg.batch.config import BatchConfig
    from geoseg.errors import ConfigError
    from geoseg.safety.yaml_loader import load_yaml
    from geoseg.training.config import load_config

_BASE = "/nonexistent/geoseg-fuzz"


def check_one(data: bytes) -> None:
    text = data.decode("utf-8", "replace")
    try:
        loaded = load_yaml(text, "fuzzed.yaml")
        if isinstance(loaded, Mapping):
            if "input" in loaded or "output" in loaded:
                BatchConfig.from_dict(loaded, base_dir=_BASE)
            else:
                load_config(loaded, base_dir=_BASE)
    except ConfigError:
        pass


def seeds() -> Iterator[bytes]:
    from support import hostile as h

    from geoseg.training.config import load_config as _load  # noqa: F401  (import check)

    yield b"input: {folder: archive, glob: '*.tif'}\noutput: out\nmodel: buildings\n"
    yield (b"input: {list: scenes.txt}\noutput: out\nsteps:\n  predict: {overlap: 32, blend: crop}\n"
           b"  vectorize: {classes: [building], min_area: 2}\nconcurrency: 2\nretries: 1\n")
    yield b"input: {stac: catalog.json, asset: image, allow_outside: true}\noutput: out\nmanifest: m.sqlite\n"
    yield (b"scenes:\n  - {image: a.tif, labels: a.gpkg, fill: 0}\nclasses:\n  - {id: 0, name: background}\n"
           b"  - {id: 1, name: building, color: [230, 25, 75]}\nmodel: {architecture: unet, encoder: resnet18}\n"
           b"tile_size: 64\ntrainer: {epochs: 1, batch_size: 2}\nsampler: {kind: balanced, power: 0.5}\n")
    yield b"data_root: ${GEOSEG_DATA:-data}\nscenes: [{image: x.tif, labels: y.gpkg}]\nclasses: [a, b]\n"
    yield h.billion_laughs(3, 3).encode()
    yield b"a: &x {k: 1}\nb:\n  <<: *x\n  j: 2\n"


if __name__ == "__main__":
    _harness.main(check_one, seeds)
    sys.exit(0)
