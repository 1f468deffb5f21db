"""Firestore clients that work the same against the emulator and production.

With FIRESTORE_EMULATOR_HOST set (the local stack, tests), the clients use the project id
and anonymous credentials, as the emulator expects; in production, default credentials.
"""

from __future__ import annotations

import asyncio
import functools
import random
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Concatenate, ParamSpec, TypeVar, overload

import grpc
import grpc.aio
from firebase_admin import exceptions as firebase_errors
from google.api_core import exceptions as api_errors
from google.api_core.retry import Retry, if_exception_type
from google.auth import exceptions as google_auth_errors
from google.cloud import firestore
from google.cloud.firestore_v1.async_document import AsyncDocumentReference
from google.cloud.firestore_v1.async_transaction import AsyncTransaction
from google.cloud.firestore_v1.async_transaction import async_transactional as _client_async_transactional
from google.cloud.firestore_v1.base_client import _GRPC_MSG_SIZE_OPTIONS, BaseClient
from google.cloud.firestore_v1.base_document import DocumentSnapshot
from google.cloud.firestore_v1.document import DocumentReference
from prometheus_client import Counter

from fjordbank.adapters import firestore_calls
from fjordbank.service_layer import ports

if TYPE_CHECKING:
    from fjordbank.adapters.faults import FaultSwitch

# Collections (one place for their names).
ACCOUNTS = "accounts"
POSTINGS = "postings"
LEDGER_PAYMENTS = "ledgerPayments"
HOLDS = "holds"
TRANSACTIONS = "transactions"  # accounts/{id}/transactions/{paymentId}: the app's feed
PAYMENT_VIEWS = "paymentViews"  # the state the notifier has shown for each payment
SCREENING_CUSTOMERS = "screeningCustomers"
SCREENING_DECISIONS = "screeningDecisions"
CLEARING_PAYMENTS = "clearingPayments"
CLEARING_FILES = "clearingFiles"
USERS = "users"
CUSTOMERS = "customers"  # customers/{uid}: the onboarding result and the customer's profile
CARDS = "cards"  # cards/{cardId}: the app's view of a card (never its number)
CARD_AUTHORIZATIONS = "cardAuthorizations"  # {authId}: a card authorisation (no PAN), its decision, capture
CARD_SPEND = "cardSpend"  # {cardId}_{day}: what a card authorised that day, by daily/online/abroad
PAYMENT_REQUESTS = "paymentRequests"
# users/{uid}/...: the customer's read model beside the request documents
CATEGORY_OVERRIDES = "categoryOverrides"  # {key}: the customer's category for a merchant or payee
ECONOMY = "economy"  # {YYYY-MM}: my economy
ECONOMY_ITEMS = "economyItems"  # {txId}: what one booking adds to its month
MERCHANT_HISTORY = "merchantHistory"  # {key}: recent charges, for subscription detection
SUBSCRIPTIONS = "subscriptions"  # {key}: a detected subscription
STANDING_ORDERS = "standingOrders"  # {orderId}: scheduled and repeating payments
OPS = "ops"  # ops/{name}: small summaries for operations, e.g. ops/ledgerAudit (the last audit)
# the list last screened against every customer (fjordbank.service_layer.rescreening)
RESCREEN_BASELINE = f"{OPS}/rescreenBaseline"
SANCTIONS_ALERTS = "sanctionsAlerts"  # {uid}: a customer the sanctions list names since onboarding
PAYEE_ALERTS = "payeeAlerts"  # {payee key}: a payee at another bank whose name is like a listed one


@overload
def user_doc(db: firestore.AsyncClient, uid: str, collection: str, doc_id: str) -> AsyncDocumentReference: ...
@overload
def user_doc(db: firestore.Client, uid: str, collection: str, doc_id: str) -> DocumentReference: ...
def user_doc(
    db: firestore.Client | firestore.AsyncClient, uid: str, collection: str, doc_id: str
) -> DocumentReference | AsyncDocumentReference:
    """``users/{uid}/{collection}/{doc_id}``, with the services' async client or the edge's sync one."""
    ref: DocumentReference | AsyncDocumentReference = (
        db.collection(USERS).document(uid).collection(collection).document(doc_id)
    )
    return ref


