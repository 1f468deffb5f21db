"""Checks of a request body before any parser recurses into it."""

from __future__ import annotations

_OPEN, _CLOSE, _QUOTE, _ESCAPE = frozenset(b"[{"), frozenset(b"]}"), ord('"'), ord("\\")


def nesting_depth(body: bytes, stop_past: int | None = None) -> int:
    """How deep the JSON text's arrays and objects nest (brackets inside strings not
    counted), without recursion: Python's parser counts depth against the recursion limit,
    and a body parsed once by us and again some frames deeper by the Functions SDK passed
    our parse and failed the SDK's with a bare HTTP 500 (found in review, 2026-12-06).
    ``stop_past``: return as soon as the depth exceeds it. Malformed text is the parser's
    to refuse; this only counts."""
    depth = deepest = 0
    in_string = escaped = False
    for byte in body:
        if in_string:
            if escaped:
                escaped = False
            elif byte == _ESCAPE:
                escaped = True
            elif byte == _QUOTE:
                in_string = False
        elif byte == _QUOTE:
            in_string = True
        elif byte in _OPEN:
            depth += 1
            if depth > deepest:
                deepest = depth
                if stop_past is not None and deepest > stop_past:
                    return deepest
        elif byte in _CLOSE:
            depth -= 1
    return deepest
