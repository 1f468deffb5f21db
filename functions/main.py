"""Fjordbank's Firebase functions: the edge between the app and the NATS cluster.

Thin: each function parses its trigger, calls a use case in fjordbank.service_layer and
translates errors. The shared `fjordbank` package is copied into this folder by the up
command and by `firebase deploy`'s predeploy hook, so the folder deploys on its own.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import logging
import os
import re
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

import firebase_admin
import flask
from firebase_functions import firestore_fn, https_fn, options, pubsub_fn
from google.cloud.firestore import SERVER_TIMESTAMP

from fjordbank.adapters import app_check
from fjordbank.adapters.documents import FirestoreDocuments
from fjordbank.adapters.firestore import EDGE_CALL_DEADLINE_S, is_transient, request_path, sync_client
from fjordbank.adapters.publisher import SyncPublisher
from fjordbank.adapters.pubsub import JOBS_TOPIC, PUSH_TOPIC, TopicPublisher
from fjordbank.adapters.push import sender_from_config
from fjordbank.adapters.sessions import FirebaseSessions
from fjordbank.config import functions_deploy_options, load_settings
from fjordbank.domain import reasons
from fjordbank.domain import standing_orders as order_terms
from fjordbank.domain.errors import Busy, DomainError
from fjordbank.domain.norway import today_in_norway
from fjordbank.errors import PublishError
from fjordbank.runtime import bodies, log_metrics, logs, redact, tracing
from fjordbank.service_layer import (
    accounts,
    cards,
    edge,
    insights,
    invoices,
    onboarding,
    push,
    push_tokens,
    ratelimits,
    sca,
    scheduled,
    seams,
    standing_orders,
)
from fjordbank.service_layer import sessions as session_records

# Region, runtime service account and the VPC connector to NATS: Terraform's outputs
# (functions_region, functions_service_account, vpc_connector), written into
# functions/.env.PROJECT by scripts/functions_env.py; tests/deploy/test_functions_manifest.py
# checks the manifest the SDK emits against them.
_deploy = functions_deploy_options()
options.set_global_options(
    region="europe-west1",
    memory=options.MemoryOption.MB_512,
    max_instances=50,
    service_account=_deploy.service_account,
    vpc_connector=_deploy.vpc_connector,
    vpc_connector_egress_settings=options.VpcEgressSetting(_deploy.vpc_egress) if _deploy.vpc_egress else None,
)
# JSON lines (fjordbank.runtime.logs): Cloud Logging reads their fields, and a line logged
# while a payment's span is current carries its trace id (fjordbank.runtime.tracing)
logs.setup("edge", "INFO")
redact.install()  # account, identity and card numbers masked in every log line
log = logging.getLogger("fjordbank.functions")

_lock = threading.Lock()
_deps: dict = {}

# Callables verify the caller's ID token through the default Firebase app. Credentials are
# resolved lazily; against the emulator suite none are needed (FIREBASE_AUTH_EMULATOR_HOST).
_settings = load_settings(identity="edge")
tracing.setup("edge", _settings)
if not firebase_admin._apps:
    # Auth and FCM calls bounded as the edge's Firestore calls are (the SDK's default: 120 s
    # for each, longer than a callable runs)
    firebase_admin.initialize_app(options={"projectId": _settings.project_id, "httpTimeout": EDGE_CALL_DEADLINE_S})

# App Check on every callable: in production the SDK verifies the token against Google's
# keys and refuses the call before the function runs. The emulator has no App Check
# service: there the SDK's verification checks the debug path's token (adapters.app_check),
# and `_caller` refuses a call without a verified app with the reason the app can act on.
# The edge's NATS password, client certificate, key and CA, from Secret Manager (secret IDs
# = these names: terraform/modules/topology nats_secret_ids["edge"]); each arrives as the
# environment variable of its name, the certificates as PEM text (adapters.nats_conn).
# Locally the up command writes them into functions/.secret.local.
NATS_SECRETS = ["FJB_NATS_PASSWORD", "FJB_NATS_CERT", "FJB_NATS_KEY", "FJB_NATS_CA"]
CALLABLE = {"enforce_app_check": not _settings.functions_emulator, "secrets": NATS_SECRETS}
UID = re.compile(r"(?!__.*__$)[A-Za-z0-9_-]{1,128}")  # a Firebase Auth uid as an operator names one: never a path
if _settings.functions_emulator:
    app_check.verify_with_debug_secret(secret=_settings.app_check_debug_secret, project_id=_settings.project_id)


def deps() -> tuple:
    """One Firestore client and one NATS connection per function instance, made on first use."""
    with _lock:
        if not _deps:
            # made whole, then kept: a failure midway (a settings error, NATS away) leaves
            # nothing half-made for the next call to take as made (found in review, 2026-12-07)
            settings = load_settings(identity="edge")
            # every call bounded, so a database that does not answer is `busy` within a
            # callable's time (adapters.firestore.EDGE_CALL_DEADLINE_S)
            db = sync_client(settings.project_id, deadline=EDGE_CALL_DEADLINE_S)
            documents = FirestoreDocuments(db)  # the use cases' ports on that client
            publisher = SyncPublisher(settings.nats, name="edge")
            # the scheduled jobs read whole collections: the client's own waits
            job_docs = FirestoreDocuments(sync_client(settings.project_id))
            made = {
                "db": db,
                "docs": documents,
                "publisher": publisher,
                "sessions": FirebaseSessions(settings.project_id),  # the default app (made above)
                "settings": settings,
                "collaborators": seams.bound(documents, publisher),
                "job_docs": job_docs,
                "job_collaborators": seams.bound(job_docs, publisher),
            }
            _deps.update(made)
        return _deps["db"], _deps["publisher"], _deps["settings"]


def jobs_topic() -> TopicPublisher:
    """The scheduled jobs' topic, for a run that hands the rest on (scheduled.continuation)."""
    deps()
    with _lock:
        if "jobs_topic" not in _deps:
            _deps["jobs_topic"] = TopicPublisher(_deps["settings"].project_id, JOBS_TOPIC)
        topic: TopicPublisher = _deps["jobs_topic"]
    return topic


