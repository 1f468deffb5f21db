"""bankctl's errors: each is reported as one line (`bankctl: error: ...`) and exit code 1."""

from __future__ import annotations

import socket

UP_HINT = "is the stack up? run `make up`"


class CommandError(Exception):
    """A failure to report as one line."""


class StackUnreachable(CommandError):
    """A part of the stack does not answer."""

    def __init__(self, what: str, where: str) -> None:
        super().__init__(f"cannot reach {what} at {where} ({UP_HINT})")


class Refused(CommandError):
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
