"""Which Firestore errors mean "try again later" (a `busy` refusal) rather than a bug."""

from __future__ import annotations

import pytest
from google.api_core import exceptions as api_errors

from fjordbank.adapters.firestore import is_transient
from fjordbank.service_layer import ports


def _gave_up() -> ValueError:
    """What the client's @transactional raises when every attempt lost to contention."""
    try:
        try:
            raise api_errors.Aborted("Transaction lock timeout")
        except api_errors.Aborted as exc:
            raise ValueError("Failed to commit transaction in 5 attempts.") from exc
    except ValueError as exc:
        return exc


@pytest.mark.parametrize(
    "exc",
    [
        _gave_up(),
        api_errors.Aborted("contention"),
        api_errors.DeadlineExceeded("slow"),
        api_errors.ServiceUnavailable("down"),
        api_errors.ResourceExhausted("quota"),
        api_errors.RetryError("gave up", cause=api_errors.ServiceUnavailable("down")),
        ports.Contention("sca_register_key"),  # the document ports' word for the first
    ],
)
def test_contention_and_timeouts_are_transient(exc):
    assert is_transient(exc)


@pytest.mark.parametrize(
    "exc",
    [ValueError("bad input"), KeyError("x"), api_errors.InvalidArgument("bug"), api_errors.NotFound("gone")],
)
def test_anything_else_is_not(exc):
    assert not is_transient(exc)
