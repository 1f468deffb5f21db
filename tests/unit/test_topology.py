"""Unit tests for fjordbank.topology and devstack.natsconf.render (pure string output).

Permissions are checked with a small NATS subject matcher (``*`` = one token, ``>`` = one
or more trailing tokens), so "can X publish to Y" is asked the way the server would.
"""

from __future__ import annotations

import json
import re

import pytest

from devstack import natsconf
from devstack import settings as stack_settings
from fjordbank import topology
from fjordbank.topology import (
    CONSUMERS,
    IDENTITIES,
    SERVICES,
    STREAMS,
    SUBJECT_PAYMENT_REQUESTED,
    consumer,
    dlq_subject,
    identity,
)

NON_ADMIN = [ident for ident in IDENTITIES if not ident.admin]
SERVICE_IDENTITIES = [ident for ident in NON_ADMIN if ident.consumes]

# What each component is meant to produce (independent of the Identity declarations).
# The lifecycle, written out independently of the topology module: who may publish what.
OUTPUTS = {
    "edge": {
        "payments.requested",
        "payments.failed",
        "customers.approved",
        "customers.review",
        "customers.rejected",
        "customers.account_opened",
        "customers.account_closed",
        "customers.device_changed",
        "cards.commands.issue",
        "cards.commands.expire-holds",
        "cards.updated",
    },
    "screening": {"payments.approved", "payments.rejected"},
    "ledger": {
        "payments.reserved",
        "payments.completed",
        "payments.failed",
        "payments.credit",
        "payments.refund",
        "payments.credited",
        "payments.unapplied",
    },
    "clearing": {"payments.submitted", "payments.settled", "payments.returned", "payments.arrived", "payments.held"},
    "notifier": set(),
    "insights": set(),
    "cards": {
        "cards.issued",
        "cards.authorized",
        "cards.declined",
        "cards.captured",
        "cards.reversed",
        "cards.expired",
        "cards.refunded",
        "cards.incremented",
    },
}
STREAM_OF_PREFIX = {"payments": "PAYMENTS", "customers": "CUSTOMERS", "cards": "CARDS"}
OWNERS_KV = f"KV_{topology.OWNERS_BUCKET}"
IN_HAND_KV = f"KV_{topology.IN_HAND_BUCKET}"


def on_the_wire(subject: str, partition: int = 3) -> str:
    """A lifecycle subject as published: payment subjects end in the payer's partition."""
    return f"{subject}.{partition}" if subject.startswith("payments.") else subject


def permitted(subject: str) -> str:
    """The permission that lets a producer publish a lifecycle subject (every partition)."""
    return f"{subject}.*" if subject.startswith("payments.") else subject


def matches(pattern: str, subject: str) -> bool:
    """True if the NATS subject pattern ``pattern`` covers the literal ``subject``."""
    p, s = pattern.split("."), subject.split(".")
    for i, token in enumerate(p):
        if token == ">":
            return len(s) > i
        if i >= len(s) or (token != "*" and token != s[i]):
            return False
    return len(p) == len(s)


def can_publish(ident, subject: str) -> bool:
    return any(matches(p, subject) for p in ident.permissions()["publish"])


def can_subscribe(ident, subject: str) -> bool:
    return any(matches(p, subject) for p in ident.permissions()["subscribe"])


def test_subject_matcher_follows_nats_rules():
    assert matches("a.>", "a.b.c") and matches("a.*", "a.b") and matches("a.b", "a.b")
    assert not matches("a.>", "a") and not matches("a.*", "a.b.c") and not matches("a.b", "a.c")
    assert matches(">", "x") and not matches("a.b", "a")


# ------------------------------------------------------------------ declarations


def test_names_are_unique():
    assert len({s.name for s in STREAMS}) == len(STREAMS)
    assert len({c.durable for c in CONSUMERS}) == len(CONSUMERS)
    assert len({i.name for i in IDENTITIES}) == len(IDENTITIES)


def test_every_consumer_referenced_by_an_identity_exists():
    stream_names = {s.name for s in STREAMS}
    for ident in IDENTITIES:
        for durable in ident.consumes:
            spec = consumer(durable)
            assert spec.durable == durable
            assert spec.stream in stream_names


def test_every_consumer_is_used_by_exactly_one_identity():
    for spec in CONSUMERS:
        users = [i.name for i in IDENTITIES if spec.durable in i.consumes]
        assert len(users) == 1, (spec.durable, users)