def fields_of(snap: DocumentSnapshot[Any]) -> dict[str, Any]:
    """The fields of a document read, ``{}`` when it does not exist (the client types
    ``to_dict()`` as optional, even for a document that exists)."""
    return snap.to_dict() or {}


# Errors after which the same request may well succeed a moment later: contention (ABORTED),
# a database that did not answer in time, is overloaded or failed inside (INTERNAL, which
# Firestore's error guide says to retry), a gateway that timed out, a credentials refresh
# that did not reach Google, and the same from Firebase Auth (firebase_admin's own errors:
# a revocation of the customer's sessions, `fjordbank.adapters.sessions`; before, these
# were answered INTERNAL, found in review, 2026-12-06).
TRANSIENT = (
    api_errors.Aborted,
    api_errors.DeadlineExceeded,
    api_errors.ServiceUnavailable,
    api_errors.ResourceExhausted,
    api_errors.RetryError,
    api_errors.InternalServerError,
    api_errors.GatewayTimeout,
    google_auth_errors.TransportError,
    firebase_errors.UnavailableError,
    firebase_errors.DeadlineExceededError,
    firebase_errors.InternalError,
)


def is_transient(exc: BaseException) -> bool:
    """Whether ``exc`` means "try again later" rather than a bug. The client's
    ``@transactional`` gives up on a transaction that lost every attempt to contention with
    a ValueError ("Failed to commit transaction in N attempts") caused by ABORTED; through
    the document ports (fjordbank.adapters.documents) the same is ``ports.Contention``."""
    if isinstance(exc, ValueError) and isinstance(exc.__cause__, api_errors.Aborted):
        return True
    return isinstance(exc, (*TRANSIENT, ports.Contention))


# ---- transaction attempts --------------------------------------------------------------
# Declared and named by keywords: a positional snake_case string in fjordbank/ reads as a
# reason code to tests/unit/test_reasons.py, and a metric or an operation is none.
TRANSACTION_ATTEMPTS = Counter(
    name="fjb_firestore_transaction_attempts_total",
    documentation="Firestore transaction attempts, by operation and result (committed, retried, aborted)",
    labelnames=["operation", "result"],
)


def is_contention(exc: BaseException) -> bool:
    """ABORTED, or the client's give-up after every attempt lost to it (a ValueError from
    ABORTED), or a use case's own give-up (``ports.Contention``, e.g. the notifier's
    precondition commits): the work lost to concurrent changes of the same documents."""
    return isinstance(exc, (api_errors.Aborted, ports.Contention)) or (
        isinstance(exc, ValueError) and isinstance(exc.__cause__, api_errors.Aborted)
    )


# The client retries a transaction only when its commit is ABORTED. A read inside the body
# can be ABORTED too: it waited for a document another transaction has locked and lost
# ("Transaction lock timeout" on the emulator, "Too much contention" in production). The
# client rolls back and raises; the ports run the transaction again, this many times in all
# with jittered backoff, before the caller sees ``ports.Contention`` (as the Node and Java
# clients retry any ABORTED in a transaction). A consumer would nak and be redelivered
# anyway; the admin paths (deposits, opening accounts) have no redelivery.
BODY_ABORT_TRIES = 5
BODY_ABORT_BACKOFF_S = (0.05, 1.0)  # the first wait's ceiling, doubled each time up to the second


def body_abort_backoff(tries: int) -> float:
    """Seconds to wait before running a transaction again after its ``tries``-th aborted
    body: full jitter under an exponential ceiling."""
    first, cap = BODY_ABORT_BACKOFF_S
    return random.uniform(0, min(cap, first * 2 ** (tries - 1)))


