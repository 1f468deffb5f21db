"""Signed requests between the card processor and the card service, free of I/O.

The processor signs ``timestamp + "." + METHOD + "." + path + "." + body`` with HMAC-SHA256
under a shared secret and sends ``Fjb-Signature: t=<unix seconds>,v2=<hex>``. The card
service recomputes it for the method and path it was called on, compares in constant time
and refuses a timestamp further than ``tolerance`` seconds from its clock, so a captured
request cannot be replayed later (and within the window the processor's reference makes a
replay a no-op), nor sent to another endpoint: a body signed for a capture is refused as a
reversal whatever the two bodies have in common.

The first scheme (``v1``, over the timestamp and body only) is refused with a reason that
says so; no processor signs with it any more.
"""

from __future__ import annotations

import hashlib
import hmac
import re

from fjordbank.domain.errors import DomainError

HEADER = "Fjb-Signature"
TOLERANCE_SECONDS = 300
SCHEME = "v2"


class BadSignature(DomainError):
    """``why``: what the caller is told (never the expected signature): unsigned,
    unsupported_scheme, malformed, stale_timestamp, mismatch, or not_configured (ours)."""

    code = "bad_signature"

    def __init__(self, message: str, why: str) -> None:
        super().__init__(message)
        self.why = why


def _mac(secret: bytes, timestamp: int, method: str, path: str, body: bytes) -> str:
    signed = f"{timestamp}.{method.upper()}.{path}.".encode() + body
    return hmac.new(secret, signed, hashlib.sha256).hexdigest()


def sign(secret: bytes, timestamp: int, body: bytes, *, path: str, method: str = "POST") -> str:
    """The header value for a request of ``method`` to ``path`` (no query) with ``body``."""
    return f"t={timestamp},{SCHEME}={_mac(secret, timestamp, method, path, body)}"


def verify(
    secret: bytes,
    header: str | None,
    body: bytes,
    *,
    path: str,
    now: float,
    method: str = "POST",
    tolerance: int = TOLERANCE_SECONDS,
) -> None:
    """Raises `BadSignature` unless ``header`` signs ``body`` for ``method`` and ``path``
    with ``secret`` recently."""
    if not secret:
        raise BadSignature("no shared secret is configured", "not_configured")
    if not header:
        raise BadSignature("the request is not signed", "unsigned")
    parts = dict(p.split("=", 1) for p in header.split(",") if "=" in p)
    if SCHEME not in parts and "v1" in parts:
        raise BadSignature(
            "v1 signatures (timestamp and body only) are refused: sign the method and path too (v2)",
            "unsupported_scheme",
        )
    timestamp, mac = parts.get("t", ""), parts.get(SCHEME, "")
    if not re.fullmatch(r"[0-9]{1,15}", timestamp) or not re.fullmatch(r"[0-9a-f]{64}", mac):
        raise BadSignature("malformed signature header", "malformed")
    if abs(now - int(timestamp)) > tolerance:
        raise BadSignature("the signature's timestamp is outside the tolerance", "stale_timestamp")
    if not hmac.compare_digest(_mac(secret, int(timestamp), method, path, body), mac):
        raise BadSignature("the signature does not match", "mismatch")