def docs() -> FirestoreDocuments:
    """The document ports (fjordbank.service_layer.ports.Documents) on the instance's one
    Firestore client (see `deps`)."""
    deps()
    return _deps["docs"]


def collaborators() -> seams.Collaborators:
    """The use cases other use cases call, bound to the instance's documents and publisher
    (fjordbank.service_layer.seams)."""
    deps()
    return _deps["collaborators"]


def sanctions():
    """The sanctions list, parsed once per instance (FJB_SANCTIONS_LIST)."""
    _db, _publisher, settings = deps()
    if not settings.sanctions_list_configured and not settings.functions_emulator:
        # fail closed: screening against the fictional sample would approve everyone
        raise RuntimeError("FJB_SANCTIONS_LIST must name the real consolidated list outside the emulator")
    with _lock:
        if "sanctions" not in _deps:
            _deps["sanctions"] = onboarding.load_sanctions(settings.sanctions_list, docs=_deps["docs"])
        return _deps["sanctions"]


PUSH_MAX_AGE = dt.timedelta(
    hours=1
)  # news FCM could not take is tried again for this long (the rest: push.URGENT_MAX_AGE)
# No send is started this long into a run (on_push has 540 s): the ones not started count as
# not sent for now, recorded with the rest, before the platform would cut the run and record
# nothing (a message's 100 pushes to up to 10 devices each, 16 at a time, 8 s each when FCM is
# slow, take 500 s: found in review, 2026-12-06)
PUSH_BUDGET_S = 420.0
PAYMENT_TRIGGER = "on_payment_request"  # its `function` in the fjb_edge_requests log lines


def _payment_trace(trigger):
    """The payment's trace starts (or continues) here: a span around the whole trigger,
    the child of the ``traceparent`` the app wrote on its request if that is strictly valid
    (fjordbank.runtime.tracing.client_context; anything else starts a new trace), and
    the spans exported before the invocation ends (a serverless instance may get no CPU
    between invocations). edge.handle_payment_request records its outcome on the span and
    the trace id on the request document."""

    @functools.wraps(trigger)
    def run(event):
        body = (event.data.to_dict() or {}) if event.data is not None else {}
        parent = tracing.client_context(body.get("traceparent"))
        attrs = {"fjb.uid": event.params.get("uid"), "fjb.request_id": event.params.get("requestId")}
        attrs["fjb.client_trace"] = parent is not None
        try:
            with tracing.span("edge on_payment_request", parent, kind=tracing.SpanKind.CONSUMER, attrs=attrs):
                return trigger(event)
        finally:
            tracing.flush()

    return run


def _created(snapshot) -> dt.datetime | None:
    """The creation snapshot's update time, the version the edge's commit is conditional on
    (None if the event carries none: the edge then reads the document)."""
    when = snapshot.update_time
    if isinstance(when, dt.datetime) and when.year > 2000:
        return when
    log.warning("payment trigger without its creation's update time: the edge reads the request document")
    return None


@firestore_fn.on_document_created(document="users/{uid}/paymentRequests/{requestId}", secrets=NATS_SECRETS)
@_payment_trace
def on_payment_request(event: firestore_fn.Event[firestore_fn.DocumentSnapshot | None]) -> None:
    if event.data is None:
        return
    _db, publisher, settings = deps()
    uid, request_id = event.params["uid"], event.params["requestId"]
    try:
        status = edge.handle_payment_request(
            docs(),
            publisher,
            uid=uid,
            request_id=request_id,
            body=event.data.to_dict() or {},
            bank_regs=settings.bank_regs,
            sca_threshold=settings.sca_threshold,
            created=_created(event.data),
        )
    except PublishError:  # status "received": the due-payments job publishes it later
        log_metrics.edge_request(PAYMENT_TRIGGER, log_metrics.ERROR, "publish_pending")
        raise
    except Exception:
        log_metrics.edge_request(PAYMENT_TRIGGER, log_metrics.ERROR, log_metrics.INTERNAL)
        raise
    if status == "rejected":  # its reason is on the document (one read, on a refusal only)
        request = docs().get(request_path(uid, request_id))
        reason = (request.data if request else {}).get("reason") or {}
        log_metrics.edge_request(PAYMENT_TRIGGER, log_metrics.REFUSED, reason.get("code"))
    else:
        log_metrics.edge_request(PAYMENT_TRIGGER, log_metrics.ACCEPTED)


