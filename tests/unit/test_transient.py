"""Which Firestore errors mean "try again later" (a `busy` refusal) rather than a bug."""

from __future__ import annotations

import pytest
from firebase_admin import exceptions as firebase_errors
from google.api_core import exceptions as api_errors
from google.auth import exceptions as google_auth_errors

from fjordbank.adapters.firestore import is_transient
from fjordbank.service_layer import ports
from fjordbank.service_layer.ports import Contention


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
        Contention("cards_release"),  # a unit of work of the ports that lost every attempt
        api_errors.Aborted("contention"),
        api_errors.DeadlineExceeded("slow"),
        api_errors.ServiceUnavailable("down"),
        api_errors.ResourceExhausted("quota"),
        api_errors.RetryError("gave up", cause=api_errors.ServiceUnavailable("down")),
        ports.Contention("ledger_post_batch"),  # the same give-up, through the document ports
        # found in review (2026-12-06): answered INTERNAL before
        api_errors.InternalServerError("firestore failed inside"),
        api_errors.GatewayTimeout("gateway"),
        google_auth_errors.TransportError("token refresh did not reach Google"),
        firebase_errors.UnavailableError("auth unavailable"),  # revoking the customer's sessions
        firebase_errors.DeadlineExceededError("auth slow"),
        firebase_errors.InternalError("auth failed inside"),
    ],
)
def test_contention_and_timeouts_are_transient(exc):
    assert is_transient(exc)


@pytest.mark.parametrize(
    "exc",
    [
        ValueError("bad input"),
        KeyError("x"),
        api_errors.InvalidArgument("bug"),
        api_errors.NotFound("gone"),
        ports.AlreadyExists("screeningDecisions/p1"),
    ],
)
def test_anything_else_is_not(exc):
    assert not is_transient(exc)
