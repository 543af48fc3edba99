"""One-to-one polygon matching: by hand and against a brute-force search."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from shapely.geometry import box
from support.evaluation_cases import PRED_POLYS, TRUTH_POLYS, brute_force_match

from geoseg.evaluation.matching import match_polygons


def test_polygon_matching_by_hand():
    r = match_polygons(TRUTH_POLYS, PRED_POLYS, iou_threshold=0.5)
    assert (r.tp, r.fp, r.fn) == (3, 3, 2)
    assert sorted((t, p) for t, p, _ in r.pairs) == [(0, 0), (2, 1), (4, 4)]
    assert (r.precision, r.recall, r.f1) == (pytest.approx(0.5), pytest.approx(0.6), pytest.approx(6 / 11))
    strict = match_polygons(TRUTH_POLYS, PRED_POLYS, iou_threshold=0.6)
    assert (strict.tp, strict.fp, strict.fn) == (2, 4, 3)
    shuffled = match_polygons(TRUTH_POLYS, PRED_POLYS[::-1], iou_threshold=0.5)
    assert (shuffled.tp, shuffled.fp, shuffled.fn) == (3, 3, 2)
    empty = match_polygons([], PRED_POLYS)
    assert (empty.tp, empty.fp, empty.fn, empty.precision, empty.recall) == (0, 6, 0, 0.0, None)



boxes = st.lists(
    st.tuples(st.integers(0, 40), st.integers(0, 40), st.integers(1, 12), st.integers(1, 12)).map(
        lambda b: box(b[0], b[1], b[0] + b[2], b[1] + b[3])
    ),
    max_size=10,
)


@settings(max_examples=60, deadline=None)
@given(truth=boxes, pred=boxes, threshold=st.sampled_from([0.1, 0.3, 0.5, 0.75, 1.0]))
def test_polygon_matching_equals_brute_force(truth, pred, threshold):
    r = match_polygons(truth, pred, iou_threshold=threshold)
    assert (r.tp, r.fp, r.fn) == brute_force_match(truth, pred, threshold)
    assert len({t for t, _, _ in r.pairs}) == len({p for _, p, _ in r.pairs}) == r.tp