# Delivered again when it fails (the platform's retry, with backoff): a run that could not
# write the request's answer (the database away past the edge's own waits, a timeout, a
# crash) left the request with no status for good, which nothing else looks for, and the
# rules let the app neither change nor resend it under its id (found in review, 2026-12-06).
# The SDK deploys Python Firestore triggers with retry off and has no option for it; the
# manifest's flag is what `firebase deploy` turns into the trigger's retry policy. Every
# run is safe again (fjordbank.service_layer.edge: a handled request is answered from what
# it shows), and one delivered past `edge.LATE` is answered busy, never paid late. The
# emulator does not retry (firebase/firebase-tools#3738).
on_payment_request.__firebase_endpoint__.eventTrigger["retry"] = True  # type: ignore[attr-defined]


@firestore_fn.on_document_written(document="users/{uid}/settings/notifications")
def on_notification_settings(
    event: firestore_fn.Event[firestore_fn.Change[firestore_fn.DocumentSnapshot | None] | None],
) -> None:
    """A push token the customer's app registered is taken from the customer who had it
    before, and one it removed leaves the registry (fjordbank.service_layer.push_tokens):
    an app install has one token whoever is signed in on it."""
    change = event.data
    if change is None:
        return
    before, after = (s.to_dict() if s is not None and s.exists else None for s in (change.before, change.after))
    # the write's own time orders the claims (a retried run is late: push_tokens._claim)
    written_at = change.after.update_time if change.after is not None and change.after.exists else None
    push_tokens.settings_written(docs(), event.params["uid"], before, after, written_at=written_at)


# retried when it fails (see on_payment_request's): a claim not made left the token with the
# customer before; each run is safe again (a token claimed already is no longer new to them).
on_notification_settings.__firebase_endpoint__.eventTrigger["retry"] = True  # type: ignore[attr-defined]


# retry: a push FCM could not take for now (push.PushesNotSent) is sent again when Pub/Sub
# delivers its message again, for up to PUSH_MAX_AGE (news of a payment, not worth a day late),
# or push.URGENT_MAX_AGE when a push left is not news (a security notice, a failure to act on);
# the pushes of the message finished before are not sent again (push.record_done).
# The Functions emulator does not retry (firebase/firebase-tools#3738): there it is logged once.
# timeout: the sends of a message's pushes (pubsub.PUSH_BATCH, each to every device of its
# customer) run push.WORKERS at a time, each waiting up to the FCM client's 8 s; the
# platform's default of 60 s cut a run short when FCM was slow, recording nothing. One request
# a send: the FCM client does not retry (fjordbank.adapters.push.NO_RETRIES); its own retries
# slept FCM's Retry-After between tries, past this timeout (found in review, 2026-12-07).
@pubsub_fn.on_message_published(topic=PUSH_TOPIC, retry=True, timeout_sec=540)
def on_push(event: pubsub_fn.CloudEvent[pubsub_fn.MessagePublishedData]) -> None:
    """Send the pushes the notifier queued (a batch per message) through FCM (the local
    sink in development)."""
    began = time.monotonic()  # the send budget counts from here (the record's read included)
    message = event.data.message
    age = dt.datetime.now(dt.UTC) - message.publish_time
    done: set[str] = set()
    known = age < push.REDELIVERY_AGE  # whether the record of earlier deliveries was read (or none can be)
    try:
        try:
            # the retry record's read and the sender's set-up too: failing outside the
            # delivery they escaped the hour's give-up, and Pub/Sub delivered the message
            # again for a day (found in review, 2026-12-06)
            if not known:
                done = push.done_before(docs(), message.message_id)
                known = True
            _on_push(event, done, began)
        except push.PushesNotSent:
            raise
        except Exception as exc:
            log.exception("pushes not delivered")
            raise push.PushesNotSent({"error": 1}, set(done), urgent=_urgent_left(message, done)) from exc
    except push.PushesNotSent as exc:
        limit = exc.max_age(PUSH_MAX_AGE)
        if age <= limit:
            if known:  # unread, the record written now would wipe what earlier deliveries sent
                push.record_done(docs(), message.message_id, done | exc.done, published=message.publish_time)
            raise
        log.warning(
            "pushes given up: not sent in time", extra={"outcomes": exc.outcomes, "hours": limit.total_seconds() / 3600}
        )
        return
    if done:  # a retry that sent the rest: its record is no longer needed
        push.forget_done(docs(), message.message_id)


def _urgent_left(message: pubsub_fn.Message[Any], done: set[str]) -> bool:
    """Whether the message has a push left that is not news (push.urgent_left): retried for
    push.URGENT_MAX_AGE after a failure of ours too, not the hour news is."""
    try:
        return push.urgent_left(message.json, done)
    except ValueError:  # not JSON: dropped at its next delivery
        return False


