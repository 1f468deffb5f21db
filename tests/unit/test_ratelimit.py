"""The sliding-window rate limit (no I/O): what it allows, and when it says to come back."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fjordbank.domain.ratelimit import LIMITS, Limit, decide, window

LIMIT = Limit(capacity=10, period_seconds=60)


def test_window_index_and_elapsed_fraction():
    at = window(LIMIT, 60 * 1000 + 15)
    assert at.index == 1000 and at.elapsed == pytest.approx(0.25)


def test_a_fresh_user_gets_exactly_capacity_in_one_window():
    allowed = [decide(LIMIT, 0, n, 0.5).allowed for n in range(1, 13)]
    assert allowed == [True] * 10 + [False] * 2


def test_the_previous_window_counts_less_as_this_one_goes_by():
    # 10 in the previous window: at the start of this one nothing more fits, halfway 5 do
    assert not decide(LIMIT, 10, 1, 0.0).allowed
    assert decide(LIMIT, 10, 5, 0.5).allowed and not decide(LIMIT, 10, 6, 0.5).allowed


def test_a_refused_request_says_when_one_fits_again():
    decision = decide(LIMIT, 10, 1, 0.0)
    # the refused request counts too: the next one is the second of this window, which fits
    # once a fifth of the previous window no longer counts (12 s)
    assert not decision.allowed and decision.retry_after == 12
    full = decide(LIMIT, 0, 11, 0.5)  # this window is full: wait for the next one
    assert not full.allowed and 30 < full.retry_after <= 60


@given(
    capacity=st.integers(1, 100),
    period=st.integers(1, 3600),
    previous=st.integers(0, 300),
    current=st.integers(1, 300),
    elapsed=st.floats(0, 0.999),
)
def test_retry_after_is_exactly_when_the_next_request_fits(capacity, period, previous, current, elapsed):
    """Waiting ``retry_after`` seconds (with no other request) gets the next one in, and a
    second less would not have (to within the rounding to whole seconds)."""
    limit = Limit(capacity, period)
    decision = decide(limit, previous, current, elapsed)
    if decision.allowed:
        return
    assert decision.retry_after >= 1

    def fits_after(seconds: float) -> bool:
        later = elapsed + seconds / period
        if later < 1:
            return decide(limit, previous, current + 1, later).allowed
        # the next window: this window's count is the previous one
        return decide(limit, current, 1, later - 1).allowed if later < 2 else True

    assert fits_after(decision.retry_after + 1e-6)
    if decision.retry_after > 1:
        assert not fits_after(decision.retry_after - 1.001)


@given(st.lists(st.floats(0, 600), min_size=1, max_size=200))
def test_never_more_than_capacity_in_a_window_and_twice_it_over_any_period(times):
    """Requests at any times (each counted, refused or not): the allowed ones are at most
    ``capacity`` per window and at most twice that in any ``period`` seconds."""
    counts: dict[int, int] = {}
    allowed_at = []
    for t in sorted(times):
        at = window(LIMIT, t)
        counts[at.index] = counts.get(at.index, 0) + 1
        if decide(LIMIT, counts.get(at.index - 1, 0), counts[at.index], at.elapsed).allowed:
            allowed_at.append(t)
    per_window: dict[int, int] = {}
    for t in allowed_at:
        per_window[window(LIMIT, t).index] = per_window.get(window(LIMIT, t).index, 0) + 1
    assert max(per_window.values(), default=0) <= LIMIT.capacity
    for t in allowed_at:
        assert sum(1 for u in allowed_at if t <= u < t + LIMIT.period_seconds) <= 2 * LIMIT.capacity


def test_the_bank_limits_are_whole_requests_per_whole_seconds():
    for limit in LIMITS.values():
        assert isinstance(limit.capacity, int) and isinstance(limit.period_seconds, int)