def count_attempts(operation: str, attempts: int, error: BaseException | None) -> None:
    """Count one transactional call that ran its body ``attempts`` times: every attempt but
    the last was retried (after an ABORTED commit, or an ABORTED read in the body:
    ``BODY_ABORT_TRIES``); the last one committed, or was aborted when the call ended in
    contention. A call that ended in any other error (the body's own, a database that did
    not answer) counts its earlier attempts only: it is neither a commit nor contention."""
    if attempts > 1:
        TRANSACTION_ATTEMPTS.labels(operation, "retried").inc(attempts - 1)
    if error is None:
        TRANSACTION_ATTEMPTS.labels(operation, "committed").inc()
    elif attempts and is_contention(error):
        TRANSACTION_ATTEMPTS.labels(operation, "aborted").inc()


P = ParamSpec("P")
T = TypeVar("T")
# A transaction's body: ``async def run(tx, ...) -> T``, as the client's decorator takes it.
TransactionBody = Callable[Concatenate[AsyncTransaction, P], Awaitable[T]]


def async_transactional(*, operation: str) -> Callable[[TransactionBody[P, T]], TransactionBody[P, T]]:
    """``google.cloud.firestore_v1.async_transaction.async_transactional`` that also counts
    its attempts in fjb_firestore_transaction_attempts_total{operation}. Every transaction
    of the consumer services goes through this decorator::

        @async_transactional(operation="ledger_post_batch")
        async def run(tx): ...

        await run(db.transaction())

    The client's retry loop is left as it is: the body is wrapped to count how often the
    loop ran it, and the outcome of the whole call says how the last attempt ended. Around
    it, an ABORTED raised by the body itself (a read that waited for another transaction's
    lock: see ``BODY_ABORT_TRIES``) runs the whole transaction again."""

    def decorate(body: TransactionBody[P, T]) -> TransactionBody[P, T]:
        @functools.wraps(body)
        async def call(transaction: AsyncTransaction, /, *args: P.args, **kwargs: P.kwargs) -> T:
            attempts = 0

            async def attempt(tx: AsyncTransaction, /, *a: P.args, **kw: P.kwargs) -> T:
                nonlocal attempts
                attempts += 1
                return await body(tx, *a, **kw)

            tries = 0
            while True:
                try:
                    result = await _client_async_transactional(attempt)(transaction, *args, **kwargs)
                    break
                except api_errors.Aborted as exc:
                    tries += 1
                    if tries >= BODY_ABORT_TRIES:
                        count_attempts(operation, attempts, exc)
                        raise
                    await asyncio.sleep(body_abort_backoff(tries))
                except BaseException as exc:
                    count_attempts(operation, attempts, exc)
                    raise
            count_attempts(operation, attempts, None)
            return result

        return call

    return decorate


_SIGNED_IN = "id_token"  # an attribute name (not a reason code: tests/unit/test_reasons.py)


def _kwargs(project_id: str) -> dict[str, Any]:
    # Without credentials the client takes anonymous ones when FIRESTORE_EMULATOR_HOST is
    # set (google.cloud.firestore_v1.base_client), the default credentials otherwise.
    return {"project": project_id}


def _emulator_options(client: BaseClient) -> list[tuple[str, str | int]]:
    # as the client does: a signed-in credential's ID token, else "owner"
    token = getattr(client._credentials, _SIGNED_IN, None) or "owner"
    return [("Authorization", f"Bearer {token}"), *_GRPC_MSG_SIZE_OPTIONS]


def _emulator_host(client: BaseClient) -> str:
    """The emulator's address (the client asks for an emulator channel only when it has one)."""
    if client._emulator_host is None:
        raise RuntimeError("an emulator channel without FIRESTORE_EMULATOR_HOST")
    return client._emulator_host


