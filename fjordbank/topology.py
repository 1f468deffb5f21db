"""The one declaration of Fjordbank's messaging topology.

Streams, durable consumers and the NATS identity of every component are declared here
once. Everything else is derived from it: the stack creates streams and consumers from
`STREAMS` and `CONSUMERS` (`fjordbank.adapters.jetstream.ensure_topology`), the NATS
server configuration gets one user per `Identity` with exactly the permissions computed
by `Identity.permissions()`, and the consumer runtime looks its consumer up by name.

Subjects follow the payment lifecycle of the design brief, one service per arrow (each
payment subject ends in the payer's partition, ``payments.requested.3``; see PARTITIONS):

    payments.requested            edge (Firestore trigger)  -> screening
    payments.failed               edge (due-payments job: a due payment not covered)
    payments.approved / rejected  screening                 -> ledger / notifier
    payments.reserved             ledger (external: held)   -> clearing
    payments.submitted            clearing (in a pain.001)  -> notifier
    payments.settled / returned   clearing (from pain.002)  -> ledger
    payments.completed / failed   ledger                    -> notifier, insights (completed)

The notifier sees every state after "requested" that the next service does not answer at
once (it projects them onto the app's documents); approved, reserved, settled and returned
reach it stamped on that answer (fjordbank.domain.payments.UNSHOWN).

Customers and cards have streams of their own:

    customers.approved / review / rejected   edge (onboarding callable, operator decision)
    customers.account_opened / closed        edge (accounts callables)
    customers.device_changed                 edge (device callables, operator) -> notifier
    cards.commands.issue / expire-holds      edge (cards callables, scheduled job) -> cards
    cards.issued / updated                   cards / edge (freeze, limits, replace)
    cards.authorized / declined / captured / reversed / expired
                                             cards (card-processor API)          -> notifier,
                                                                                    insights (captured)

The edge writes each customer or card event to an outbox document in the same Firestore
transaction as the change, then publishes it (fjordbank.service_layer.outbox): a change is
never committed without its event, and never announced without being committed.

Money streams are replicated three times on file storage; the servers run with
``sync_interval: always`` (see devstack.natsconf) because acknowledged writes can be lost
with the default lazy fsync.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace

STREAM_PAYMENTS = "PAYMENTS"
STREAM_DLQ = "DLQ"
STREAM_CUSTOMERS = "CUSTOMERS"
STREAM_CARDS = "CARDS"

SUBJECT_PAYMENT_REQUESTED = "payments.requested"
SUBJECT_PAYMENT_APPROVED = "payments.approved"
SUBJECT_PAYMENT_REJECTED = "payments.rejected"
SUBJECT_PAYMENT_RESERVED = "payments.reserved"
SUBJECT_PAYMENT_SUBMITTED = "payments.submitted"
SUBJECT_PAYMENT_SETTLED = "payments.settled"
SUBJECT_PAYMENT_RETURNED = "payments.returned"
SUBJECT_PAYMENT_COMPLETED = "payments.completed"
SUBJECT_PAYMENT_FAILED = "payments.failed"
# The ledger's own legs of an internal payment (never a status the app sees): the payer's
# partition debits the payer and hands the credit to the payee's partition (``credit``,
# routed by the payee's account); a credit the payee's account cannot take goes back to
# the payer's partition (``refund``). So every account is written by one partition only.
SUBJECT_PAYMENT_CREDIT = "payments.credit"
SUBJECT_PAYMENT_REFUND = "payments.refund"
CREDIT = "credit"
REFUND = "refund"
# ...and once the payee is credited, ``credited`` in the payee's partition beside the
# payer's ``completed``: what the payee's read models (insights) apply in that partition.
SUBJECT_PAYMENT_CREDITED = "payments.credited"
CREDITED = "credited"
# A payment from another bank (fjordbank.domain.payments.INCOMING), in the payee's partition:
# clearing's ``arrived`` (read from the clearing house's pacs.008) for the ledger to credit,
# and the ledger's ``unapplied`` (the credit cannot be made) for clearing to send back.
SUBJECT_PAYMENT_ARRIVED = "payments.arrived"
SUBJECT_PAYMENT_UNAPPLIED = "payments.unapplied"
ARRIVED = "arrived"
UNAPPLIED = "unapplied"
# ...and clearing's ``held`` (a credit held for sanctions review) for the ledger to book into
# the payee's partition's suspense shard until a compliance officer decides: the money is
# the bank's to account for from the moment the clearing house settled it. Nothing follows
# it on NATS (no tipping off); a release is the credit's ``arrived``.
SUBJECT_PAYMENT_HELD = "payments.held"
HELD = "held"

SUBJECT_CUSTOMER_APPROVED = "customers.approved"
SUBJECT_CUSTOMER_REVIEW = "customers.review"
SUBJECT_CUSTOMER_REJECTED = "customers.rejected"
SUBJECT_ACCOUNT_OPENED = "customers.account_opened"
SUBJECT_ACCOUNT_CLOSED = "customers.account_closed"
# a device key added, enrolled after the bank reopened the enrolment, revoked, or every key
# revoked by the bank: the customer is told on every device (fjordbank.service_layer.sca)
SUBJECT_DEVICE_CHANGED = "customers.device_changed"

SUBJECT_CARD_ISSUE = "cards.commands.issue"
SUBJECT_CARD_EXPIRE_HOLDS = "cards.commands.expire-holds"
SUBJECT_CARD_ISSUED = "cards.issued"
SUBJECT_CARD_UPDATED = "cards.updated"
SUBJECT_CARD_AUTHORIZED = "cards.authorized"
SUBJECT_CARD_DECLINED = "cards.declined"
SUBJECT_CARD_CAPTURED = "cards.captured"
SUBJECT_CARD_REVERSED = "cards.reversed"
SUBJECT_CARD_EXPIRED = "cards.expired"
SUBJECT_CARD_REFUNDED = "cards.refunded"
SUBJECT_CARD_INCREMENTED = "cards.incremented"


# ---- partitions ---------------------------------------------------------------------------
# Payments are partitioned by the payer's account: every event of a payment carries its
# partition as the last token of its subject (``payments.<state>.<partition>``), and each
# partitioned consumer below is one durable per partition (``ledger-p3`` filters
# ``payments.approved.3`` ...). An instance of a service works on the partitions it holds a
# lease on (fjordbank/runtime/ownership.py); so all of one payer's payments go through one
# instance at a time, in order, and the ledger's group commit holds per partition.
#
# The number is fixed for the life of the streams: changing it re-routes payers, so it
# needs a drain of the payment stream first (docs/capacity.md derives the figure).
PAYMENT_PARTITIONS = 8

# Partition leases: a key per (service, partition) and one per live instance, in a
# replicated in-memory KV bucket whose entries expire ``LEASE_SECONDS`` after their last
# write. A holder renews every ``LEASE_RENEW_SECONDS`` and stops working on a partition
# when it could not renew for ``LEASE_VALID_SECONDS`` (less than the expiry: it stops
# before anybody else can take over).
OWNERS_BUCKET = "partition-owners"
# 3 s (was 6): a killed or hung instance's partitions move in about 3-4 s, which the chaos
# run's p99 goal (10 s to final) needs with NATS faults on top; renewing four times per
# expiry keeps one late renewal on a busy machine from losing a lease.
LEASE_SECONDS = 3.0
LEASE_RENEW_SECONDS = 0.75
LEASE_VALID_SECONDS = 2.25

# Dead letters published again (fjordbank/runtime/dead_letters.py): a key per DLQ sequence
# replayed and one per message replayed (``<consumer>.<original sequence>``: a message can
# have two letters) (when, on which subject, how often), in a replicated file KV bucket whose
# entries live as long as the letters (the DLQ stream's max age). `bankctl dlq list` shows
# which letters were dealt with, and a second replay must be asked for (``--again``).
REPLAYED_BUCKET = "dead-letters-replayed"

# Messages handled alone after their process stopped while handling them
# (fjordbank/runtime/in_hand.py): a key per (service, durable, stream sequence) with the
# times it was handled alone without an outcome, in a replicated file KV bucket (the marks
# must outlive the process they count the stops of); entries expire after a day.
IN_HAND_BUCKET = "messages-in-hand"
IN_HAND_SECONDS = 24 * 3600


def partition_of(account: str, partitions: int = PAYMENT_PARTITIONS) -> int:
    """The partition of a payer's account: stable across processes and releases (not
    Python's salted ``hash``)."""
    digest = hashlib.blake2b(account.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") % partitions


def payment_subject(status: str, account: str) -> str:
    """``payments.<status>.<partition of account>``: the payer's account for every step
    but the ledger's ``credit`` leg and ``credited``, which go to the payee's (`step_account`)."""
    return f"payments.{status}.{partition_of(account)}"


def step_account(status: str, payer: str, payee: str) -> str:
    """The account whose partition a payment step is routed by (`payment_subject`)."""
    return payee if status in (CREDIT, CREDITED) else payer


def every_partition(subject: str) -> str:
    """The wildcard of a partitioned subject: ``payments.approved`` -> ``payments.approved.*``."""
    return f"{subject}.*"


def base_subject(subject: str) -> str:
    """A subject without its partition (``payments.approved.3`` -> ``payments.approved``):
    what spans and timelines name a step by (the partition is an attribute of its own)."""
    head, _, last = subject.rpartition(".")
    return head if subject.startswith("payments.") and last.isdigit() else subject


def partition_in(subject: str) -> int | None:
    _head, _, last = subject.rpartition(".")
    return int(last) if subject.startswith("payments.") and last.isdigit() else None


def dlq_subject(consumer: str) -> str:
    """Where a consumer parks a message it gave up on."""
    return f"dlq.{consumer}"


@dataclass(frozen=True)
class StreamSpec:
    name: str
    subjects: tuple[str, ...]
    replicas: int = 3
    max_age_seconds: int = 30 * 24 * 3600
    duplicate_window_seconds: int = 120
    description: str = ""


@dataclass(frozen=True)
class ConsumerSpec:
    """A durable pull consumer.

    ``backoff_seconds[n-1]`` is the delay the runtime asks for when it naks the n-th
    delivery (the last value repeats). Not the server's ``backoff`` option: that one also
    shortens the ack wait of the first delivery. After ``max_deliver`` deliveries the
    runtime moves the message to ``dlq.<durable>`` with its reason and terminates it.
    """

    durable: str
    stream: str
    filter_subjects: tuple[str, ...]
    max_deliver: int = 6
    # Short: a message held by a killed or hung instance goes back to the stream after this
    # long. The runtime marks every message it still works on in progress every third of it
    # (fjordbank/runtime/consumer.py ConsumerService.process), so a slow batch keeps its own.
    ack_wait_seconds: int = 4
    backoff_seconds: tuple[float, ...] = (0.5, 1, 2, 5, 10)
    max_ack_pending: int = 2000
    description: str = ""
    # True: one durable per payment partition (``partitions()``), worked on by the instance
    # holding that partition's lease. False: one durable every instance pulls from.
    partitioned: bool = False
    group: str = ""  # a partition's consumer: the declared consumer it belongs to

    @property
    def name(self) -> str:
        """The declared consumer's name (a partition's group), for metrics and dead letters."""
        return self.group or self.durable

    @property
    def dead_letter_subject(self) -> str:
        return dlq_subject(self.name)

    @property
    def partition(self) -> int | None:
        return int(self.durable.rsplit("-p", 1)[1]) if self.group else None

    def partitions(self) -> tuple[ConsumerSpec, ...]:
        """The durables this declaration stands for: one per partition, or itself."""
        if not self.partitioned:
            return (self,)
        return tuple(
            replace(
                self,
                durable=f"{self.durable}-p{n}",
                filter_subjects=tuple(f"{s}.{n}" for s in self.filter_subjects),
                partitioned=False,
                group=self.durable,
                description=f"{self.description} (partition {n})".strip(),
            )
            for n in range(PAYMENT_PARTITIONS)
        )

    def nak_delay(self, num_delivered: int) -> float:
        index = min(max(num_delivered, 1), len(self.backoff_seconds)) - 1
        return self.backoff_seconds[index]


@dataclass(frozen=True)
class Identity:
    """One NATS user: a component with the least privilege it needs."""

    name: str
    publishes: tuple[str, ...] = ()
    consumes: tuple[str, ...] = ()  # durable consumer names
    admin: bool = False
    description: str = ""

    @property
    def inbox_prefix(self) -> str:
        """Private reply subjects: nobody else can subscribe to this user's replies."""
        return f"_INBOX_{self.name}"

    def permissions(self) -> dict[str, list[str]]:
        """Publish/subscribe allow lists for the NATS server configuration."""
        if self.admin:
            return {"publish": [">"], "subscribe": [">"]}
        pub = list(self.publishes)
        partitioned = False
        for name in self.consumes:
            declared = consumer(name)
            partitioned = partitioned or declared.partitioned
            for spec in declared.partitions():
                pub += [
                    f"$JS.API.CONSUMER.INFO.{spec.stream}.{spec.durable}",
                    f"$JS.API.CONSUMER.MSG.NEXT.{spec.stream}.{spec.durable}",
                    f"$JS.ACK.{spec.stream}.{spec.durable}.>",
                    spec.dead_letter_subject,
                ]
        if self.consumes:
            # its own service's in-hand marks only (fjordbank/runtime/in_hand.py)
            kv = f"KV_{IN_HAND_BUCKET}"
            pub += [
                f"$KV.{IN_HAND_BUCKET}.{self.name}.>",
                f"$JS.API.STREAM.INFO.{kv}",
                f"$JS.API.DIRECT.GET.{kv}.$KV.{IN_HAND_BUCKET}.{self.name}.>",
            ]
        if partitioned:
            # its own service's leases only (fjordbank/runtime/ownership.py)
            kv = f"KV_{OWNERS_BUCKET}"
            pub += [
                f"$KV.{OWNERS_BUCKET}.{self.name}.>",
                f"$JS.API.STREAM.INFO.{kv}",
                f"$JS.API.DIRECT.GET.{kv}.$KV.{OWNERS_BUCKET}.{self.name}.>",
            ]
        if pub:
            pub.append("$JS.API.INFO")
        return {
            "publish": sorted(set(pub)),
            "subscribe": [f"{self.inbox_prefix}.>"],
        }


STREAMS: tuple[StreamSpec, ...] = (
    StreamSpec(
        name=STREAM_PAYMENTS,
        subjects=("payments.>",),
        description="Payment lifecycle events, one subject per state.",
    ),
    StreamSpec(
        name=STREAM_CUSTOMERS,
        subjects=("customers.>",),
        description="Onboarding decisions and account lifecycle, without personal data.",
    ),
    StreamSpec(
        name=STREAM_CARDS,
        subjects=("cards.>",),
        description="Card commands, card lifecycle and authorisation decisions (never a PAN or CVV).",
    ),
    StreamSpec(
        name=STREAM_DLQ,
        subjects=("dlq.>",),
        max_age_seconds=90 * 24 * 3600,
        description="Messages a consumer gave up on, with the reason, for operators.",
    ),
)

# Subjects a release stopped using, once no stream holds their messages and no running
# release publishes there: the contracts' generator refuses a subject dropped from the
# topology without being listed here (fjordbank.contracts.removed_subjects).
RETIRED_SUBJECTS: tuple[str, ...] = ()

CONSUMERS: tuple[ConsumerSpec, ...] = (
    ConsumerSpec(
        durable="screening",
        stream=STREAM_PAYMENTS,
        partitioned=True,
        filter_subjects=(SUBJECT_PAYMENT_REQUESTED,),
        description="Limits, velocity, blocked counterparties, new payees.",
    ),
    ConsumerSpec(
        durable="ledger",
        stream=STREAM_PAYMENTS,
        partitioned=True,
        filter_subjects=(
            SUBJECT_PAYMENT_APPROVED,
            SUBJECT_PAYMENT_SETTLED,
            SUBJECT_PAYMENT_RETURNED,
            SUBJECT_PAYMENT_CREDIT,
            SUBJECT_PAYMENT_REFUND,
            SUBJECT_PAYMENT_ARRIVED,
            SUBJECT_PAYMENT_HELD,
        ),
        description="Holds and posts payments as double entry in the Firestore ledger.",
    ),
    ConsumerSpec(
        durable="clearing",
        stream=STREAM_PAYMENTS,
        partitioned=True,
        filter_subjects=(SUBJECT_PAYMENT_RESERVED, SUBJECT_PAYMENT_UNAPPLIED),
        description=(
            "Sends external payments to other banks in pain.001 files; reads pain.002 answers;"
            " reads payments from other banks (pacs.008) and sends back those it cannot credit (pacs.004)."
        ),
    ),
    ConsumerSpec(
        durable="notifier",
        stream=STREAM_PAYMENTS,
        partitioned=True,
        # every state after "requested" (which the edge itself shows on the request) that the
        # next service does not answer at once: approved, reserved, settled and returned are
        # shown with that answer, at the time they were published (domain.payments.UNSHOWN),
        # which saves a request write each
        filter_subjects=(
            SUBJECT_PAYMENT_REJECTED,
            SUBJECT_PAYMENT_SUBMITTED,
            SUBJECT_PAYMENT_COMPLETED,
            SUBJECT_PAYMENT_FAILED,
        ),
        description="Projects the payment states the app shows onto its documents; pushes the final ones.",
    ),
    ConsumerSpec(
        durable="cards",
        stream=STREAM_CARDS,
        filter_subjects=(SUBJECT_CARD_ISSUE, SUBJECT_CARD_EXPIRE_HOLDS),
        description="Issues cards into the vault; releases expired card holds.",
    ),
    ConsumerSpec(
        durable="notifier-customers",
        stream=STREAM_CUSTOMERS,
        filter_subjects=(
            SUBJECT_CUSTOMER_APPROVED,
            SUBJECT_CUSTOMER_REVIEW,
            SUBJECT_CUSTOMER_REJECTED,
            SUBJECT_DEVICE_CHANGED,
        ),
        description="Pushes the onboarding result, and a security notice when the customer's devices change.",
    ),
    ConsumerSpec(
        durable="notifier-cards",
        stream=STREAM_CARDS,
        filter_subjects=(
            SUBJECT_CARD_AUTHORIZED,
            SUBJECT_CARD_DECLINED,
            SUBJECT_CARD_CAPTURED,
            SUBJECT_CARD_REVERSED,
            SUBJECT_CARD_EXPIRED,
            SUBJECT_CARD_REFUNDED,
            SUBJECT_CARD_INCREMENTED,
        ),
        description=(
            "Pushes card authorisations and declines, the release of a purchase's reservation,"
            " a capture made after its reservation expired, a merchant's refund and a reservation increased."
        ),
    ),
    ConsumerSpec(
        durable="insights-payments",
        stream=STREAM_PAYMENTS,
        partitioned=True,
        # the payer's side of a completed payment, the payee's side of a credited one: each
        # customer's economy is written in its own account's partition only
        filter_subjects=(SUBJECT_PAYMENT_COMPLETED, SUBJECT_PAYMENT_CREDITED),
        description="Books completed payments into my economy and subscription detection.",
    ),
    ConsumerSpec(
        durable="insights-cards",
        stream=STREAM_CARDS,
        filter_subjects=(SUBJECT_CARD_CAPTURED, SUBJECT_CARD_REFUNDED),
        description="Books captured card purchases (and their refunds) into my economy and subscription detection.",
    ),
)

IDENTITIES: tuple[Identity, ...] = (
    Identity(
        name="edge",
        publishes=(
            every_partition(SUBJECT_PAYMENT_REQUESTED),
            # a scheduled payment or standing order the account could not cover on its due
            # date fails without ever being requested (the due-payments job)
            every_partition(SUBJECT_PAYMENT_FAILED),
            SUBJECT_CUSTOMER_APPROVED,
            SUBJECT_CUSTOMER_REVIEW,
            SUBJECT_CUSTOMER_REJECTED,
            SUBJECT_ACCOUNT_OPENED,
            SUBJECT_ACCOUNT_CLOSED,
            SUBJECT_DEVICE_CHANGED,
            SUBJECT_CARD_ISSUE,
            SUBJECT_CARD_EXPIRE_HOLDS,
            SUBJECT_CARD_UPDATED,
        ),
        description="Firebase functions: publish validated app requests, customer and card changes.",
    ),
    Identity(
        name="screening",
        publishes=(every_partition(SUBJECT_PAYMENT_APPROVED), every_partition(SUBJECT_PAYMENT_REJECTED)),
        consumes=("screening",),
    ),
    Identity(
        name="ledger",
        publishes=(
            every_partition(SUBJECT_PAYMENT_RESERVED),
            every_partition(SUBJECT_PAYMENT_COMPLETED),
            every_partition(SUBJECT_PAYMENT_FAILED),
            every_partition(SUBJECT_PAYMENT_CREDIT),
            every_partition(SUBJECT_PAYMENT_REFUND),
            every_partition(SUBJECT_PAYMENT_CREDITED),
            every_partition(SUBJECT_PAYMENT_UNAPPLIED),
        ),
        consumes=("ledger",),
    ),
    Identity(
        name="clearing",
        publishes=(
            every_partition(SUBJECT_PAYMENT_SUBMITTED),
            every_partition(SUBJECT_PAYMENT_SETTLED),
            every_partition(SUBJECT_PAYMENT_RETURNED),
            every_partition(SUBJECT_PAYMENT_ARRIVED),
            every_partition(SUBJECT_PAYMENT_HELD),
        ),
        consumes=("clearing",),
    ),
    Identity(name="notifier", consumes=("notifier", "notifier-customers", "notifier-cards")),
    Identity(
        name="cards",
        publishes=(
            SUBJECT_CARD_ISSUED,
            SUBJECT_CARD_AUTHORIZED,
            SUBJECT_CARD_DECLINED,
            SUBJECT_CARD_CAPTURED,
            SUBJECT_CARD_REVERSED,
            SUBJECT_CARD_EXPIRED,
            SUBJECT_CARD_REFUNDED,
            SUBJECT_CARD_INCREMENTED,
        ),
        consumes=("cards",),
        description="Card service: the card vault, the processor's API, card holds and captures.",
    ),
    Identity(
        name="insights",
        consumes=("insights-payments", "insights-cards"),
        description="My economy and subscriptions, from completed payments and card captures.",
    ),
    Identity(
        name="admin",
        admin=True,
        description="Creates streams and consumers; operators' tools. Never used by a service.",
    ),
)

# The run_services, each a process with its own identity and consumer.
SERVICES: tuple[str, ...] = tuple(ident.name for ident in IDENTITIES if ident.consumes)


# Every durable consumer on the servers: the declarations above, partitions expanded.
DURABLES: tuple[ConsumerSpec, ...] = tuple(p for spec in CONSUMERS for p in spec.partitions())


def consumer(durable: str) -> ConsumerSpec:
    """A declared consumer, or one partition's durable (``ledger-p3``)."""
    for spec in (*CONSUMERS, *DURABLES):
        if spec.durable == durable:
            return spec
    raise KeyError(f"no consumer named {durable!r} in the topology")


def identity(name: str) -> Identity:
    for ident in IDENTITIES:
        if ident.name == name:
            return ident
    raise KeyError(f"no NATS identity named {name!r} in the topology")