def _on_push(event: pubsub_fn.CloudEvent[pubsub_fn.MessagePublishedData], done: set[str], began: float) -> None:
    _db, _publisher, settings = deps()
    with _lock:
        if "push_sender" not in _deps:  # (a failure here: the caller's, given up after the hour)
            _deps["push_sender"] = sender_from_config(settings.project_id, settings.fcm_sink_url)
    try:
        message = event.data.message.json or {}
    except ValueError:  # not JSON: no retry mends it, and this function's are retried (an hour)
        log.error("push message is not JSON: dropped", extra={"messageId": event.data.message.message_id})
        return
    items = message.get("pushes") if isinstance(message, dict) else None
    if not isinstance(items, list):
        push.deliver_batch(docs(), _deps["push_sender"], message, done=done)
        return
    # The whole message in one delivery (one read of its customers' settings, its sends in
    # one pool), then one span per payment's trace (the notifier put each payment's
    # traceparent on its push; the message's attributes carry the first) over it: delivered
    # one trace at a time, a message of 100 payments took 100 rounds, and a slow FCM (8 s a
    # send) had the run cut at its timeout after a few, the rest never reached (found in
    # review, 2026-12-06).
    fallback = (event.data.message.attributes or {}).get(tracing.TRACEPARENT)
    traces = []
    for item in items:
        traceparent = item.pop(tracing.TRACEPARENT, None) if isinstance(item, dict) else None
        traces.append(traceparent if isinstance(traceparent, str) else fallback)
    statuses: list[str | None] = [None] * len(items)
    started = time.time_ns()
    failure: push.PushesNotSent | None = None
    try:
        push.deliver_batch(
            docs(),
            _deps["push_sender"],
            {"pushes": items},
            done=done,
            statuses=statuses,
            budget_s=PUSH_BUDGET_S - (time.monotonic() - began),
        )
    except push.PushesNotSent as exc:
        failure = exc
    except Exception:  # a failure of ours (a read, a bug): tried again, given up after PUSH_MAX_AGE
        # it escaped before: nothing recorded, and Pub/Sub delivered the message again for
        # as long as it failed, never given up (found in review, 2026-12-06)
        log.exception("pushes not delivered", extra={"pushes": len(items)})
        failure = push.PushesNotSent({"error": len(items)}, set(done), urgent=push.urgent_left({"pushes": items}, done))
    finally:
        _push_spans(traces, statuses, started)
    if failure is not None:
        raise failure


def _push_spans(traces: list[str | None], statuses: list[str | None], started: int) -> None:
    """One "edge on_push" span per payment's trace, over the delivery its pushes shared,
    with their outcomes (`fjb.pushes.<status>`)."""
    groups: dict[str | None, list[str | None]] = {}
    for traceparent, status in zip(traces, statuses, strict=True):
        groups.setdefault(traceparent, []).append(status)
    try:
        for traceparent, group in groups.items():
            parent = tracing.extract({tracing.TRACEPARENT: traceparent}) if traceparent else None
            outcomes: dict[str, int] = {}
            for status in group:
                outcomes[status or "not_delivered"] = outcomes.get(status or "not_delivered", 0) + 1
            attrs = {"fjb.pushes": len(group), **{f"fjb.pushes.{k}": v for k, v in outcomes.items()}}
            span = tracing.start_span(
                "edge on_push", parent, kind=tracing.SpanKind.CONSUMER, attrs=attrs, start_ns=started
            )
            span.end()
    finally:
        tracing.flush()


# the hourly ledger audit reads the whole ledger: the longest timeout an event function has
# (9 min), and 2 GiB (it held about 2.2 kB per payment: 512 MiB ran out near 200,000
# payments; docs/capacity.md, section 5, says where this ends)
@pubsub_fn.on_message_published(
    topic=JOBS_TOPIC, secrets=NATS_SECRETS, timeout_sec=540, memory=options.MemoryOption.GB_2
)
@tracing.flushed  # each payment the job submits starts its own trace (edge.submit)
def on_scheduled_job(event: pubsub_fn.CloudEvent[pubsub_fn.MessagePublishedData]) -> None:
    """Scheduled jobs: Cloud Scheduler publishes {"job": NAME} (locally: bankctl jobs run). On the
    emulator a message may also set the job's clock and scope (scheduled.job_overrides: chaos
    runs and tests); anywhere else such a message is refused."""
    _db, publisher, settings = deps()
    message = event.data.message.json or {}
    job, run = str(message.get("job", "")), event.data.message.message_id
    try:
        overrides = scheduled.job_overrides(message, os.environ)
        result = scheduled.run_job(
            _deps["job_docs"],
            publisher,
            job,
            collaborators=_deps["job_collaborators"],
            bank_regs=settings.bank_regs,
            sanctions=sanctions,
            run_id=run,
            **overrides,
        )
    except Exception:
        # one line per run, ended either way, named by its Pub/Sub message (chaos's clock waits for it)
        log.exception("scheduled job failed", extra={"job": job, "run": run})
        raise
    log.info("scheduled job done", extra={"job": job, "run": run, "result": result})
    chain = message.get("chain", 0)
    follow = scheduled.continuation(job, result, scoped=bool(overrides), chain=chain if isinstance(chain, int) else 0)
    if follow is not None:
        try:
            continued = jobs_topic().publish_json_now(follow)
        except Exception:  # noqa: BLE001 - the next scheduled run takes the rest, as before
            log.warning(
                "the next run could not be queued; the next scheduled one goes on", extra={"job": job, "run": run}
            )
        else:
            log.info("the rest goes on in the next run at once", extra={"job": job, "run": run, "next": continued})