# How long the edge (the callables, the payment trigger, the push function) waits for one
# Firestore call, its retries included. The client's own defaults wait up to 60 s for a
# document, a commit or a transaction's start and up to 300 s for a batch read or a query,
# retrying all the while; a callable runs for at most 60 s, so a database in a brownout
# ended a call with the platform's timeout (no reason the app can act on) instead of
# `busy` (found in review, 2026-12-06). With this bound a call that does not answer ends
# in DeadlineExceeded or RetryError, which the edge answers `busy` (``is_transient``): a
# database that stops answering ends a callable's first call in 8 s. (A transaction run
# again after ABORTED bounds each of its calls, not their sum: contention answers fast,
# and the last attempt's loss is `busy` too.) The scheduled jobs read whole collections
# and keep the client's defaults (functions/main.py: ``job_docs``).
EDGE_CALL_DEADLINE_S = 8.0


class RemainingTime:
    """api_core's timeout for one RPC, its retries included: each attempt is given what is
    left of ``deadline`` seconds counted from the call, never more. api_core's own
    (``TimeToDeadlineTimeout``, what a number becomes) gives an attempt that starts with less
    than 1 s left the whole timeout again: a retry budget of ``deadline`` let one call wait
    nearly twice as long (found in review, 2026-12-06), and a budget of ``deadline - 1``
    still let an attempt starting at its edge have it all (seen in CI, 2026-12-07: the
    retry's clock and the timeout's start apart). api_core applies it per call
    (``timeout(func)``), so one instance serves every call of a method; an attempt that
    starts with nothing left is given ``LAST_ATTEMPT_S`` and ends DEADLINE_EXCEEDED."""

    LAST_ATTEMPT_S = 0.05

    def __init__(self, deadline: float) -> None:
        if deadline <= 0:
            raise ValueError("a call's deadline must be over 0 s")
        self.deadline = deadline

    def __call__(self, func: Callable[..., Any]) -> Callable[..., Any]:
        ends = time.monotonic() + self.deadline

        @functools.wraps(func)
        def attempt(*args: Any, **kwargs: Any) -> Any:
            kwargs["timeout"] = max(ends - time.monotonic(), self.LAST_ATTEMPT_S)
            return func(*args, **kwargs)

        return attempt

    def __repr__(self) -> str:
        return f"RemainingTime({self.deadline})"


def bound_waits(transport: Any, deadline: float) -> None:
    """Every RPC of ``transport`` (a Firestore GAPIC transport) waits at most ``deadline``
    seconds in all: each attempt is given what is left of it (``RemainingTime``) and the
    client's retry starts none after it. The retry's predicate (which errors it retries)
    and its backoff stay the client's. The GAPIC client reads an RPC's defaults from
    ``transport._wrapped_methods`` at every call; they are set here, on the instance
    (tests/unit/test_firestore_deadline.py holds this to a real gRPC server, so a client
    release that moves them fails there, not in production)."""
    timeout = RemainingTime(deadline)
    for wrapped in transport._wrapped_methods.values():
        retry = getattr(wrapped, "_retry", None)
        if retry is not None:
            wrapped._retry = retry.with_timeout(deadline)
        wrapped._timeout = timeout


def query_options(deadline: float) -> dict[str, Any]:
    """What a bounded client's query stream outside a transaction is given explicitly: the
    client's own retry of a stream broken midway reads the retry from the raw gRPC callable,
    which has none (an AttributeError, answered INTERNAL at the edge: found in review,
    2026-12-06). Given here: UNAVAILABLE and INTERNAL restart it from its last document;
    DEADLINE_EXCEEDED ends it (a restart would have a whole timeout again)."""
    retry = Retry(
        predicate=if_exception_type(api_errors.ServiceUnavailable, api_errors.InternalServerError),
        initial=0.1,
        maximum=1.0,
        multiplier=1.3,
        timeout=deadline,
    )
    return {"retry": retry, "timeout": RemainingTime(deadline)}


