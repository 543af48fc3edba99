"""Writing an evaluation report folder: previews, confusion matrix, report.html and metrics.json.

Each file is written atomically (temporary name, then rename); metrics.json
comes last, so a folder holding it holds a complete report.  With
``overwrite``, report files that this run does not write (a scene preview
from an earlier run with ``--image``) are removed, so the folder never mixes
two runs.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ...atomic import check_not_input, check_writable, output_errors, temporary_sibling
from ...classes import ClassInfo
from ...io.rasters import SceneInfo
from .html import confusion_matrix_image, render_report
from .previews import (
    IGNORED_COLOUR,
    colour_classes,
    error_map,
    png_bytes,
    preview_shape,
    read_class_preview,
    read_scene_preview,
)

__all__ = ["REPORT_FILES", "write_report"]

#: Files of a report folder, in the order they are written.
REPORT_FILES = (
    "preview_scene.png",
    "preview_prediction.png",
    "preview_truth.png",
    "preview_errors.png",
    "confusion_matrix.png",
    "report.html",
    "metrics.json",
)


def write_report(
    folder: str | os.PathLike[str],
    metrics: dict[str, Any],
    *,
    prediction: str | os.PathLike[str],
    truth: Any,
    image: str | os.PathLike[str] | None,
    classes: Sequence[ClassInfo],
    grid: SceneInfo,
    ignore_id: int | None,
    background_id: int | None,
    overwrite: bool,
) -> list[Path]:
    """Render and write the report for ``metrics``; returns the files written."""
    height, width = preview_shape(grid.height, grid.width)
    pngs: dict[str, bytes] = {}
    captions: dict[str, str] = {}
    if image is not None:
        pngs["preview_scene.png"] = png_bytes(read_scene_preview(image, grid, height, width))
        captions["preview_scene.png"] = f"scene ({Path(image).name}, 2-98 % stretch)"
    else:
        metrics["notes"].append("no scene image given (--image): the report has no scene preview")
    predicted = read_class_preview(prediction, height, width)
    true = truth.read_preview(height, width)
    errors, error_legend = error_map(true, predicted, background_id=background_id, ignore_id=ignore_id)
    pngs["preview_prediction.png"] = png_bytes(colour_classes(predicted, classes))
    captions["preview_prediction.png"] = "prediction"
    pngs["preview_truth.png"] = png_bytes(colour_classes(true, classes, ignore_id=ignore_id))
    captions["preview_truth.png"] = "truth" + (" (reprojected)" if metrics["truth"]["reprojected_from"] else "")
    pngs["preview_errors.png"] = png_bytes(errors)
    captions["preview_errors.png"] = "errors"
    if (height, width) != (grid.height, grid.width):
        metrics["notes"].append(f"previews are {width}x{height} pixels, down-sampled from {grid.width}x{grid.height}")
    cm = metrics["confusion_matrix"]
    pngs["confusion_matrix.png"] = png_bytes(confusion_matrix_image(cm["matrix"], cm["names"]))
    class_legend = {f"{c.name} ({c.id})": c.color for c in classes if c.id != ignore_id}
    if ignore_id is not None:
        class_legend[f"ignored ({ignore_id})"] = IGNORED_COLOUR
    page = render_report(
        metrics,
        images={k: v for k, v in pngs.items() if k.startswith("preview_")},
        captions=captions,
        class_legend=class_legend,
        error_legend=error_legend,
        confusion_png=pngs["confusion_matrix.png"],
    )
    contents: dict[str, bytes] = {
        **pngs,
        "report.html": page.encode("utf-8"),
        "metrics.json": (json.dumps(metrics, indent=2) + "\n").encode("utf-8"),
    }
    folder = Path(folder)
    for name in contents:
        check_not_input(folder / name, [prediction, image], what="report file")
    # Every file is staged first and renamed only when all are written: a full disk leaves the folder as it was.
    created = not folder.exists()
    staged: list[tuple[Path, Path]] = []
    written = []
    try:
        with output_errors(folder / "metrics.json"):
            folder.mkdir(parents=True, exist_ok=True)
            for name in REPORT_FILES:
                if name in contents:
                    target = check_writable(folder / name, overwrite=overwrite)
                    staged.append((temporary_sibling(target), target))
                    staged[-1][0].write_bytes(contents[name])
            for name in REPORT_FILES:
                if name not in contents and overwrite:
                    with contextlib.suppress(FileNotFoundError):
                        (folder / name).unlink()
            for tmp, target in staged:
                os.replace(tmp, target)
                written.append(target)
    except BaseException:
        for tmp, _ in staged:
            with contextlib.suppress(OSError):
                tmp.unlink()
        if created:
            with contextlib.suppress(OSError):
                folder.rmdir()
        raise
    return written
