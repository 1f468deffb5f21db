"""Unit and property tests for fjordbank.domain.signatures (HMAC-signed processor requests,
no I/O).

The promises checked here are the module's own: ``sign`` makes ``t=<unix seconds>,v2=<hex>``
over ``timestamp + "." + METHOD + "." + path + "." + body``; ``verify`` accepts exactly that
header for that body, method, path and secret within ``tolerance`` seconds either side of
``now``, and raises `BadSignature` for anything else (tampered body, another endpoint or
method, wrong secret, missing or malformed header, the old v1 scheme, stale or future
timestamp, no configured secret).
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Any

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from fjordbank.domain.errors import DomainError
from fjordbank.domain.signatures import HEADER, TOLERANCE_SECONDS, BadSignature, sign, verify

SECRET = b"processor-shared-secret-0123456789"
NOW = 1_795_000_000
BODY = b'{"reference":"proc-ref-0001","amount":12345}'
PATH = "/v1/captures"


def bad(header: str | None, body: bytes = BODY, *, secret: bytes = SECRET, now: float = NOW, **kw: Any) -> str:
    with pytest.raises(BadSignature) as excinfo:
        verify(secret, header, body, path=kw.pop("path", PATH), now=now, **kw)
    assert excinfo.value.code == "bad_signature"
    assert isinstance(excinfo.value, DomainError)
    return str(excinfo.value)


# ----------------------------------------------------------------------- sign


def test_header_name_and_tolerance() -> None:
    assert HEADER == "Fjb-Signature"
    assert TOLERANCE_SECONDS == 300


def test_sign_is_hmac_sha256_over_timestamp_method_path_and_body() -> None:
    expected = hmac.new(SECRET, f"{NOW}.POST.{PATH}.".encode() + BODY, hashlib.sha256).hexdigest()
    assert sign(SECRET, NOW, BODY, path=PATH) == f"t={NOW},v2={expected}"


def test_sign_is_deterministic_and_depends_on_every_input() -> None:
    header = sign(SECRET, NOW, BODY, path=PATH)
    assert header == sign(SECRET, NOW, BODY, path=PATH)
    assert header != sign(SECRET + b"x", NOW, BODY, path=PATH)
    assert header != sign(SECRET, NOW + 1, BODY, path=PATH)
    assert header != sign(SECRET, NOW, BODY + b" ", path=PATH)
    assert header != sign(SECRET, NOW, BODY, path="/v1/reversals")
    assert header != sign(SECRET, NOW, BODY, path=PATH, method="PUT")
    assert header == sign(SECRET, NOW, BODY, path=PATH, method="post")  # methods are upper case


# ----------------------------------------------------------------------- verify: accepted


def test_round_trip() -> None:
    assert verify(SECRET, sign(SECRET, NOW, BODY, path=PATH), BODY, path=PATH, now=NOW) is None


def test_empty_body_round_trip() -> None:
    verify(SECRET, sign(SECRET, NOW, b"", path=PATH), b"", path=PATH, now=NOW)


@pytest.mark.parametrize("offset", [-TOLERANCE_SECONDS, -1, 0, 1, TOLERANCE_SECONDS, 0.5, -TOLERANCE_SECONDS + 0.25])
def test_timestamp_within_tolerance_is_accepted(offset: float) -> None:
    verify(SECRET, sign(SECRET, NOW, BODY, path=PATH), BODY, path=PATH, now=NOW + offset)


def test_custom_tolerance() -> None:
    header = sign(SECRET, NOW, BODY, path=PATH)
    verify(SECRET, header, BODY, path=PATH, now=NOW + 10, tolerance=10)
    bad(header, now=NOW + 11, tolerance=10)
    verify(SECRET, header, BODY, path=PATH, now=NOW, tolerance=0)
    bad(header, now=NOW + 1, tolerance=0)


def test_header_fields_in_any_order_and_with_unknown_fields() -> None:
    mac = sign(SECRET, NOW, BODY, path=PATH).split("v2=", 1)[1]
    verify(SECRET, f"v2={mac},t={NOW}", BODY, path=PATH, now=NOW)
    verify(SECRET, f"t={NOW},v0=legacy,v2={mac}", BODY, path=PATH, now=NOW)
    verify(SECRET, f"t={NOW},v2={mac},", BODY, path=PATH, now=NOW)


# ----------------------------------------------------------------------- verify: refused


def test_tampered_body_is_refused() -> None:
    header = sign(SECRET, NOW, BODY, path=PATH)
    assert "does not match" in bad(header, BODY.replace(b"12345", b"99999"))
    bad(header, BODY + b"\n")
    bad(header, b"")


@pytest.mark.parametrize("other", ["/v1/reversals", "/v1/authorizations", "/v1/captures/", "/v1/Captures", ""])
def test_a_request_signed_for_another_endpoint_is_refused(other: str) -> None:
    # a capture's body sent to the reversals endpoint (or any other path) does not verify
    assert "does not match" in bad(sign(SECRET, NOW, BODY, path=PATH), path=other)


def test_a_request_signed_for_another_method_is_refused() -> None:
    assert "does not match" in bad(sign(SECRET, NOW, BODY, path=PATH, method="PUT"))
    verify(SECRET, sign(SECRET, NOW, BODY, path=PATH, method="PUT"), BODY, path=PATH, method="PUT", now=NOW)


def test_the_old_scheme_is_refused_with_its_reason() -> None:
    """v1 signed the timestamp and body only: a valid v1 MAC is refused, and says why."""
    v1 = hmac.new(SECRET, f"{NOW}.".encode() + BODY, hashlib.sha256).hexdigest()
    assert "v1 signatures" in bad(f"t={NOW},v1={v1}")
    # next to a valid v2 the v1 field is one of the unknown fields, ignored
    v2 = sign(SECRET, NOW, BODY, path=PATH).split("v2=", 1)[1]
    verify(SECRET, f"t={NOW},v1={v1},v2={v2}", BODY, path=PATH, now=NOW)


def test_wrong_secret_is_refused() -> None:
    assert "does not match" in bad(sign(b"another-secret", NOW, BODY, path=PATH))


def test_changed_timestamp_is_refused() -> None:
    mac = sign(SECRET, NOW, BODY, path=PATH).split("v2=", 1)[1]
    bad(f"t={NOW + 1},v2={mac}")


@pytest.mark.parametrize("header", [None, ""])
def test_missing_header_is_refused(header: str | None) -> None:
    assert "not signed" in bad(header)


@pytest.mark.parametrize(
    "header",
    [
        "garbage",
        "t=,v2=",
        f"t={NOW}",
        f"t={NOW},v2=",
        "v2=abcdef",
        "t=abc,v2=abcdef",
        "t=-1795000000,v2=abcdef",
        f"t={NOW}.5,v2=abcdef",
        f"t= {NOW},v2=abcdef",
        f"T={NOW},V1=abcdef",
        f"t={NOW};v2=abcdef",
        f"t={NOW}, v2=abcdef",  # the space makes the key " v1"
    ],
)
def test_malformed_header_is_refused(header: str) -> None:
    assert "malformed" in bad(header)


def test_malformed_mac_is_refused() -> None:
    bad(f"t={NOW},v2=not-hex")
    bad(f"t={NOW},v2={'0' * 64}")
    good = sign(SECRET, NOW, BODY, path=PATH).split("v2=", 1)[1]
    bad(f"t={NOW},v2={good[:-1]}")  # truncated
    bad(f"t={NOW},v2={good.upper()}")  # the hex digest is lower case


@pytest.mark.parametrize("offset", [TOLERANCE_SECONDS + 1, -(TOLERANCE_SECONDS + 1), 3600, -3600, 10**9])
def test_timestamp_outside_tolerance_is_refused(offset: int) -> None:
    # signed correctly, but too old (offset > 0: now is later) or from the future (offset < 0)
    header = sign(SECRET, NOW, BODY, path=PATH)
    assert "tolerance" in bad(header, now=NOW + offset)


def test_replay_after_the_window_is_refused() -> None:
    header = sign(SECRET, NOW, BODY, path=PATH)
    verify(SECRET, header, BODY, path=PATH, now=NOW + TOLERANCE_SECONDS)
    bad(header, now=NOW + TOLERANCE_SECONDS + 0.001)


def test_future_timestamp_is_refused() -> None:
    header = sign(SECRET, NOW + TOLERANCE_SECONDS + 1, BODY, path=PATH)
    assert "tolerance" in bad(header, now=NOW)


@pytest.mark.parametrize("secret", [b"", None])
def test_empty_secret_is_refused_even_with_a_matching_signature(secret: bytes | None) -> None:
    header = sign(b"", NOW, BODY, path=PATH)  # what an unconfigured processor would send
    assert "secret" in bad(header, secret=secret)  # type: ignore[arg-type]


@pytest.mark.parametrize("mac", ["é", "ø" * 64, "\u0661" * 64], ids=["e-acute", "o-slash", "arabic-indic"])
def test_non_ascii_mac_is_refused_with_bad_signature(mac: str) -> None:
    bad(f"t={NOW},v2={mac}")


def test_huge_timestamp_is_refused_with_bad_signature() -> None:
    bad(f"t={'9' * 5000},v2=abcdef")


# ----------------------------------------------------------------------- properties


@given(secret=st.binary(min_size=1, max_size=64), body=st.binary(max_size=2048), t=st.integers(0, 2**40))
def test_round_trip_property(secret: bytes, body: bytes, t: int) -> None:
    header = sign(secret, t, body, path=PATH)
    assert header.startswith(f"t={t},v2=")
    verify(secret, header, body, path=PATH, now=t)


@given(secret=st.binary(min_size=1, max_size=64), body=st.binary(max_size=512), other=st.binary(max_size=512))
def test_any_other_body_is_refused(secret: bytes, body: bytes, other: bytes) -> None:
    assume(other != body)
    with pytest.raises(BadSignature):
        verify(secret, sign(secret, NOW, body, path=PATH), other, path=PATH, now=NOW)


@given(secret=st.binary(min_size=1, max_size=64), other=st.binary(min_size=1, max_size=64), body=st.binary())
def test_any_other_secret_is_refused(secret: bytes, other: bytes, body: bytes) -> None:
    assume(other != secret)
    # HMAC pads short keys with zeros, so keys differing only by trailing zero bytes are the same key
    assume(other.rstrip(b"\0") != secret.rstrip(b"\0"))
    with pytest.raises(BadSignature):
        verify(other, sign(secret, NOW, body, path=PATH), body, path=PATH, now=NOW)


@given(body=st.binary(max_size=256), skew=st.integers(-(10**6), 10**6))
def test_tolerance_property(body: bytes, skew: int) -> None:
    header = sign(SECRET, NOW, body, path=PATH)
    if abs(skew) <= TOLERANCE_SECONDS:
        verify(SECRET, header, body, path=PATH, now=NOW + skew)
    else:
        with pytest.raises(BadSignature):
            verify(SECRET, header, body, path=PATH, now=NOW + skew)


@given(header=st.text(max_size=200))
def test_arbitrary_ascii_headers_never_crash(header: str) -> None:
    ascii_header = header.encode("ascii", "ignore").decode()
    with pytest.raises(BadSignature):
        verify(SECRET, ascii_header, BODY, path=PATH, now=NOW)