# ---- calibration (the Functions emulator only) ---------------------------------------------
CALIBRATION_TRIGGERS = "benchTriggers"  # backend-only (no rule lets a client near it)

if _settings.functions_emulator:
    # Defined only when the Functions emulator loads this module: a deploy never sees it.
    @firestore_fn.on_document_created(document=CALIBRATION_TRIGGERS + "/{docId}")
    def on_calibration_document(event: firestore_fn.Event[firestore_fn.DocumentSnapshot | None]) -> None:
        """The smallest observable Firestore trigger, the bench's yardstick for the payment
        trigger on the same machine (bench/calibrate.py): no read, one write (a server
        timestamp on the document that fired it)."""
        if event.data is not None:
            deps()[0].document(f"{CALIBRATION_TRIGGERS}/{event.params['docId']}").update({"seenAt": SERVER_TIMESTAMP})


# ---- callables: the app's synchronous operations ------------------------------------------


def endpoint(fields: Iterable[str], *, limit: str | None = None):
    """One shape for every callable: App Check, a signed-in caller, the request's fields
    (an object with only ``fields``: no mass assignment) and the caller's rate limit
    (``limit``), then the use case ``(req, uid, data) -> dict``. A domain refusal becomes
    an HttpsError with its reason; contention or a datastore that did not answer in time
    becomes RESOURCE_EXHAUSTED ``busy`` with ``retryAfter``, never a bare INTERNAL. Each
    call writes one fjb_edge_requests log line (fjordbank/runtime/log_metrics.py): accepted,
    refused with its reason, or error."""
    allowed = frozenset(fields)

    def wrap(use_case: Callable[[https_fn.CallableRequest, str, dict], dict]):
        name = use_case.__name__

        @functools.wraps(use_case)
        def handler(req: https_fn.CallableRequest) -> dict:
            try:
                uid, data = _caller(req, allowed, limit=limit)
                answer = use_case(req, uid, data)
            except DomainError as exc:
                log_metrics.edge_request(name, log_metrics.REFUSED, exc.code)
                raise _refused(exc) from exc
            except https_fn.HttpsError as exc:
                log_metrics.edge_request(name, log_metrics.REFUSED, _reason_of(exc))
                raise
            except Exception as exc:
                if not is_transient(exc):
                    log_metrics.edge_request(name, log_metrics.ERROR, log_metrics.INTERNAL)
                    raise
                log.warning("callable busy", extra={"function": name, "error": type(exc).__name__})
                busy = Busy()
                log_metrics.edge_request(name, log_metrics.REFUSED, busy.code)
                raise _refused(busy) from exc
            log_metrics.edge_request(name, log_metrics.ACCEPTED)
            return answer

        return _body_checked(https_fn.on_call(**CALLABLE)(handler), name)

    return wrap


# The largest body a callable reads (every callable's data is a few fields; a scanned
# invoice's text is the largest, well under this).
MAX_CALL_BODY = 64 * 1024
# Arrays and objects nested deeper than this are refused before any parse: the app's
# deepest body (a standing order with its confirmation) nests 3 levels.
MAX_CALL_DEPTH = 32


def _body_checked(on_call: Callable, name: str) -> Callable:
    """The SDK's callable, behind a check of the raw body: one that is not JSON, too deep
    (a RecursionError in the parser) or holds an integer literal past Python's digit limit
    made the SDK answer a bare HTTP 500 INTERNAL, before App Check and sign-in, and counted
    nowhere (found in review, 2026-12-06); so did a JSON scalar (``1``, ``true``, ``"data"``:
    the SDK looks for ``data`` in it). Such a body is answered INVALID_ARGUMENT
    ``invalid_request``, as the SDK answers a body without ``data``, and counted. So is a
    body that is not UTF-8: the SDK reads UTF-16 and UTF-32 JSON as well, in which a
    character's byte may be a quote to the depth count, and a deep body so hidden passed it
    and failed the SDK's parse with a bare 500 again (found in review, 2026-12-07); the app
    sends UTF-8 only, as RFC 8259 asks, and without a byte-order mark (which RFC 8259
    forbids adding: one is refused too)."""

    @functools.wraps(on_call)
    def checked(request):
        if request.method != "POST":  # a browser's CORS preflight (OPTIONS): the SDK answers it
            return on_call(request)
        body = request.get_data(cache=True)
        try:
            if len(body) > MAX_CALL_BODY:
                raise ValueError(f"the request is over {MAX_CALL_BODY} bytes")
            text = body.decode("utf-8")  # UnicodeDecodeError is a ValueError: refused
            if bodies.nesting_depth(body, stop_past=MAX_CALL_DEPTH) > MAX_CALL_DEPTH:
                # counted, not parsed: nesting just under what our parse could take still
                # failed the SDK's, some frames deeper, with a bare 500 (found in review)
                raise ValueError(f"the request nests deeper than {MAX_CALL_DEPTH}")
            # parsed as the text: json.loads of the bytes would take UTF-16 or UTF-32 again
            # (a UTF-16 body without its byte-order mark is valid UTF-8, with NULs the parse refuses)
            if not isinstance(json.loads(text or "null"), dict):  # a scalar: the SDK's check crashed on it
                raise ValueError("the request body is not a JSON object")
        except (ValueError, RecursionError) as exc:
            log.warning("callable body refused", extra={"function": name, "error": type(exc).__name__})
            log_metrics.edge_request(name, log_metrics.REFUSED, "invalid_request")
            error = {
                "status": "INVALID_ARGUMENT",
                "message": "the request body is not a JSON object the bank reads",
                "details": {"reason": "invalid_request"},
            }
            return flask.Response(json.dumps({"error": error}), status=400, mimetype="application/json")
        return on_call(request)

    return checked