def test_consumer_filters_and_dlq_subjects_fall_in_the_right_stream():
    streams = {s.name: s for s in STREAMS}
    for spec in CONSUMERS:
        for subject in spec.filter_subjects:
            assert any(matches(p, subject) for p in streams[spec.stream].subjects)
        assert spec.dead_letter_subject == dlq_subject(spec.durable) == f"dlq.{spec.durable}"
        owning = [s.name for s in STREAMS if any(matches(p, spec.dead_letter_subject) for p in s.subjects)]
        assert owning == [topology.STREAM_DLQ]


def test_every_event_subject_is_in_exactly_its_domain_stream():
    for subject in {s for outputs in OUTPUTS.values() for s in outputs}:
        owning = [s.name for s in STREAMS if any(matches(p, subject) for p in s.subjects)]
        assert owning == [STREAM_OF_PREFIX[subject.split(".")[0]]]


def test_money_streams_are_replicated_three_times():
    assert all(s.replicas == 3 for s in STREAMS)


def test_unknown_names_raise_key_error():
    with pytest.raises(KeyError):
        consumer("nope")
    with pytest.raises(KeyError):
        identity("nope")


def test_services_are_the_identities_that_consume():
    assert set(SERVICES) == {i.name for i in SERVICE_IDENTITIES}
    assert set(SERVICES) == {"screening", "ledger", "clearing", "notifier", "cards", "insights"}


def test_nak_delay_follows_backoff_and_repeats_the_last_value():
    spec = consumer("ledger")
    delays = [spec.nak_delay(n) for n in range(0, len(spec.backoff_seconds) + 3)]
    assert delays[0] == delays[1] == spec.backoff_seconds[0]
    assert delays[1 : len(spec.backoff_seconds) + 1] == list(spec.backoff_seconds)
    assert delays[-1] == spec.backoff_seconds[-1]


# ------------------------------------------------------------- least privilege


def test_identities_cover_exactly_the_expected_components():
    assert {i.name for i in NON_ADMIN} == set(OUTPUTS)
    assert [i.name for i in IDENTITIES if i.admin] == ["admin"]


@pytest.mark.parametrize("ident", SERVICE_IDENTITIES, ids=lambda i: i.name)
def test_service_publish_permissions_are_exactly_outputs_own_consumer_api_and_own_dlq(ident):
    expected = {permitted(s) for s in OUTPUTS[ident.name]} | {"$JS.API.INFO"}
    for name in ident.consumes:
        for spec in consumer(name).partitions():
            stream, durable = spec.stream, spec.durable
            expected |= {
                f"$JS.API.CONSUMER.INFO.{stream}.{durable}",
                f"$JS.API.CONSUMER.MSG.NEXT.{stream}.{durable}",
                f"$JS.ACK.{stream}.{durable}.>",
                f"dlq.{name}",
            }
        expected |= {  # its own in-hand marks (fjordbank/runtime/in_hand.py)
            f"$KV.{topology.IN_HAND_BUCKET}.{ident.name}.>",
            f"$JS.API.STREAM.INFO.{IN_HAND_KV}",
            f"$JS.API.DIRECT.GET.{IN_HAND_KV}.$KV.{topology.IN_HAND_BUCKET}.{ident.name}.>",
        }
        if consumer(name).partitioned:  # its own partition leases
            expected |= {
                f"$KV.{topology.OWNERS_BUCKET}.{ident.name}.>",
                f"$JS.API.STREAM.INFO.{OWNERS_KV}",
                f"$JS.API.DIRECT.GET.{OWNERS_KV}.$KV.{topology.OWNERS_BUCKET}.{ident.name}.>",
            }
    publish = ident.permissions()["publish"]
    assert len(publish) == len(set(publish))
    assert set(publish) == expected


def test_edge_can_publish_only_requests_commands_and_customer_card_changes():
    assert set(identity("edge").permissions()["publish"]) == {"$JS.API.INFO"} | {permitted(s) for s in OUTPUTS["edge"]}
    assert SUBJECT_PAYMENT_REQUESTED in OUTPUTS["edge"]


