"""The evaluation report: a confusion-matrix picture and one self-contained HTML page.

The page needs no network: CSS is inline and every image is a base64 PNG data
URI.  Figures appear as text with 4 decimals; each metric cell also carries
``data-metric`` and ``data-value`` (full precision, empty for null), so tools
and tests can read the page back.
"""

from __future__ import annotations

import base64
import html
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

__all__ = ["confusion_matrix_image", "format_figure", "render_report"]

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:24px;color:#222;background:#fafafa}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 8px;border-bottom:1px solid #ddd;padding-bottom:4px}
.files{color:#555;font-size:13px;margin:2px 0}
.cards{display:flex;gap:12px;flex-wrap:wrap;margin:14px 0}
.card{background:#fff;border:1px solid #ddd;border-radius:6px;padding:10px 16px;min-width:150px}
.card .v{font-size:24px;font-weight:600}.card .k{font-size:12px;color:#666}
table{border-collapse:collapse;background:#fff;font-size:13px}
th,td{border:1px solid #ddd;padding:4px 8px}th{background:#f0f0f0;text-align:left}
td.num{text-align:right;font-variant-numeric:tabular-nums}
.swatch{display:inline-block;width:12px;height:12px;border:1px solid #888;margin-right:6px;vertical-align:-1px}
.previews{display:grid;grid-template-columns:repeat(auto-fit,minmax(260px,1fr));gap:12px}
figure{margin:0;background:#fff;border:1px solid #ddd;padding:6px}
figure img{width:100%;height:auto;image-rendering:pixelated;
 background:repeating-conic-gradient(#eee 0 25%,#fff 0 50%) 0 0/16px 16px}
figcaption{font-size:12px;color:#555;margin-top:4px}
.legend{display:flex;flex-wrap:wrap;gap:6px 18px;font-size:13px}
.muted{color:#777}ul.notes{font-size:13px}
"""

_METRIC_COLUMNS = (("iou", "IoU"), ("precision", "precision"), ("recall", "recall"), ("f1", "F1"))


def format_figure(value: float | None) -> str:
    """A figure as shown in the report: 4 decimals, or an en dash for null."""
    return "\u2013" if value is None else f"{value:.4f}"


def _hex(colour: Sequence[int]) -> str:
    return "#{:02x}{:02x}{:02x}".format(*colour[:3])


def _data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def _value(value: float | None) -> str:
    return "" if value is None else repr(float(value))


def _metric_cell(name: str, value: float | None) -> str:
    return f'<td class="num" data-metric="{name}" data-value="{_value(value)}">{format_figure(value)}</td>'


def _count_cell(name: str, value: int) -> str:
    return f'<td class="num" data-metric="{name}" data-value="{int(value)}">{int(value)}</td>'


def confusion_matrix_image(matrix: np.ndarray, names: Sequence[str]) -> Any:
    """The confusion matrix as a Pillow image: rows truth, columns prediction, shaded by row share."""
    from PIL import Image, ImageDraw, ImageFont

    matrix = np.asarray(matrix, dtype=np.int64)
    n = len(names)
    font = ImageFont.load_default(size=13)
    small = ImageFont.load_default(size=11)
    probe = ImageDraw.Draw(Image.new("RGB", (1, 1)))

    def text_width(text: str, f: Any = font) -> int:
        left, _, right, _ = probe.textbbox((0, 0), text, font=f)
        return int(right - left)

    label_w = max([text_width(s) for s in names] + [40]) + 12
    cell = max([text_width(f"{v:,}") for v in matrix.ravel()] + [40]) + 14
    axis = 20
    left, top = axis + label_w, axis + label_w
    width, height = left + n * cell + 10, top + n * cell + 10
    img = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(img)
    rows = matrix.sum(axis=1)
    for r in range(n):
        for c in range(n):
            share = matrix[r, c] / rows[r] if rows[r] else 0.0
            colour = tuple(round(255 * (1 - share) + v * share) for v in (8, 48, 107))
            x0, y0 = left + c * cell, top + r * cell
            draw.rectangle([x0, y0, x0 + cell, y0 + cell], fill=colour, outline=(200, 200, 200))
            ink = "white" if share > 0.5 else "black"
            count = f"{matrix[r, c]:,}"
            draw.text((x0 + (cell - text_width(count)) / 2, y0 + cell / 2 - 14), count, fill=ink, font=font)
            if rows[r]:
                pct = f"{100 * share:.1f}%"
                draw.text((x0 + (cell - text_width(pct, small)) / 2, y0 + cell / 2 + 2), pct, fill=ink, font=small)
    for k, name in enumerate(names):
        draw.text((left - 6 - text_width(name), top + k * cell + cell / 2 - 8), name, fill="black", font=font)
        label = Image.new("RGB", (text_width(name) + 4, 18), "white")
        ImageDraw.Draw(label).text((0, 0), name, fill="black", font=font)
        label = label.rotate(90, expand=True)
        img.paste(label, (int(left + k * cell + cell / 2 - 9), int(top - 6 - label.height)))
    draw.text((left, 2), "prediction", fill=(90, 90, 90), font=font)
    truth_label = Image.new("RGB", (text_width("truth") + 4, 18), "white")
    ImageDraw.Draw(truth_label).text((0, 0), "truth", fill=(90, 90, 90), font=font)
    truth_label = truth_label.rotate(90, expand=True)
    img.paste(truth_label, (2, top))
    return img


def _class_rows(metrics: Mapping[str, Any], colours: Mapping[int, Sequence[int]]) -> str:
    rows = []
    for c in metrics["per_class"]:
        swatch = f'<span class="swatch" style="background:{_hex(colours.get(c["id"], (128, 128, 128)))}"></span>'
        status = "" if c["status"] == "evaluated" else f' <span class="muted">({c["status"]})</span>'
        cells = [
            f'<td data-metric="name">{swatch}{html.escape(c["name"])}{status}</td>',
            f'<td class="num" data-metric="id">{c["id"]}</td>',
            _count_cell("truth_pixels", c["truth_pixels"]),
            _count_cell("predicted_pixels", c["predicted_pixels"]),
            *(_metric_cell(key, c[key]) for key, _ in _METRIC_COLUMNS),
        ]
        rows.append(f'<tr data-class-id="{c["id"]}" data-status="{c["status"]}">{"".join(cells)}</tr>')
    return "\n".join(rows)


def _polygon_section(metrics: Mapping[str, Any]) -> str:
    poly = metrics.get("polygon_metrics")
    if not poly:
        return '<p class="muted">Polygon metrics were not computed (see the notes).</p>'
    head = (
        "<tr><th>class</th><th>id</th><th>truth polygons</th><th>predicted polygons</th>"
        "<th>TP</th><th>FP</th><th>FN</th><th>precision</th><th>recall</th><th>F1</th></tr>"
    )
    rows = []
    for c in poly["classes"]:
        cells = [
            f'<td data-metric="name">{html.escape(c["name"])}</td>',
            f'<td class="num" data-metric="id">{c["id"]}</td>',
            *(_count_cell(k, c[k]) for k in ("truth_polygons", "predicted_polygons", "tp", "fp", "fn")),
            *(_metric_cell(k, c[k]) for k in ("precision", "recall", "f1")),
        ]
        rows.append(f'<tr data-class-id="{c["id"]}">{"".join(cells)}</tr>')
    return (
        f"<p>One-to-one matching at IoU \u2265 {poly['iou_threshold']:g} (best IoU first; each polygon used once).</p>"
        f'<table id="polygon-metrics"><thead>{head}</thead><tbody>\n' + "\n".join(rows) + "\n</tbody></table>"
    )


def _legend(entries: Mapping[str, Sequence[int]]) -> str:
    items = (
        f'<span><span class="swatch" style="background:{_hex(colour)}"></span>{html.escape(name)}</span>'
        for name, colour in entries.items()
    )
    return '<div class="legend">' + "".join(items) + "</div>"


def render_report(
    metrics: Mapping[str, Any],
    *,
    images: Mapping[str, bytes],
    captions: Mapping[str, str],
    class_legend: Mapping[str, Sequence[int]],
    error_legend: Mapping[str, Sequence[int]],
    confusion_png: bytes,
) -> str:
    """The HTML page for ``metrics`` (the metrics.json content) with the given PNG previews."""
    colours = {c["id"]: c["color"] for c in metrics["classes"]}
    cards = "".join(
        f'<div class="card"><div class="v" data-metric="{key}" data-value="{_value(metrics[key])}">'
        f'{format_figure(metrics[key])}</div><div class="k">{label}</div></div>'
        for key, label in (
            ("mean_iou", "mean IoU"),
            ("pixel_accuracy", "pixel accuracy"),
            ("mean_pixel_accuracy", "mean pixel accuracy"),
        )
    )
    px = metrics["pixels"]
    pixel_line = (
        f"{px['evaluated']:,} pixels evaluated of {px['total']:,}; left out: {px['truth_nodata']:,} without truth, "
        f"{px['ignored']:,} with the ignore id, {px['prediction_nodata']:,} without prediction."
    )
    head = (
        "<tr><th>class</th><th>id</th><th>truth px</th><th>predicted px</th>"
        + "".join(f"<th>{label}</th>" for _, label in _METRIC_COLUMNS)
        + "</tr>"
    )
    figures = "".join(
        f'<figure><img alt="{html.escape(captions[key])}" src="{_data_uri(png)}">'
        f"<figcaption>{html.escape(captions[key])}</figcaption></figure>"
        for key, png in images.items()
    )
    notes = "".join(f"<li>{html.escape(n)}</li>" for n in metrics["notes"])
    files = "".join(
        f'<p class="files">{label}: {html.escape(str(metrics["inputs"][key]))}</p>'
        for key, label in (
            ("prediction", "prediction"),
            ("truth", "truth"),
            ("pred_vectors", "predicted polygons"),
            ("image", "image"),
        )
        if metrics["inputs"].get(key)
    )
    truth = metrics["truth"]
    if truth["reprojected_from"]:
        files += f'<p class="files" id="truth-crs">truth reprojected from {html.escape(truth["reprojected_from"])}</p>'
    elif truth["resampled"]:
        files += '<p class="files" id="truth-crs">truth resampled onto the prediction grid (nearest neighbour)</p>'
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>geoseg evaluation</title>
<meta name="viewport" content="width=device-width, initial-scale=1"><style>{_CSS}</style></head>
<body>
<h1>geoseg evaluation</h1>
{files}
<div class="cards" id="summary">{cards}</div>
<p class="muted">{pixel_line}</p>
<h2>Per-class pixel metrics</h2>
<table id="metrics"><thead>{head}</thead><tbody>
{_class_rows(metrics, colours)}
</tbody></table>
<p class="muted">Null (\u2013): undefined (no truth or no predicted pixel of the class).
Classes absent from both truth and prediction, and the ignore id, are left out of the means;
mean pixel accuracy is the mean of per-class recall.</p>
<h2>Polygon metrics</h2>
{_polygon_section(metrics)}
<h2>Confusion matrix</h2>
<p class="muted">Rows: truth; columns: prediction; shade: share of the truth row.</p>
<img id="confusion-matrix" alt="confusion matrix" src="{_data_uri(confusion_png)}">
<h2>Previews</h2>
<div class="previews">{figures}</div>
<h2>Legend</h2>
<p>Classes</p>{_legend(class_legend)}
<p>Errors</p>{_legend(error_legend)}
<h2>Notes</h2>
<ul class="notes">{notes}</ul>
<p class="muted">geoseg {html.escape(str(metrics["geoseg_version"]))}</p>
</body></html>
"""