def _caller(req: https_fn.CallableRequest, allowed: frozenset[str], *, limit: str | None) -> tuple[str, dict]:
    """The verified caller's uid and the request data, refused unless the app passed App
    Check, the caller is signed in, the data is an object with only ``allowed`` keys and
    the caller is within the rate limit of ``limit``."""
    if req.app is None:  # verified by the SDK (in the emulator, with the debug secret)
        raise https_fn.HttpsError(
            https_fn.FunctionsErrorCode.UNAUTHENTICATED, "App Check token missing or invalid", {"reason": "app_check"}
        )
    if req.auth is None:
        raise https_fn.HttpsError(https_fn.FunctionsErrorCode.UNAUTHENTICATED, "sign in first")
    # a session the bank ended is refused at once, not when its token expires (one read)
    session_records.check(docs(), req.auth.uid, (req.auth.token or {}).get("auth_time"))
    data = req.data if isinstance(req.data, dict) else None
    if data is None or set(data) - allowed:
        raise https_fn.HttpsError(
            https_fn.FunctionsErrorCode.INVALID_ARGUMENT,
            f"expected an object with only {sorted(allowed)}",
            {"reason": "invalid_request"},
        )
    if limit is not None:
        ratelimits.check(docs(), req.auth.uid, limit)
    return req.auth.uid, data


def _reason_of(exc: https_fn.HttpsError) -> str:
    """An HttpsError's reason code; one without (not signed in, not an operator) by its
    status in lower case (unauthenticated, permission_denied)."""
    details = exc.details if isinstance(exc.details, dict) else {}
    return str(details.get("reason") or exc.code.name.lower())


def _refused(exc: DomainError) -> https_fn.HttpsError:
    """A refusal with its reason code and the status the reasons catalogue gives it
    (fjordbank/domain/reasons.py, the README's table)."""
    details = {"reason": exc.code}
    if getattr(exc, "field", None):
        details["field"] = exc.field
    if getattr(exc, "retry_after", None) is not None:
        details["retryAfter"] = exc.retry_after
    if getattr(exc, "valid_after", None) is not None:
        details["validAfter"] = exc.valid_after  # session_ended: from when a sign-in is taken
    return https_fn.HttpsError(https_fn.FunctionsErrorCode[reasons.callable_status(exc.code)], exc.message, details)


@endpoint({"kind", "name", "requestId"}, limit="accounts")
def accounts_open(req: https_fn.CallableRequest, uid: str, data: dict) -> dict:
    """A new account; ``requestId`` (optional): the app's idempotency key, so a retry after
    a lost answer gets the account it opened, not a second one."""
    _db, publisher, settings = deps()
    number = accounts.open_account(
        docs(),
        publisher,
        uid,
        kind=data.get("kind"),
        name=data.get("name"),
        bank_reg=settings.bank_regs[0],
        request_id=data.get("requestId"),
    )
    return {"accountId": number}


@endpoint({"accountId", "name"}, limit="accounts")
def accounts_rename(req: https_fn.CallableRequest, uid: str, data: dict) -> dict:
    accounts.rename_account(docs(), uid, account_id=data.get("accountId"), name=data.get("name"))
    return {"ok": True}


@endpoint({"accountId"}, limit="accounts")
def accounts_close(req: https_fn.CallableRequest, uid: str, data: dict) -> dict:
    _db, publisher, _settings = deps()
    accounts.close_account(docs(), publisher, uid, account_id=data.get("accountId"))
    return {"ok": True}


@endpoint({"accountId", "toAccountId"}, limit="accounts")
def accounts_payout(req: https_fn.CallableRequest, uid: str, data: dict) -> dict:
    """What a closed account of the caller's was given since (a merchant's card refund),
    moved to one of their open accounts."""
    return accounts.pay_out(docs(), uid, account_id=data.get("accountId"), to_account_id=data.get("toAccountId"))


