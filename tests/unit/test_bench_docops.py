"""bench/docops.py's count of the pushes a kind's payments made, against a fake FCM sink
and a fake clock: the push function runs behind the notifier, so its first push may come
seconds after the kind's last payment."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from bench import docops


class Sink:
    """The FCM sink's answers over time: ``arrivals`` (second -> pushes taken by then)."""

    def __init__(self, arrivals: dict[float, int]) -> None:
        self.arrivals = arrivals
        self.now = 0.0

    def get(self, url: str, params: dict, timeout: float) -> SimpleNamespace:
        count = max((n for t, n in self.arrivals.items() if t <= self.now), default=0)
        return SimpleNamespace(json=lambda: [{"seq": params["since"] + i + 1} for i in range(count)])

    def sleep(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def sink(monkeypatch: pytest.MonkeyPatch) -> Sink:
    fake = Sink({})
    monkeypatch.setattr(docops.requests, "get", fake.get)
    monkeypatch.setattr(docops.time, "sleep", fake.sleep)
    monkeypatch.setattr(docops.time, "monotonic", lambda: fake.now)
    return fake


STACK = SimpleNamespace(fcm_sink_url="http://sink")


def test_pushes_that_start_late_are_all_counted(sink: Sink) -> None:
    sink.arrivals = {8.0: 150, 9.0: 400}  # nothing for 8 s, then the backlog
    assert docops.pushes_delivered(STACK, 0) == 400


def test_a_kind_without_pushes_counts_none_after_the_quiet_time(sink: Sink) -> None:
    assert docops.pushes_delivered(STACK, 0) == 0
    assert 30.0 <= sink.now < 40.0
