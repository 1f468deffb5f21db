"""fjordbank.runtime.bodies.nesting_depth: counted without recursion, brackets in strings
(escaped quotes included) not counted; the callables refuse a body past MAX_CALL_DEPTH
before any parser recurses into it (tests/unit/test_log_metrics.py runs them)."""

from __future__ import annotations

import json

import pytest

from fjordbank.runtime.bodies import nesting_depth


@pytest.mark.parametrize(
    ("body", "depth"),
    [
        (b"", 0),
        (b"1", 0),
        (b"{}", 1),
        (b'{"data": {"a": [1, [2]]}}', 4),
        (b'{"data": "[[[[{{{{"}', 1),
        (b'{"data": "a \\" [[[ \\\\", "b": [[]]}', 3),  # an escaped quote does not end the string
        (b'{"a": "\\\\"} [[', 2),  # an escaped backslash does
        (b"[" * 100_000, 100_000),
    ],
)
def test_depth_counts_arrays_and_objects_outside_strings(body, depth):
    assert nesting_depth(body) == depth


def test_it_stops_once_past_the_limit_and_agrees_with_the_parser():
    assert nesting_depth(b"[" * 1_000_000, stop_past=32) == 33
    body = {"data": {"sca": {"keyId": "k", "signature": "s"}, "list": [[1, {"x": [2]}]]}}
    assert nesting_depth(json.dumps(body).encode()) == 6
