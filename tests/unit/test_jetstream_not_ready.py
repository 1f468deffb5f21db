"""ensure_topology waits out a cluster that is still forming, and only that."""

from __future__ import annotations

import nats.errors
import pytest
from nats.js.errors import BadRequestError, ServiceUnavailableError

from fjordbank.adapters import jetstream


def _bad_request(err_code: int) -> BadRequestError:
    return BadRequestError(code=400, err_code=err_code, description="no suitable peers for placement, peer offline")


@pytest.mark.parametrize(
    ("exc", "waited_out"),
    [
        (_bad_request(10005), True),  # peers not yet known to the meta leader
        (ServiceUnavailableError(code=503), True),
        (nats.errors.TimeoutError(), True),
        (nats.errors.NoRespondersError(), True),
        (_bad_request(10058), False),  # a real refusal (here: stream name in use) is raised at once
    ],
)
def test_what_a_forming_cluster_answers_is_waited_out(exc: Exception, waited_out: bool) -> None:
    assert jetstream._not_ready(exc) is waited_out


async def test_ensure_topology_retries_until_the_peers_are_placed(monkeypatch: pytest.MonkeyPatch) -> None:
    answers: list[Exception | None] = [_bad_request(10005), _bad_request(10005), None]

    async def once(_js, _replicas):
        answer = answers.pop(0)
        if answer is not None:
            raise answer

    async def no_pause(_s: float) -> None:
        return None

    monkeypatch.setattr(jetstream, "_ensure_once", once)
    monkeypatch.setattr(jetstream.asyncio, "sleep", no_pause)
    await jetstream.ensure_topology(object(), timeout=30)  # type: ignore[arg-type]
    assert answers == []


async def test_ensure_topology_raises_a_real_refusal_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = 0

    async def once(_js, _replicas):
        nonlocal calls
        calls += 1
        raise _bad_request(10058)

    monkeypatch.setattr(jetstream, "_ensure_once", once)
    with pytest.raises(BadRequestError):
        await jetstream.ensure_topology(object(), timeout=30)  # type: ignore[arg-type]
    assert calls == 1
