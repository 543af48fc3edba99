"""How geoseg's rasters look in GIS software: QGIS styles, value scaling and overview resampling.

A :class:`RasterStyle` says what a written raster carries beyond its pixels:

* the class raster gets a QGIS default style beside it (``landcover.qml`` for
  ``landcover.tif``; QGIS loads ``<name>.qml`` by itself when the raster is
  opened): a paletted renderer with each class's name and colour in the
  legend, and the nodata value (255) transparent.  Its overviews take the
  nearest class (an average of class ids is no class);
* the confidence raster carries the scale 1/255 (offset 0) in its metadata,
  so GIS software and rasterio show probabilities 0..1, and its overviews are
  averages.

The style is written before its raster is renamed into place (see
:func:`write_sidecars`), so a raster under its final name always has its style.
"""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..atomic import atomic_path
from ..classes import NODATA, ClassInfo

__all__ = [
    "CONFIDENCE_SCALE",
    "RasterStyle",
    "class_style",
    "confidence_style",
    "move_sidecars",
    "qml_path",
    "qml_text",
    "sidecar_paths",
    "write_sidecars",
]

#: Confidence is stored as round(probability x 255): one unit is 1/255.
CONFIDENCE_SCALE = 1.0 / 255.0


@dataclass(frozen=True)
class RasterStyle:
    """What a raster carries besides its pixels; small and picklable."""

    #: GDAL's overview resampling for the COG (``NEAREST`` for classes, ``AVERAGE`` for continuous values).
    overview_resampling: str = "NEAREST"
    #: Band scale and offset (physical value = stored x scale + offset), or ``None`` to leave them unset.
    scale: float | None = None
    offset: float | None = None
    #: Classes for a QGIS paletted style written beside the raster; empty: no style file.
    classes: tuple[ClassInfo, ...] = field(default_factory=tuple)

    @property
    def cog_options(self) -> dict[str, str]:
        return {"OVERVIEW_RESAMPLING": self.overview_resampling}

    def apply(self, dataset: Any) -> None:
        """Set the band's scale and offset on an open, writable rasterio dataset."""
        if self.scale is not None:
            dataset.scales = (self.scale,)
        if self.offset is not None:
            dataset.offsets = (self.offset,)


def class_style(classes: Sequence[ClassInfo]) -> RasterStyle:
    return RasterStyle(overview_resampling="NEAREST", classes=tuple(classes))


def confidence_style() -> RasterStyle:
    return RasterStyle(overview_resampling="AVERAGE", scale=CONFIDENCE_SCALE, offset=0.0)


def qml_path(raster: str | os.PathLike[str]) -> Path:
    """Where QGIS looks for a raster's default style: the same name with ``.qml``."""
    return Path(raster).with_suffix(".qml")


def sidecar_paths(raster: str | os.PathLike[str], style: RasterStyle | None) -> list[Path]:
    """The files :func:`write_sidecars` writes beside ``raster``."""
    return [qml_path(raster)] if style is not None and style.classes else []


def qml_text(classes: Sequence[ClassInfo], *, nodata: int = NODATA) -> str:
    """A QGIS layer style: a paletted renderer of band 1 with the classes' names and colours; ``nodata`` clear."""
    root = ET.Element("qgis", {"version": "3.28.0", "styleCategories": "Symbology"})
    pipe = ET.SubElement(root, "pipe")
    provider = ET.SubElement(pipe, "provider")
    ET.SubElement(provider, "resampling", {
        "enabled": "false", "zoomedInResamplingMethod": "nearestNeighbour",
        "zoomedOutResamplingMethod": "nearestNeighbour", "maxOversampling": "2",
    })
    renderer = ET.SubElement(pipe, "rasterrenderer", {
        "type": "paletted", "band": "1", "opacity": "1", "alphaBand": "-1", "nodataColor": "",
    })
    transparency = ET.SubElement(renderer, "rasterTransparency")
    pixels = ET.SubElement(transparency, "singleValuePixelList")
    ET.SubElement(pixels, "pixelListEntry", {"min": str(nodata), "max": str(nodata), "percentTransparent": "100"})
    palette = ET.SubElement(renderer, "colorPalette")
    for c in sorted(classes, key=lambda c: c.id):
        ET.SubElement(palette, "paletteEntry", {
            "value": str(c.id), "label": c.name, "alpha": "255", "color": "#{:02x}{:02x}{:02x}".format(*c.color),
        })
    ET.SubElement(pipe, "brightnesscontrast", {"brightness": "0", "contrast": "0", "gamma": "1"})
    ET.SubElement(pipe, "rasterresampler", {"maxOversampling": "2"})
    ET.SubElement(root, "blendMode").text = "0"
    ET.indent(root)
    body = ET.tostring(root, encoding="unicode")
    return f"<!DOCTYPE qgis PUBLIC 'http://mrcc.com/qgis.dtd' 'SYSTEM'>\n{body}\n"


def write_sidecars(raster: str | os.PathLike[str], style: RasterStyle | None) -> list[Path]:
    """Write the style files of ``raster`` beside it, each atomically; call before the raster is renamed in."""
    written = []
    if style is not None and style.classes:
        path = qml_path(raster)
        with atomic_path(path, overwrite=True) as tmp:
            tmp.write_text(qml_text(style.classes), encoding="utf-8")
        written.append(path)
    return written


def move_sidecars(source: str | os.PathLike[str], target: str | os.PathLike[str]) -> dict[Path, Path]:
    """Rename the style files of raster ``source`` to go with raster ``target``; returns ``{new: old}``."""
    moved: dict[Path, Path] = {}
    for old in (qml_path(source),):
        if old.is_file():
            new = qml_path(target)
            os.replace(old, new)
            moved[new] = old
    return moved