DANGEROUS = [
    "$JS.API.STREAM.CREATE.PAYMENTS",
    "$JS.API.STREAM.UPDATE.PAYMENTS",
    "$JS.API.STREAM.DELETE.PAYMENTS",
    "$JS.API.STREAM.PURGE.PAYMENTS",
    "$JS.API.STREAM.DELETE.DLQ",
    "$JS.API.STREAM.PURGE.DLQ",
    "$JS.API.STREAM.MSG.DELETE.PAYMENTS",
    "$JS.API.STREAM.MSG.GET.PAYMENTS",
    "$JS.API.STREAM.LIST",
    "$JS.API.STREAM.NAMES",
    "$JS.API.CONSUMER.CREATE.PAYMENTS",
    "$JS.API.CONSUMER.DURABLE.CREATE.PAYMENTS.ledger",
    "$JS.API.CONSUMER.DELETE.PAYMENTS.ledger",
    "$JS.API.CONSUMER.DELETE.PAYMENTS.notifier",
    "$JS.API.ACCOUNT.PURGE.BANK",
    "$SYS.REQ.SERVER.PING",
    f"$JS.API.STREAM.PURGE.{OWNERS_KV}",
    f"$JS.API.STREAM.DELETE.{OWNERS_KV}",
    f"$JS.API.STREAM.UPDATE.{OWNERS_KV}",
    f"$KV.{topology.OWNERS_BUCKET}.fraud.p1",
    f"$JS.API.STREAM.PURGE.{IN_HAND_KV}",
    f"$JS.API.STREAM.DELETE.{IN_HAND_KV}",
    f"$KV.{topology.IN_HAND_BUCKET}.fraud.ledger-p1.7",
]


@pytest.mark.parametrize("ident", NON_ADMIN, ids=lambda i: i.name)
@pytest.mark.parametrize("subject", DANGEROUS)
def test_no_non_admin_identity_can_manage_streams_or_consumers(ident, subject):
    assert not can_publish(ident, subject)


@pytest.mark.parametrize("ident", NON_ADMIN, ids=lambda i: i.name)
def test_no_non_admin_publish_permission_is_a_wildcard_except_own_acks(ident):
    own_acks = {f"$JS.ACK.{p.stream}.{p.durable}.>" for d in ident.consumes for p in consumer(d).partitions()}
    own_leases = {
        f"$KV.{topology.OWNERS_BUCKET}.{ident.name}.>",
        f"$JS.API.DIRECT.GET.{OWNERS_KV}.$KV.{topology.OWNERS_BUCKET}.{ident.name}.>",
        f"$KV.{topology.IN_HAND_BUCKET}.{ident.name}.>",
        f"$JS.API.DIRECT.GET.{IN_HAND_KV}.$KV.{topology.IN_HAND_BUCKET}.{ident.name}.>",
    }
    own_outputs = {permitted(s) for s in OUTPUTS[ident.name] if s.startswith("payments.")}  # any partition
    for pattern in ident.permissions()["publish"]:
        if "*" in pattern or ">" in pattern:
            assert pattern in own_acks | own_leases | own_outputs, pattern
        assert not pattern.startswith("$JS.API.STREAM.") or pattern in {
            f"$JS.API.STREAM.INFO.{OWNERS_KV}",
            f"$JS.API.STREAM.INFO.{IN_HAND_KV}",
        }


@pytest.mark.parametrize("ident", NON_ADMIN, ids=lambda i: i.name)
def test_only_the_producer_of_a_lifecycle_subject_can_publish_it(ident):
    for subject in {s for outputs in OUTPUTS.values() for s in outputs}:
        for partition in (0, topology.PAYMENT_PARTITIONS - 1):
            assert can_publish(ident, on_the_wire(subject, partition)) is (subject in OUTPUTS[ident.name])
        assert not can_publish(ident, f"{on_the_wire(subject)}.extra")


@pytest.mark.parametrize("ident", NON_ADMIN, ids=lambda i: i.name)
def test_identity_can_ack_and_dead_letter_only_for_its_own_consumers(ident):
    for spec in topology.DURABLES:
        own = spec.name in ident.consumes
        ack = f"$JS.ACK.{spec.stream}.{spec.durable}.1.42.42.1700000000000000000.0"
        assert can_publish(ident, ack) is own
        assert can_publish(ident, f"$JS.API.CONSUMER.MSG.NEXT.{spec.stream}.{spec.durable}") is own
        assert can_publish(ident, spec.dead_letter_subject) is own