@endpoint(onboarding.rules.FIELDS, limit="onboarding")
def onboarding_submit(req: https_fn.CallableRequest, uid: str, data: dict) -> dict:
    """An application: name, nationalId, dateOfBirth, address, phone, email. Answers the
    decision (approved with the first account, review, or rejected with a reason)."""
    _db, publisher, settings = deps()
    return onboarding.submit(
        docs(),
        publisher,
        uid,
        data,
        sanctions=sanctions(),
        bank_reg=settings.bank_regs[0],
        allow_synthetic=settings.allow_synthetic_ids,
    )


@endpoint({"uid", "decision", "reason"})
def onboarding_decide(req: https_fn.CallableRequest, operator: str, data: dict) -> dict:
    """An operator approves or rejects an application in review (needs the admin claim),
    never their own (four eyes: onboarding.decide_review)."""
    if req.auth.token.get("admin") is not True:
        raise https_fn.HttpsError(https_fn.FunctionsErrorCode.PERMISSION_DENIED, "operators only")
    uid = data.get("uid")
    if data.get("decision") not in ("approve", "reject") or not isinstance(uid, str) or not UID.fullmatch(uid):
        raise https_fn.HttpsError(
            https_fn.FunctionsErrorCode.INVALID_ARGUMENT,
            "uid and decision approve|reject",
            {"reason": "invalid_request"},
        )
    _db, publisher, settings = deps()
    return onboarding.decide_review(
        docs(),
        publisher,
        data["uid"],
        approve=data["decision"] == "approve",
        operator=operator,
        reason=data.get("reason"),
        bank_reg=settings.bank_regs[0],
    )


@endpoint({"accountId", "requestId"}, limit="cards")
def cards_issue(req: https_fn.CallableRequest, uid: str, data: dict) -> dict:
    """A new card; ``requestId`` (optional): the app's idempotency key, so a retry after a
    lost answer gets the card it ordered, not a second one."""
    _db, publisher, _settings = deps()
    card_id = cards.issue_card(
        docs(), publisher, uid, account_id=data.get("accountId"), request_id=data.get("requestId")
    )
    return {"cardId": card_id}


@endpoint({"cardId", "frozen", "sca"}, limit="cards")
def cards_freeze(req: https_fn.CallableRequest, uid: str, data: dict) -> dict:
    """Freeze or unfreeze a card; unfreezing one needs ``sca``: the device's signature of
    "fjordbank-sca-card-unfreeze-v1|cardId" (fjordbank.domain.sca)."""
    _db, publisher, _settings = deps()
    frozen = cards.set_frozen(
        docs(), publisher, uid, card_id=data.get("cardId"), frozen=data.get("frozen"), sca=data.get("sca")
    )
    return {"status": frozen}


@endpoint({"cardId", "limits", "sca"}, limit="cards")
def cards_limits(req: https_fn.CallableRequest, uid: str, data: dict) -> dict:
    """Some of a card's limits; raising any needs ``sca``: the device's signature of
    "fjordbank-sca-card-limits-v1|cardId|<limits now>|<new limits>" (fjordbank.domain.sca)."""
    _db, publisher, _settings = deps()
    limits = cards.set_limits(
        docs(), publisher, uid, card_id=data.get("cardId"), limits=data.get("limits"), sca=data.get("sca")
    )
    return {"limits": limits}


@endpoint({"cardId", "reason"}, limit="cards")
def cards_replace(req: https_fn.CallableRequest, uid: str, data: dict) -> dict:
    _db, publisher, _settings = deps()
    new_id = cards.replace_card(docs(), publisher, uid, card_id=data.get("cardId"), reason=data.get("reason"))
    return {"cardId": new_id}


@endpoint({"keyId", "publicKey"}, limit="accounts")
def sca_register_key(req: https_fn.CallableRequest, uid: str, data: dict) -> dict:
    """The device's public key for strong customer authentication (ECDSA P-256, SPKI DER in
    base64), registered at onboarding, or after an operator reopened the enrolment."""
    _db, publisher, _settings = deps()
    key_id = sca.register_key(docs(), publisher, uid, key_id=data.get("keyId"), public_key=data.get("publicKey"))
    return {"keyId": key_id}


@endpoint({"keyId", "publicKey", "approval"}, limit="accounts")
def sca_add_device(req: https_fn.CallableRequest, uid: str, data: dict) -> dict:
    """Another device's key, approved by an enrolled one: ``approval`` is ``{keyId,
    signature}``, its signature over the new key (fjordbank.domain.sca.enrolment_challenge)."""
    _db, publisher, _settings = deps()
    key_id = sca.add_device(
        docs(),
        publisher,
        uid,
        key_id=data.get("keyId"),
        public_key=data.get("publicKey"),
        approval=data.get("approval"),
    )
    return {"keyId": key_id}


