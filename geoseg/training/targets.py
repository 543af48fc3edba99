"""Training targets that know where buildings touch: body, border and contact, computed from the label polygons.

A binary building mask cannot tell two touching roofs from one big roof.  These
targets can: every polygon of the split class is burnt as its own instance, and
each of its pixels becomes

* ``contact``: within ``contact`` metres of a *different* instance (where two
  buildings touch or nearly touch);
* ``border``: otherwise within ``border`` metres of the background;
* the class itself (the *body*): every other pixel of the instance.

Background and the other classes are burnt as they are.  The network learns
the three part classes; predict folds them back into one class for the map
people read (:meth:`geoseg.model.card.ModelCard.display_classes`) and keeps the
parts in a sidecar raster, from which vectorize seeds one building per body
(:mod:`geoseg.vectorization.split`).  The SpaceNet 4 winners and HOT's ramp
train on the same three targets.

:func:`part_targets` is the pure array function; :func:`prepare_part_labels`
burns a scene's vector labels band by band (bounded memory, with a halo of
rows so distances across band edges are exact) into a cached label raster on
the image grid.
"""

from __future__ import annotations

import json
import logging
import math
import os
from collections.abc import Sequence
from dataclasses import fields
from pathlib import Path
from typing import Any

import numpy as np

from ..atomic import atomic_path
from ..classes import NODATA, ClassInfo
from ..errors import ConfigError, LabelError
from ..io.rasters import SceneInfo
from .cache_keys import cache_key, file_fingerprint
from .config import PartTargets

__all__ = ["PartTargets", "part_classes", "part_targets", "prepare_part_labels", "disk"]

log = logging.getLogger(__name__)

_VERSION = 1
#: Default colours of the part classes in class maps that show them (the sidecar).
BORDER_COLOUR = (255, 160, 0)
CONTACT_COLOUR = (255, 255, 0)


def part_classes(classes: Sequence[ClassInfo], parts: PartTargets) -> tuple[tuple[ClassInfo, ...], dict[str, int]]:
    """``classes`` plus the border and contact classes of ``parts.of``, and the part scheme (class ids).

    The new classes take the next free ids and are named ``<class>_border`` and ``<class>_contact``.
    """
    by_name = {c.name.lower(): c for c in classes}
    by_id = {str(c.id): c for c in classes}
    of = by_name.get(str(parts.of).lower()) or by_id.get(str(parts.of))
    if of is None:
        raise ConfigError(f"parts.of {parts.of!r} is not one of the classes ({', '.join(c.name for c in classes)})")
    names = {f"{of.name}_border", f"{of.name}_contact"}
    clash = names & {c.name for c in classes}
    if clash:
        raise ConfigError(f"classes already hold {sorted(clash)}; parts adds these classes itself, remove them")
    nxt = max(c.id for c in classes) + 1
    if nxt + 1 >= NODATA:
        raise ConfigError(f"no class ids left below {NODATA} for the border and contact classes")
    border = ClassInfo(nxt, f"{of.name}_border", BORDER_COLOUR)
    contact = ClassInfo(nxt + 1, f"{of.name}_contact", CONTACT_COLOUR)
    return (*classes, border, contact), {"of": of.id, "border": border.id, "contact": contact.id}


def disk(radius: float) -> np.ndarray:
    """A boolean disk footprint of ``radius`` pixels (at least the 3x3 cross)."""
    r = max(1.0, float(radius))
    n = int(math.floor(r))
    yy, xx = np.mgrid[-n : n + 1, -n : n + 1]
    return (yy * yy + xx * xx) <= r * r + 1e-9


def part_targets(
    instances: np.ndarray,
    *,
    border_px: float,
    contact_px: float,
    body: int,
    border: int,
    contact: int,
) -> np.ndarray:
    """Part ids for the pixels of ``instances`` (int, 0 = no object, else one id per object); 0 elsewhere.

    Pure: pixels outside the array count as copies of the nearest edge pixel,
    so the edge of a scene never makes a border.
    """
    from scipy import ndimage

    inst = np.asarray(instances)
    inside = inst > 0
    out = np.zeros(inst.shape, dtype=np.uint8)
    if not inside.any():
        return out
    out[inside] = body
    fp_contact = disk(contact_px)
    big = np.iinfo(np.int64).max
    wide = inst.astype(np.int64)
    lowest = ndimage.minimum_filter(np.where(inside, wide, big), footprint=fp_contact, mode="nearest")
    highest = ndimage.maximum_filter(wide, footprint=fp_contact, mode="nearest")
    touching = inside & ((lowest < wide) | (highest > wide))
    near_background = inside & ~ndimage.minimum_filter(inside, footprint=disk(border_px), mode="nearest")
    out[near_background] = border
    out[touching] = contact
    return out


def _label_report(**values: Any):
    from .labels import LabelReport

    known = {f.name for f in fields(LabelReport)}
    return LabelReport(**{k: v for k, v in values.items() if k in known})


