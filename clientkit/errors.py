"""The kit's errors: each is one line that names the part of the stack and what went wrong.

Every call the kit makes to the stack runs inside `talking_to(component, address)`, which
turns the transport's own exceptions (requests' timeouts and connection errors,
google.api_core's ServiceUnavailable, DeadlineExceeded and RetryError, the NATS client's
errors, OSError) into `StackUnreachable`, a `KitError` that names the part of the stack, its
address and what went wrong (`transport_error` is the one translator). The bank's refusal
of an operation is `Refused`, with the bank's reason code. A bug is none of these and keeps
its traceback. bankctl reports a `KitError` as its one-line error (`bankctl.errors`); the
web server answers it with 502.
"""

from __future__ import annotations

import errno
import re
import socket
import ssl
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.error import HTTPError, URLError
from urllib.parse import urlsplit

UP_HINT = "is the stack up? run `make up`"

# the parts of the stack, as the errors name them
FUNCTIONS = "the functions emulator"
AUTH = "the auth emulator"
FIRESTORE = "the firestore emulator"
PUBSUB = "the pubsub emulator"
NATS = "NATS"
CARDS = "the card processor"
STACK = "a part of the stack"


class KitError(Exception):
    """A failure to report as one line; ``steps`` say what was being done (outermost first)."""

    steps: tuple[str, ...] = ()

    def within(self, step: str) -> KitError:
        if step not in self.steps:
            self.steps = (step, *self.steps)
        return self

    def __str__(self) -> str:
        return ": ".join((*self.steps, super().__str__()))


class StackUnreachable(KitError):
    """A part of the stack does not answer (not listening, too slow, or failing)."""

    def __init__(self, what: str, where: str | None, problem: str | None = None) -> None:
        self.what, self.where, self.problem = what, where, problem
        at = f" ({where})" if where else ""
        if problem is None:
            text = f"cannot reach {what} at {where} ({UP_HINT})" if where else f"cannot reach {what} ({UP_HINT})"
        else:
            text = f"{what}{at} {problem}"
        super().__init__(text)


class Refused(KitError):
    """The bank refused an operation, with its reason code."""

    def __init__(self, what: str, reason: str | None, message: str) -> None:
        self.reason = reason
        super().__init__(f"{what} refused: {reason or 'error'}: {message}" if message else f"{what} refused: {reason}")


def require_reachable(what: str, hostport: str, timeout: float = 2.0) -> None:
    """Fail fast with one line instead of a client's minute of retries against a closed port."""
    host, _, port = hostport.rpartition(":")
    host = host.strip("[]") or "127.0.0.1"
    try:
        with socket.create_connection((host, int(port)), timeout=timeout):
            return
    except (OSError, ValueError):
        raise StackUnreachable(what, hostport) from None


# ---- where the parts of the stack are (set once by the tool from its configuration) ------------
_ADDRESSES: dict[str, str] = {}  # component -> address


def know_stack(addresses: dict[str, str]) -> None:
    """The addresses of the parts of the stack, so that an error without a component (a
    transport error that reached a step or main) can still say which part it was."""
    _ADDRESSES.clear()
    _ADDRESSES.update(addresses)


def _component_at(netloc: str) -> str:
    for what, where in _ADDRESSES.items():
        if netloc and (where == netloc or where.endswith(f"//{netloc}") or netloc in where.split(",")):
            return what
    return STACK


# ---- the one translator ------------------------------------------------------------------------
_NETWORK_ERRNOS = {
    errno.ECONNREFUSED,
    errno.ECONNRESET,
    errno.ECONNABORTED,
    errno.EHOSTUNREACH,
    errno.ENETUNREACH,
    errno.ETIMEDOUT,
    errno.EPIPE,
    errno.EADDRNOTAVAIL,
}


def _kind_of_requests(exc: BaseException) -> str | None:
    try:
        import requests
    except ImportError:  # pragma: no cover - a dependency of the kit
        return None
    if isinstance(exc, requests.ConnectionError):  # includes ConnectTimeout: nothing listens
        return "unreachable"
    if isinstance(exc, requests.Timeout):
        return "timeout"
    if isinstance(exc, requests.RequestException):
        return "failed"
    return None


def _kind_of_google(exc: BaseException) -> str | None:
    from google.api_core import exceptions as gexc

    if isinstance(exc, gexc.RetryError):
        cause = exc.cause
        return _kind_of_google(cause) if cause is not None and cause is not exc else "timeout"
    if isinstance(exc, gexc.DeadlineExceeded):
        return "timeout"
    if isinstance(exc, gexc.ServiceUnavailable):
        return "unreachable"
    if isinstance(exc, gexc.Aborted | gexc.ResourceExhausted):  # contention, e.g. a transaction's lock
        return "busy"
    if isinstance(exc, gexc.InternalServerError | gexc.Unknown):
        return "failed"
    return None


_GRPC_KINDS = {
    "UNAVAILABLE": "unreachable",
    "DEADLINE_EXCEEDED": "timeout",
    "ABORTED": "busy",
    "RESOURCE_EXHAUSTED": "busy",
    "INTERNAL": "failed",
    "UNKNOWN": "failed",
}