@pytest.mark.parametrize("ident", NON_ADMIN, ids=lambda i: i.name)
def test_subscribe_is_limited_to_the_identitys_own_inbox(ident):
    assert ident.permissions()["subscribe"] == [f"{ident.inbox_prefix}.>"]
    assert "." not in ident.inbox_prefix and "*" not in ident.inbox_prefix and ">" not in ident.inbox_prefix
    for other in NON_ADMIN:
        reply = f"{other.inbox_prefix}.abc123.1"
        assert can_subscribe(ident, reply) is (other.name == ident.name)
    for subject in ("payments.requested", "payments.completed", "dlq.ledger", "_INBOX.abc", "$JS.API.INFO"):
        assert not can_subscribe(ident, subject)


def test_admin_is_the_only_identity_with_full_access():
    admin = identity("admin")
    assert admin.permissions() == {"publish": [">"], "subscribe": [">"]}
    assert admin.name not in SERVICES


# ------------------------------------------------------------ natsconf.render

USER_LINE = re.compile(
    r'\{ user: "(?P<user>[^"]+)", password: "(?P<password>[^"]+)", '
    r"permissions: \{ publish: \{ allow: (?P<pub>\[.*?\]) \}, subscribe: \{ allow: (?P<sub>\[.*?\]) \} \} \}"
)


@pytest.fixture
def stack(tmp_path):
    return stack_settings.load({"FJB_STATE_DIR": str(tmp_path)})


@pytest.fixture
def user_secrets():
    names = [i.name for i in IDENTITIES] + ["system"]
    return {name: f"secret-{name}-{'x' * 20}" for name in names}


@pytest.fixture
def conf(stack, user_secrets):
    return natsconf.render(stack, stack.nats_nodes[0], user_secrets)


def tls_blocks(text: str) -> list[str]:
    blocks = []
    for match in re.finditer(r"\btls \{", text):
        end = text.index("}", match.end())
        blocks.append(text[match.end() : end])
    return blocks


def test_render_requires_tls_1_3_for_clients(conf):
    client_tls = tls_blocks(conf)[0]
    assert 'min_version: "1.3"' in client_tls
    assert 'min_version: "1.3"' in conf


def test_render_has_clients_start_with_the_tls_handshake(conf):
    """handshake_first: the server reads a TLS ClientHello before it says anything, so no client
    reads an INFO in clear text that anyone in between could have written (one without
    tls_required had nats-py send its password in clear); routes keep their own TLS block."""
    client_tls, route_tls = tls_blocks(conf)
    assert re.search(r"^\s*handshake_first: true$", client_tls, re.MULTILINE)
    assert "handshake_first" not in route_tls


def test_render_verifies_certificates_in_both_tls_blocks(conf):
    blocks = tls_blocks(conf)
    assert len(blocks) == 2
    for block in blocks:
        assert "verify: true" in block
        assert "ca_file:" in block


def test_render_fsyncs_every_jetstream_write(conf):
    jetstream = conf[conf.index("jetstream {") : conf.index("}", conf.index("jetstream {"))]
    assert "sync_interval: always" in jetstream


def test_render_has_one_user_per_identity_with_its_permissions_and_secret(conf, user_secrets):
    users = {m["user"]: m for m in USER_LINE.finditer(conf)}
    assert len(list(USER_LINE.finditer(conf))) == len(IDENTITIES)
    assert set(users) == {i.name for i in IDENTITIES}
    for ident in IDENTITIES:
        line = users[ident.name]
        assert line["password"] == user_secrets[ident.name]
        assert json.loads(line["pub"]) == ident.permissions()["publish"]
        assert json.loads(line["sub"]) == ident.permissions()["subscribe"]


def test_render_puts_the_system_user_with_its_secret_in_the_system_account(conf, user_secrets):
    sys_block = conf[conf.index("SYS {") :]
    assert f'user: "system", password: "{user_secrets["system"]}"' in sys_block
    assert "system_account: SYS" in conf
    assert conf.count('user: "system"') == 1


def test_render_contains_every_secret_given(conf, user_secrets):
    for secret in user_secrets.values():
        assert conf.count(secret) == 1


def test_render_routes_to_the_other_nodes_only(stack, user_secrets):
    for node in stack.nats_nodes:
        conf = natsconf.render(stack, node, user_secrets)
        routes = json.loads(re.search(r"routes: (\[.*?\])", conf).group(1))
        expected = sorted(f"nats-route://127.0.0.1:{o.cluster_port}" for o in stack.nats_nodes if o.name != node.name)
        assert sorted(routes) == expected
        assert f'server_name: "{node.name}"' in conf
        assert f'listen: "127.0.0.1:{node.client_port}"' in conf


