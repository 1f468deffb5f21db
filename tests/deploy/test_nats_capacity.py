"""The streams of fjordbank/topology.py fit the JetStream file store of k8s/nats/values.yaml,
with headroom: otherwise creating a stream fails with "insufficient storage resources" or,
worse, a full store stops every stream on that server (nats-io/k8s#740, nats-server#4260)."""

from __future__ import annotations

import copy
import dataclasses
from types import SimpleNamespace

import pytest

from fjordbank import topology
from tests.deploy import k8s_support as ks


@pytest.mark.parametrize("env", ks.ENVS)
def test_stream_reservations_fit_the_file_store(env):
    budgets, store_headroom, volume_headroom = ks.stream_budgets()
    assert ks.capacity_problems(ks.values(env), budgets, store_headroom, volume_headroom) == []


def test_a_store_too_small_is_reported():
    vals = copy.deepcopy(ks.values("prod"))
    vals["config"]["jetstream"]["fileStore"].update(maxSize="20Gi")
    budgets, store_headroom, volume_headroom = ks.stream_budgets()
    problems = ks.capacity_problems(vals, budgets, store_headroom, volume_headroom)
    assert any("more than 80% of max_file_store" in p for p in problems), problems


def test_a_store_as_large_as_its_volume_is_reported():
    vals = copy.deepcopy(ks.values("prod"))
    vals["config"]["jetstream"]["fileStore"].update(maxSize=vals["config"]["jetstream"]["fileStore"]["pvc"]["size"])
    problems = ks.capacity_problems(vals, *ks.stream_budgets())
    assert any("of the volume" in p for p in problems), problems


def test_a_stream_bigger_than_the_store_is_reported():
    budgets, store_headroom, volume_headroom = ks.stream_budgets()
    budgets = {**budgets, topology.STREAM_PAYMENTS: 200 * 1024**3}
    problems = ks.capacity_problems(ks.values("prod"), budgets, store_headroom, volume_headroom)
    assert any("stream reservations" in p for p in problems), problems


def test_a_stream_without_a_budget_is_reported(monkeypatch):
    new = topology.StreamSpec(name="LOANS", subjects=("loans.>",))
    monkeypatch.setattr(topology, "STREAMS", (*topology.STREAMS, new))
    problems = ks.capacity_problems(ks.values("prod"), *ks.stream_budgets())
    assert any("without a size budget" in p and "LOANS" in p for p in problems), problems


def test_sizes_come_from_the_topology_once_it_declares_them(monkeypatch):
    """When StreamSpec grows max_bytes, the check reads it (and streams.yaml must go)."""
    sized = tuple(SimpleNamespace(**dataclasses.asdict(s), max_bytes=1024**3) for s in topology.STREAMS)
    monkeypatch.setattr(topology, "STREAMS", sized)
    budgets, _, _ = ks.stream_budgets()
    assert budgets == {s.name: 1024**3 for s in topology.STREAMS}


def test_streams_yaml_is_the_only_source_of_sizes():
    if all(getattr(s, "max_bytes", None) for s in topology.STREAMS):
        assert not ks.STREAMS.exists(), "topology.StreamSpec declares max_bytes now: delete k8s/nats/streams.yaml"
    else:
        assert ks.STREAMS.exists()