def _kind_of_grpc(exc: BaseException) -> str | None:
    """A gRPC error the Google client did not wrap (some of its async paths)."""
    code = getattr(exc, "code", None)
    if type(exc).__module__.startswith("grpc") and callable(code):
        try:
            return _GRPC_KINDS.get(code().name)
        except Exception:  # noqa: BLE001 - not a call's error after all
            return None
    return None


def _kind_of_nats(exc: BaseException) -> str | None:
    try:
        import nats.errors
    except ImportError:  # pragma: no cover - a dependency of the kit
        return None
    if isinstance(exc, nats.errors.TimeoutError):  # FlushTimeoutError too
        return "timeout"
    if isinstance(exc, nats.errors.Error):
        return "unreachable" if not type(exc).__module__.startswith("nats.js") else "failed"
    return None


def _kind_of_os(exc: BaseException) -> str | None:
    if isinstance(exc, TimeoutError | socket.timeout):
        return "timeout"
    if isinstance(exc, HTTPError):
        return "failed"
    if isinstance(exc, URLError):
        return _kind_of_os(exc.reason) if isinstance(exc.reason, BaseException) else "unreachable"
    if isinstance(exc, ConnectionError | socket.gaierror | ssl.SSLError):
        return "unreachable"
    if isinstance(exc, OSError) and exc.errno in _NETWORK_ERRNOS:
        return "unreachable"
    return None


def _kind(exc: BaseException) -> str | None:
    """The kind of a transport error ("timeout", "unreachable", "busy" or "failed"); None for
    anything else."""
    for kind_of in (_kind_of_requests, _kind_of_google, _kind_of_grpc, _kind_of_nats, _kind_of_os):
        kind = kind_of(exc)
        if kind is not None:
            return kind
    return None


def database_error(exc: BaseException) -> BaseException:
    """The database's own error behind a document port's (fjordbank.service_layer.ports:
    the ledger's admin path raises AlreadyExists, Contention... with Firestore's as cause)."""
    from fjordbank.service_layer.ports import PortError

    if isinstance(exc, PortError) and isinstance(exc.__cause__, Exception):
        return exc.__cause__
    return exc


def _underlying(exc: BaseException) -> BaseException:
    """Firestore's @transactional gives up with a ValueError ("Failed to commit transaction
    in N attempts") caused by the last ABORTED: that is the error to report."""
    exc = database_error(exc)
    cause = exc.__cause__
    if isinstance(exc, ValueError) and cause is not None and _kind_of_google(cause) is not None:
        return cause
    return exc


def _guess(exc: BaseException) -> tuple[str, str | None]:
    """The part of the stack a transport error came from, when the caller did not say."""
    request = getattr(exc, "request", None)
    url = getattr(request, "url", None)
    if isinstance(url, str):
        netloc = urlsplit(url).netloc
        return _component_at(netloc), netloc
    if type(exc).__module__.startswith(("google.", "grpc")):
        return FIRESTORE, _ADDRESSES.get(FIRESTORE)
    if type(exc).__module__.startswith("nats"):
        return NATS, _ADDRESSES.get(NATS)
    return STACK, None


def _seconds(value: float) -> str:
    return f"{value:g} s"


def _timeout_of(exc: BaseException) -> float | None:
    found = re.search(r"timeout=([0-9.]+)", str(exc))
    return float(found.group(1)) if found else None


def _detail(exc: BaseException) -> str:
    details = getattr(exc, "details", None)
    text = getattr(exc, "message", None) or (details() if callable(details) else None) or str(exc)
    text = (text or type(exc).__name__).strip()
    return (text.splitlines() or [type(exc).__name__])[0][:200]


def transport_error(
    exc: BaseException, what: str | None = None, where: str | None = None, timeout: float | None = None
) -> KitError | None:
    """The one-line error for ``exc`` if it is a transport failure (or a KitError already);
    None for anything else (a bug keeps its traceback)."""
    if isinstance(exc, KitError):
        return exc
    exc = _underlying(exc)
    kind = _kind(exc)
    if kind is None:
        return None
    if what is None:
        what, where = _guess(exc)
    if kind == "unreachable":
        return StackUnreachable(what, where)
    if kind == "timeout":
        seconds = timeout if timeout is not None else _timeout_of(exc)
        within = f"within {_seconds(seconds)}" if seconds is not None else "in time"
        return StackUnreachable(what, where, f"did not answer {within}")
    if kind == "busy":
        return StackUnreachable(what, where, f"was too busy, try again: {_detail(exc)}")
    return StackUnreachable(what, where, f"failed: {_detail(exc)}")


@contextmanager
def talking_to(what: str, where: str | None, *, timeout: float | None = None) -> Iterator[None]:
    """Around every network call: its transport errors become `StackUnreachable` naming
    ``what`` at ``where``."""
    try:
        yield
    except KitError:
        raise
    except Exception as exc:
        error = transport_error(exc, what, where, timeout)
        if error is None:
            raise
        raise error from None
