"""The evaluation report folder: previews, the confusion-matrix picture, report.html and metrics.json."""