class _BoundedWaits:
    """A client whose every call waits at most ``_fjb_deadline`` (None: the client's own
    waits), its retries included (``bound_waits``), from the first RPC on: the client makes
    its GAPIC surface lazily. The sync and the async client share it."""

    _fjb_deadline: float | None = None
    _fjb_bounded = False

    @property
    def _firestore_api(self) -> Any:
        api = super()._firestore_api  # type: ignore[misc]
        if self._fjb_deadline is not None and not self._fjb_bounded:
            bound_waits(self._transport, self._fjb_deadline)  # type: ignore[attr-defined]
            self._fjb_bounded = True
        return api


class CountedClient(_BoundedWaits, firestore.Client):
    """``firestore.Client`` whose emulator channel counts its calls and documents
    (fjordbank.adapters.firestore_calls). The client makes its channel lazily, on the first
    RPC; on the emulator through ``_emulator_channel``, made here as the client makes it,
    with the interceptor added. With ``deadline`` every call waits at most that long, its
    retries included (``bound_waits``)."""

    def __init__(self, *args: Any, deadline: float | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._fjb_deadline = deadline
        # what fjordbank.adapters.documents passes to a query's stream (``query_options``)
        self.fjb_query_options: dict[str, Any] = {} if deadline is None else query_options(deadline)

    def _emulator_channel(self, transport: object) -> grpc.Channel:
        channel = grpc.insecure_channel(_emulator_host(self), options=_emulator_options(self))
        return grpc.intercept_channel(channel, firestore_calls.SyncCounter())


class CountedAsyncClient(_BoundedWaits, firestore.AsyncClient):
    """``firestore.AsyncClient`` whose emulator channel counts its calls and documents,
    and fails them as a chaos run asks when it has a fault switch (fjordbank.adapters.
    faults: the switch's interceptors go first, so an injected failure is no round trip).
    With ``deadline`` every call waits at most that long, its retries included
    (``bound_waits``), as `CountedClient`'s."""

    def __init__(
        self, *args: Any, faults: FaultSwitch | None = None, deadline: float | None = None, **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        self._fjb_deadline = deadline
        self._fjb_interceptors = firestore_calls.async_interceptors()
        if faults is not None:
            from fjordbank.adapters.faults import firestore_interceptors

            self._fjb_interceptors = [*firestore_interceptors(faults), *self._fjb_interceptors]

    def _emulator_channel(self, transport: object) -> grpc.aio.Channel:
        return grpc.aio.insecure_channel(
            _emulator_host(self), options=_emulator_options(self), interceptors=self._fjb_interceptors
        )


def sync_client(project_id: str, *, deadline: float | None = None, database: str | None = None) -> firestore.Client:
    """The edge's and the operator tools' client; with ``deadline``, every call's wait is
    bounded (``EDGE_CALL_DEADLINE_S`` for the edge); ``database``: a named database (the
    card vault's) instead of ``(default)``."""
    kwargs = _kwargs(project_id)
    if database is not None:
        kwargs["database"] = database
    return CountedClient(**kwargs, deadline=deadline)


def async_client(
    project_id: str, *, faults: FaultSwitch | None = None, deadline: float | None = None
) -> firestore.AsyncClient:
    """The services' client. With ``faults`` (a chaos run's switch, emulator only: see
    fjordbank.adapters.faults) its RPCs fail at the rate the faults file asks for; with
    ``deadline`` every call's wait is bounded (the card service's: a partner waits for its
    answers, run_services/cards.py). Without, the client's own waits (up to 60 s for a
    document or a commit, 300 s for a query), which the consumers' handler deadline bounds."""
    return CountedAsyncClient(**_kwargs(project_id), faults=faults, deadline=deadline)


def request_path(uid: str, request_id: str) -> str:
    return f"{USERS}/{uid}/{PAYMENT_REQUESTS}/{request_id}"