def prepare_part_labels(
    scene: SceneInfo,
    labels: str | os.PathLike[str],
    *,
    class_ids: Sequence[int],
    scheme: dict[str, int],
    parts: PartTargets,
    ignore_id: int | None,
    class_column: str = "class_id",
    layer: str | None = None,
    fill: int | None = None,
    cache_dir: str | os.PathLike[str],
    rows: int = 1024,
):
    """Burn vector labels onto the image grid with the part classes of ``scheme``; cached in ``cache_dir``.

    Returns a :class:`geoseg.training.labels.PreparedLabels`.  Polygons of
    class ``scheme["of"]`` become instances split into body, border and
    contact; other classes are burnt as they are (larger first, smaller on top).
    """
    import rasterio
    import shapely
    from rasterio.features import rasterize
    from rasterio.windows import Window
    from rasterio.windows import transform as window_transform

    from .labels import PreparedLabels, load_vector_labels

    path = Path(labels)
    if not path.exists():
        raise LabelError(f"labels {str(path)!r} for {Path(scene.path).name} do not exist; check the path in the config")
    if path.suffix.lower() in (".tif", ".tiff"):
        raise LabelError(
            f"parts (border and contact targets) are computed from label polygons, but {str(path)!r} is a raster; "
            "give the scene's vector labels (GeoPackage, GeoJSON, ...) or remove the parts section"
        )
    if scene.resolution_m is None:
        raise LabelError(f"{scene.path!r}: its ground resolution is unknown, so border/contact widths cannot be set")
    fill = ignore_id if fill is None else fill
    if fill is None:
        raise LabelError(f"{path.name}: pixels outside every polygon need a class: set scenes[].fill or ignore_id")
    cache_dir = Path(cache_dir)
    key = cache_key(
        labels=file_fingerprint(path), image=file_fingerprint(scene.path),
        grid=[scene.width, scene.height, list(scene.transform), scene.crs_wkt], classes=list(class_ids),
        scheme=scheme, border=parts.border, contact=parts.contact, fill=fill, ignore=ignore_id, column=class_column,
        layer=layer, version=_VERSION,
    )
    out = cache_dir / f"parts-{Path(scene.path).stem}-{key}.tif"
    report_path = out.with_suffix(".json")
    if out.exists() and report_path.exists():
        log.info("reusing part labels %s", out)
        return PreparedLabels(str(out), _label_report(**json.loads(report_path.read_text())))

    loaded = load_vector_labels(scene, path, class_ids=class_ids, ignore_id=ignore_id, class_column=class_column,
                                layer=layer)
    geoms, values = loaded.geoms, loaded.values
    is_object = values == scheme["of"]
    other = np.flatnonzero(~is_object)
    other = other[np.argsort(-shapely.area(geoms[other]), kind="stable")]
    objects = np.flatnonzero(is_object)
    objects = objects[np.argsort(-shapely.area(geoms[objects]), kind="stable")]  # small ones on top
    pixel = scene.resolution_m
    border_px, contact_px = parts.border / pixel, parts.contact / pixel
    halo = int(math.ceil(max(border_px, contact_px, 1.0))) + 1
    affine = scene.affine
    tree = shapely.STRtree(geoms) if len(geoms) else None

    cache_dir.mkdir(parents=True, exist_ok=True)
    with atomic_path(out, overwrite=True) as tmp, rasterio.open(
        tmp, "w", driver="GTiff", width=scene.width, height=scene.height, count=1, dtype="uint8",
        crs=scene.crs, transform=affine, nodata=NODATA, tiled=True, compress="deflate",
    ) as dst:
        for r0 in range(0, scene.height, rows):
            r1 = min(scene.height, r0 + rows)
            h0, h1 = max(0, r0 - halo), min(scene.height, r1 + halo)
            win = Window(0, h0, scene.width, h1 - h0)
            wt = window_transform(win, affine)
            shape = (h1 - h0, scene.width)
            band = np.full(shape, fill, dtype=np.uint8)
            inst = np.zeros(shape, dtype=np.int32)
            if tree is not None:
                x0, y0 = wt * (0, 0)
                x1, y1 = wt * (scene.width, h1 - h0)
                near = set(tree.query(shapely.box(min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1))).tolist())
                picked = [i for i in other if i in near]
                if picked:
                    rasterize(((geoms[i], int(values[i])) for i in picked), out=band, transform=wt)
                picked = [i for i in objects if i in near]
                if picked:
                    rasterize(((geoms[i], int(i) + 1) for i in picked), out=inst, transform=wt)
            targets = part_targets(inst, border_px=border_px, contact_px=contact_px, body=scheme["of"],
                                   border=scheme["border"], contact=scheme["contact"])
            band = np.where(inst > 0, targets, band)
            dst.write(band[r0 - h0 : r0 - h0 + (r1 - r0)], 1, window=Window(0, r0, scene.width, r1 - r0))
    report = loaded.report
    with atomic_path(report_path, overwrite=True) as tmp:
        tmp.write_text(json.dumps(report.to_dict()))
    log.info("burnt %d object(s) with border %.2g px and contact %.2g px, and %d other feature(s) of %s onto %s",
             len(objects), border_px, contact_px, len(other), path.name, Path(scene.path).name)
    return PreparedLabels(str(out), report)
