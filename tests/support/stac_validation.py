"""Validating STAC objects offline against every schema they declare.

The core STAC 1.1.0 and GeoJSON schemas come from pystac; the extension schemas
are the published files in ``stac_schemas/`` (see its README).  A schema that is
neither (an extension declared at a version not here, a reference to one) fails
validation loudly instead of being fetched.
"""

from __future__ import annotations

import copy
import json
from functools import cache
from pathlib import Path
from typing import Any

SCHEMAS = Path(__file__).parent / "stac_schemas"
EXTENSION_URL = "https://stac-extensions.github.io/{name}/{version}/schema.json"
CORE = "https://schemas.stacspec.org/v{version}/{kind}-spec/json-schema/{kind}.json"
MLM = EXTENSION_URL.format(name="mlm", version="v1.4.0")
CLASSES_V2 = EXTENSION_URL.format(name="classification", version="v2.0.0")


@cache
def _registry() -> Any:
    from pystac.validation.local_validator import get_local_schema_cache
    from referencing import Registry, Resource
    from referencing.exceptions import NoSuchResource
    from referencing.jsonschema import DRAFT7

    schemas = dict(get_local_schema_cache())
    for path in SCHEMAS.glob("*/*/schema.json"):
        name, version = path.parent.parent.name, path.parent.name
        schemas[EXTENSION_URL.format(name=name, version=version)] = json.loads(path.read_text(encoding="utf-8"))

    def refuse(uri: str) -> Any:
        raise NoSuchResource(uri)  # no network in tests: every schema must be local

    resources = [(uri, Resource.from_contents(s, default_specification=DRAFT7)) for uri, s in schemas.items()]
    return Registry(retrieve=refuse).with_resources(resources), schemas


def _validate(instance: Any, schema_uri: str) -> None:
    from jsonschema import Draft7Validator

    registry, schemas = _registry()
    if schema_uri.split("#")[0] not in schemas:
        raise AssertionError(f"no local copy of the schema {schema_uri}; add it to tests/support/stac_schemas")
    validator = Draft7Validator({"$ref": schema_uri}, registry=registry)
    errors = sorted(validator.iter_errors(instance), key=lambda e: list(e.absolute_path))
    if errors:
        lines = [f"{'/'.join(map(str, e.absolute_path)) or '(root)'}: {e.message[:300]}" for e in errors[:10]]
        raise AssertionError(f"not valid against {schema_uri}:\n" + "\n".join(lines))


def validate_stac(doc: dict[str, Any]) -> list[str]:
    """Validate ``doc`` against its core schema and each extension schema it declares; returns the schema URIs."""
    kinds = {"Feature": "item", "Collection": "collection", "Catalog": "catalog"}
    kind = kinds.get(doc.get("type", ""))
    if kind is None:
        raise AssertionError(f"not a STAC Item, Collection or Catalog: type {doc.get('type')!r}")
    core = CORE.format(version=doc["stac_version"], kind=kind)
    _validate(doc, core)
    checked = [core]
    for uri in doc.get("stac_extensions", []):
        instance = doc
        if uri == MLM:
            instance = _mlm_classes_checked(doc)
        _validate(instance, uri)
        checked.append(uri)
    return checked


def _mlm_classes_checked(doc: dict[str, Any]) -> dict[str, Any]:
    """Check the classes of MLM outputs against classification v2.0.0; return ``doc`` without them.

    MLM v1.4.0 refers to classification v1.1.0 for them, which no package ships; v2.0.0 is the nearest
    version we have.  (geoseg writes ``value``, ``name``, ``title``, ``description`` and ``color_hint``,
    which covers what every classification version requires.)
    """
    doc = copy.deepcopy(doc)
    for output in doc.get("properties", {}).get("mlm:output", []):
        classes = output.get("classification:classes")
        if classes:
            _validate(classes, CLASSES_V2 + "#/definitions/fields/properties/classification:classes")
        output.pop("classification:classes", None)  # even [] makes the validator resolve the v1.1.0 reference
    return doc