# no rate limit: a limit is the user's, whoever calls, and the session of a lost phone
# calling anything of the same limit once a second kept its owner's "sign out everywhere"
# refused for as long as it went on (found in review, 2026-12-07). A revoke costs one
# transaction on the caller's own keys, and the one that signs out everywhere ends the
# calling session too.
@endpoint({"keyId", "signOutEverywhere"})
def sca_revoke_key(req: https_fn.CallableRequest, uid: str, data: dict) -> dict:
    """One of the caller's device keys revoked for good (a lost or replaced phone); with
    ``signOutEverywhere: true`` (lost or stolen) every session of the caller's ends too."""
    _db, publisher, _settings = deps()
    return sca.revoke_key(
        docs(),
        publisher,
        uid,
        key_id=data.get("keyId"),
        sign_out=data.get("signOutEverywhere", False),
        sessions=_deps["sessions"],
    )


@endpoint({"uid", "reason", "keyId", "fingerprint"})
def sca_reopen_enrolment(req: https_fn.CallableRequest, operator: str, data: dict) -> dict:
    """An operator who proved a customer's identity outside the app revokes their device
    keys and lets the new device whose key id and fingerprint it shows enrol for 30
    minutes (needs the admin claim), never their own (four eyes: sca.reopen_enrolment)."""
    if req.auth.token.get("admin") is not True:
        raise https_fn.HttpsError(https_fn.FunctionsErrorCode.PERMISSION_DENIED, "operators only")
    uid = data.get("uid")
    if not isinstance(uid, str) or not UID.fullmatch(uid):
        raise https_fn.HttpsError(
            https_fn.FunctionsErrorCode.INVALID_ARGUMENT, "uid of the customer", {"reason": "invalid_request"}
        )
    _db, publisher, _settings = deps()
    return sca.reopen_enrolment(
        docs(),
        publisher,
        uid,
        operator=operator,
        reason=data.get("reason"),
        key_id=data.get("keyId"),
        fingerprint=data.get("fingerprint"),
        sessions=_deps["sessions"],
    )


@endpoint({"ocrLine", "fields"}, limit="invoices")
def invoices_scan(req: https_fn.CallableRequest, uid: str, data: dict) -> dict:
    """A payment draft from what the app's text recognition read on a giro: its OCR line
    (``ocrLine``) or its labelled fields (``fields``), with the customer's earlier payments
    of the same invoice (``paidBefore``). Nothing is stored or paid: the app shows the
    draft, and the customer pays it as any payment request."""
    if len(data) != 1:
        raise https_fn.HttpsError(
            https_fn.FunctionsErrorCode.INVALID_ARGUMENT, "give ocrLine or fields", {"reason": "invalid_request"}
        )
    return invoices.scan(docs(), uid, data, today=today_in_norway())


# ---- scheduled payments, standing orders, insights -------------------------------------------
@endpoint(order_terms.CREATE_FIELDS, limit="payments")
def standing_orders_create(req: https_fn.CallableRequest, uid: str, data: dict) -> dict:
    """A weekly or monthly payment from ``startDate`` until ``endDate`` (or cancelled);
    ``orderId`` is the app's idempotency key. Confirmed with ``sca`` like a payment."""
    _db, _publisher, settings = deps()
    order = standing_orders.create(
        docs(),
        uid,
        data,
        bank_regs=settings.bank_regs,
        check_sca=collaborators().check_sca,
        sca_threshold=settings.sca_threshold,
    )
    return standing_orders.public(order)


@endpoint(order_terms.CHANGE_FIELDS, limit="payments")
def standing_orders_update(req: https_fn.CallableRequest, uid: str, data: dict) -> dict:
    """Change an active order's ``amount``, ``endDate`` or ``nextDue`` before it runs."""
    _db, _publisher, settings = deps()
    changed = standing_orders.change(
        docs(), uid, data, check_sca=collaborators().check_sca, sca_threshold=settings.sca_threshold
    )
    return standing_orders.public(changed)


@endpoint({"orderId"}, limit="payments")
def standing_orders_cancel(req: https_fn.CallableRequest, uid: str, data: dict) -> dict:
    return standing_orders.public(standing_orders.cancel(docs(), uid, data.get("orderId")))


@endpoint({"requestId"}, limit="payments")
def payments_cancel_scheduled(req: https_fn.CallableRequest, uid: str, data: dict) -> dict:
    """Cancel a payment request that waits for its due date."""
    return standing_orders.cancel_scheduled(docs(), uid, data.get("requestId"))


@endpoint({"accountId", "transactionId", "category"}, limit="accounts")
def transactions_recategorise(req: https_fn.CallableRequest, uid: str, data: dict) -> dict:
    """The customer's category for a transaction's merchant: it sticks for that merchant."""
    return insights.recategorise(docs(), uid, data.get("accountId"), data.get("transactionId"), data.get("category"))


@endpoint({"merchantKey", "restore"}, limit="accounts")
def subscriptions_dismiss(req: https_fn.CallableRequest, uid: str, data: dict) -> dict:
    """ "Not a subscription": the detected subscription is no longer listed as one."""
    restore = data.get("restore")
    restore = False if restore is None else restore  # absent or null: a dismissal
    if type(restore) is not bool:  # "true", 1: taken as a dismissal, the opposite (found in review, 2026-12-07)
        raise insights.InsightsRefused("invalid_request", "restore is true or false", "restore")
    status = "active" if restore else "dismissed"
    return insights.set_subscription_status(docs(), uid, data.get("merchantKey"), status)
