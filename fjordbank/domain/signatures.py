"""Signed requests between the card processor and the card service, free of I/O.

The processor signs ``timestamp + "." + body`` with HMAC-SHA256 under a shared secret and
sends ``Fjb-Signature: t=<unix seconds>,v1=<hex>``. The card service recomputes it,
compares in constant time and refuses a timestamp further than ``tolerance`` seconds from
its clock, so a captured request cannot be replayed later (and within the window the
processor's reference makes a replay a no-op).
"""

from __future__ import annotations

import hashlib
import hmac
import re

from fjordbank.domain.errors import DomainError

HEADER = "Fjb-Signature"
TOLERANCE_SECONDS = 300


class BadSignature(DomainError):
    code = "bad_signature"


def sign(secret: bytes, timestamp: int, body: bytes) -> str:
    mac = hmac.new(secret, str(timestamp).encode() + b"." + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={mac}"


def verify(secret: bytes, header: str | None, body: bytes, *, now: float, tolerance: int = TOLERANCE_SECONDS) -> None:
    """Raises `BadSignature` unless ``header`` signs ``body`` with ``secret`` recently."""
    if not secret:
        raise BadSignature("no shared secret is configured")
    if not header:
        raise BadSignature("the request is not signed")
    parts = dict(p.split("=", 1) for p in header.split(",") if "=" in p)
    timestamp, mac = parts.get("t", ""), parts.get("v1", "")
    if not re.fullmatch(r"[0-9]{1,15}", timestamp) or not re.fullmatch(r"[0-9a-f]{64}", mac):
        raise BadSignature("malformed signature header")
    if abs(now - int(timestamp)) > tolerance:
        raise BadSignature("the signature's timestamp is outside the tolerance")
    expected = sign(secret, int(timestamp), body).split("v1=", 1)[1]
    if not hmac.compare_digest(expected, mac):
        raise BadSignature("the signature does not match")
