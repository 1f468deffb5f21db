"""The streams of fjordbank/topology.py fit the JetStream file store of k8s/nats/values.yaml,
with headroom: otherwise creating a stream fails with "insufficient storage resources" or,
worse, a full store stops every stream on that server (nats-io/k8s#740, nats-server#4260).

The budgets are enforced: the admin Job (fjordbank/adapters/jetstream_setup.py) gives every
stream its budget as max_bytes, and a stream at its budget refuses new messages instead of
dropping the oldest (DiscardPolicy.NEW). And the store is the one docs/capacity.md sizes."""

from __future__ import annotations

import copy
import dataclasses
import re
from types import SimpleNamespace

import pytest
from nats.js.api import DiscardPolicy

from fjordbank import topology
from fjordbank.adapters import jetstream, jetstream_setup
from k8s import chart
from tests.deploy import k8s_support as ks
from tests.deploy.conftest import REPO

CAPACITY = REPO / "docs" / "capacity.md"
GIB = 1024**3


@pytest.mark.parametrize("env", ks.ENVS)
def test_stream_reservations_fit_the_file_store(env):
    budgets, store_headroom, volume_headroom = ks.stream_budgets()
    assert ks.capacity_problems(ks.values(env), budgets, store_headroom, volume_headroom) == []


def test_the_sum_of_the_budgets_leaves_headroom_in_the_store_and_the_volume():
    """Stated as arithmetic, for the reader: 184 GiB of budgets, 230 GiB of store, 256 GiB of volume."""
    store = ks.values("prod")["config"]["jetstream"]["fileStore"]
    max_file, volume = chart.size_bytes(store["maxSize"]), chart.size_bytes(store["pvc"]["size"])
    total = sum(jetstream_setup.STREAM_BUDGETS.values())
    assert total <= ks.STORE_HEADROOM * max_file < max_file <= ks.VOLUME_HEADROOM * volume


def test_every_stream_is_created_with_its_budget_enforced():
    """What the admin Job sends: max_bytes = the budget the capacity check counted, and a
    full stream refuses new messages (a publisher retries) rather than dropping messages a
    late consumer has not read."""
    budgets, _, _ = ks.stream_budgets()
    configs = jetstream_setup.desired().streams
    assert sorted(configs) == sorted(s.name for s in topology.STREAMS)
    for name, cfg in configs.items():
        assert cfg.max_bytes == budgets[name] > 0, name
        assert cfg.discard == DiscardPolicy.NEW, name


def test_the_local_stack_sets_no_budget():
    """devstack's ensure_topology passes none: its 8 GB store (devstack/natsconf.py) is smaller
    than production's budgets, and a reservation it cannot hold would refuse the stream."""
    cfg = jetstream.stream_config(topology.STREAMS[0])
    assert cfg.max_bytes is None and cfg.discard == DiscardPolicy.NEW


def test_the_volume_is_the_one_capacity_md_sizes():
    found = re.search(r"size each node's volume at \*\*(\d+) GiB\*\*", CAPACITY.read_text())
    assert found, "docs/capacity.md no longer states the NATS volume ('size each node's volume at **N GiB**')"
    for env in ks.ENVS:
        size = ks.values(env)["config"]["jetstream"]["fileStore"]["pvc"]["size"]
        assert chart.size_bytes(size) == int(found.group(1)) * GIB, env


def test_the_payment_budget_holds_30_days_at_the_design_point():
    """docs/capacity.md: 13 M payments a month x ~7 messages of ~1 KB, and two paydays of
    3.4 M payments each can fall within the stream's 30 days."""
    payments = topology.STREAMS[[s.name for s in topology.STREAMS].index(topology.STREAM_PAYMENTS)]
    assert payments.max_age_seconds == 30 * 24 * 3600
    month = 13_000_000 + 3_400_000  # a second payday in the window
    assert jetstream_setup.STREAM_BUDGETS[topology.STREAM_PAYMENTS] >= month * 7 * 1000


def test_a_store_too_small_is_reported():
    vals = copy.deepcopy(ks.values("prod"))
    vals["config"]["jetstream"]["fileStore"].update(maxSize="20Gi")
    budgets, store_headroom, volume_headroom = ks.stream_budgets()
    problems = ks.capacity_problems(vals, budgets, store_headroom, volume_headroom)
    assert any("more than 80% of max_file_store" in p for p in problems), problems


def test_the_old_store_is_reported():
    """100Gi of volume and 90Gi of store, the values before they followed capacity.md."""
    vals = copy.deepcopy(ks.values("prod"))
    vals["config"]["jetstream"]["fileStore"].update(maxSize="90Gi")
    vals["config"]["jetstream"]["fileStore"]["pvc"].update(size="100Gi")
    problems = ks.capacity_problems(vals, *ks.stream_budgets())
    assert any("more than 80% of max_file_store" in p for p in problems), problems


def test_a_store_as_large_as_its_volume_is_reported():
    vals = copy.deepcopy(ks.values("prod"))
    vals["config"]["jetstream"]["fileStore"].update(maxSize=vals["config"]["jetstream"]["fileStore"]["pvc"]["size"])
    problems = ks.capacity_problems(vals, *ks.stream_budgets())
    assert any("of the volume" in p for p in problems), problems


def test_a_stream_bigger_than_the_store_is_reported():
    budgets, store_headroom, volume_headroom = ks.stream_budgets()
    budgets = {**budgets, topology.STREAM_PAYMENTS: 200 * GIB}
    problems = ks.capacity_problems(ks.values("prod"), budgets, store_headroom, volume_headroom)
    assert any("stream reservations" in p for p in problems), problems


def test_a_stream_without_a_budget_is_reported(monkeypatch):
    new = topology.StreamSpec(name="LOANS", subjects=("loans.>",))
    monkeypatch.setattr(topology, "STREAMS", (*topology.STREAMS, new))
    problems = ks.capacity_problems(ks.values("prod"), *ks.stream_budgets())
    assert any("without a size budget" in p and "LOANS" in p for p in problems), problems
    with pytest.raises(ValueError, match="LOANS"):
        jetstream_setup.desired()


def test_sizes_come_from_the_topology_once_it_declares_them(monkeypatch):
    """When StreamSpec grows max_bytes, the check reads it (and STREAM_BUDGETS must go)."""
    sized = tuple(SimpleNamespace(**dataclasses.asdict(s), max_bytes=GIB) for s in topology.STREAMS)
    monkeypatch.setattr(topology, "STREAMS", sized)
    budgets, _, _ = ks.stream_budgets()
    assert budgets == {s.name: GIB for s in topology.STREAMS}