def test_render_stores_jetstream_data_under_the_state_dir(stack, conf, tmp_path):
    assert json.dumps(str(tmp_path / "nats" / stack.nats_nodes[0].name)) in conf


def test_render_without_a_secret_for_an_identity_fails(stack, user_secrets):
    del user_secrets["ledger"]
    with pytest.raises(KeyError):
        natsconf.render(stack, stack.nats_nodes[0], user_secrets)


@pytest.mark.parametrize("ident", SERVICE_IDENTITIES, ids=lambda i: i.name)
def test_a_service_may_write_only_its_own_partition_leases(ident):
    for other in SERVICE_IDENTITIES:
        key = f"$KV.{topology.OWNERS_BUCKET}.{other.name}.p1"
        partitioned = any(consumer(d).partitioned for d in ident.consumes)
        assert can_publish(ident, key) is (partitioned and other.name == ident.name)


@pytest.mark.parametrize("ident", SERVICE_IDENTITIES, ids=lambda i: i.name)
def test_a_service_may_write_only_its_own_in_hand_marks(ident):
    for other in SERVICE_IDENTITIES:
        key = f"$KV.{topology.IN_HAND_BUCKET}.{other.name}.{other.name}.7"
        assert can_publish(ident, key) is (bool(ident.consumes) and other.name == ident.name)


def test_payments_are_partitioned_by_the_payers_account():
    spec = consumer("ledger")
    parts = spec.partitions()
    assert [p.durable for p in parts] == [f"ledger-p{n}" for n in range(topology.PAYMENT_PARTITIONS)]
    assert parts[3].filter_subjects == (
        "payments.approved.3",
        "payments.settled.3",
        "payments.returned.3",
        "payments.credit.3",
        "payments.refund.3",
        "payments.arrived.3",
        "payments.held.3",
    )
    assert all(p.name == "ledger" and p.dead_letter_subject == "dlq.ledger" for p in parts)
    assert consumer("ledger-p3") == parts[3] and parts[3].partition == 3
    assert consumer("cards").partitions() == (consumer("cards"),)  # not partitioned: shared
    # stable, spread, and every payment subject a partitioned consumer takes
    accounts = [f"9710{n:07d}" for n in range(2000)]
    counts = [0] * topology.PAYMENT_PARTITIONS
    for a in accounts:
        counts[topology.partition_of(a)] += 1
    assert min(counts) > 2000 / topology.PAYMENT_PARTITIONS * 0.8
    assert topology.partition_of("97100000001") == topology.partition_of("97100000001")
    assert (
        topology.payment_subject("approved", "97100000001")
        == f"payments.approved.{topology.partition_of('97100000001')}"
    )
    # an internal payment's credit leg goes to the payee's partition, every other step to the payer's
    payer, payee = (
        "97100000001",
        next(a for a in accounts if topology.partition_of(a) != topology.partition_of("97100000001")),
    )
    assert topology.step_account("credit", payer, payee) == payee
    assert topology.step_account("credited", payer, payee) == payee
    for status in ("requested", "approved", "refund", "completed", "failed"):
        assert topology.step_account(status, payer, payee) == payer
    for spec in CONSUMERS:
        if spec.stream == topology.STREAM_PAYMENTS:
            assert spec.partitioned, spec.durable


def test_the_notifier_consumes_every_shown_state_and_none_the_next_service_answers_at_once():
    # a state the next service answers at once (fjordbank.domain.payments.UNSHOWN) reaches
    # the app stamped on that answer: the notifier consumes the answer, that service the state
    from fjordbank.domain.payments import STATUS_RANK, UNSHOWN

    def consumed(durable: str) -> set[str]:
        return {s.split(".")[1] for s in consumer(durable).filter_subjects}

    notifier = consumed("notifier")
    assert not notifier & UNSHOWN
    assert consumed("ledger") >= {"approved", "settled", "returned"} and "reserved" in consumed("clearing")
    edge_shows = {"received", "scheduled", "requested", "cancelled"}  # the edge's and scheduler's own
    assert notifier == set(STATUS_RANK) - UNSHOWN - edge_shows
