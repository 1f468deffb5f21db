"""A trace per payment: W3C trace context end to end, OpenTelemetry spans, trace ids in logs.

How one payment's trace travels (a trace id is 32 hex digits, a span id 16):

* The app may write ``traceparent`` on its request document. It is untrusted input: only a
  strict version-00 value (``00-<32 hex>-<16 hex>-<2 hex>``, ids not all zero) is used,
  anything else is ignored and the edge starts a new trace, never an error. The client's
  sampled flag is ignored too: the bank decides what it records (below). The edge writes
  the trace id on the request document (``traceId``, a field only the backend writes).
* NATS: every payment event carries ``traceparent`` (and ``tracestate`` when there is one)
  in its message headers, injected from the span of the step that published it. The
  consumer runtime extracts it per message and makes one span per message handled; a
  message dead-lettered keeps its trace in the dead-letter headers, and ``bankctl dlq
  replay`` publishes it again with them, so the replay continues the same trace.
* Pub/Sub (the notifier's push batches): each push carries the ``traceparent`` of the
  payment it is about, and the message attributes the first push's, so the push function
  continues each payment's trace.

Spans: the edge's handling of a request (with a child per Firestore write of the request
document and one for the publish), one CONSUMER span per message a service handles
(consumer, subject, stream sequence, deliveries, outcome ack / nak / dead_lettered with the
reason), the clearing answer per payment, the push delivery per payment, and one span per
Firestore commit of a step. A commit covers a whole fetched batch (many payments in one
transaction): it is recorded as a child span in *each* message's trace, all with the
commit's start and end times and the batch size, rather than as one span linked to the
messages. Links are not followed by Cloud Trace's trace view nor by ``bankctl trace``; a
child in each trace shows, in the one payment's timeline, what that payment waited for.

Export (``FJB_TRACE_EXPORTER``):

* ``file`` (the local stack, the default outside Google Cloud): one JSON line per finished
  span in ``FJB_TRACE_DIR`` (``.stack/traces/``), a file per process
  (``<service>-<pid>.jsonl``), rotated at ``MAX_FILE_BYTES`` (one previous file kept),
  and the oldest files deleted when the folder passes ``MAX_DIR_BYTES``. ``bankctl
  trace`` reads these files.
* ``gcp`` (the default on Cloud Run / Knative / Cloud Functions, where ``K_SERVICE`` is
  set): Cloud Trace through ``opentelemetry-exporter-gcp-trace``. Chosen over OTLP/HTTP
  because the services and the functions then need nothing but their own identity (the
  Application Default Credentials and ``roles/cloudtrace.agent``): OTLP would need a
  collector beside every service and beside the functions (Google's OTLP endpoint wants
  Google auth headers the plain OTLP exporter does not make), and this bank has no
  collector to run. The exporter is imported only when chosen.
* ``none``: no spans are exported (trace context is still propagated and logged).

Tracing never fails or slows a payment: spans are queued to a ``BatchSpanProcessor``
(a bounded queue; when it is full spans are dropped, never waited for), exported on its
own thread; exporter errors are logged and the spans dropped. ``FJB_TRACE_SAMPLE_RATIO``
(default 1: every payment) samples by trace id, so every service makes the same decision
for a payment.

Logs: ``install_log_fields`` makes every log record made inside a span carry ``trace_id``
and ``span_id`` (the JSON formatter of fjordbank.runtime.logs prints them), and with the
``gcp`` exporter also Cloud Logging's ``logging.googleapis.com/trace``
(``projects/PROJECT/traces/TRACE_ID``), ``logging.googleapis.com/spanId`` and
``logging.googleapis.com/trace_sampled``, so Cloud Logging shows the logs under the trace.
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import os
import re
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextvars import ContextVar
from pathlib import Path
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar, overload

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.propagators.textmap import Getter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased

# Span and SpanKind are re-exported for callers (tracing.Span, tracing.SpanKind.CONSUMER)
from opentelemetry.trace import Span as Span
from opentelemetry.trace import SpanKind as SpanKind
from opentelemetry.trace import Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from fjordbank.runtime.redact import redact

if TYPE_CHECKING:
    from fjordbank.config import Settings

log = logging.getLogger(__name__)

TRACEPARENT = "traceparent"
TRACESTATE = "tracestate"
EXPORTERS = ("file", "gcp", "none")
MAX_FILE_BYTES = 20 * 1024 * 1024  # per process file; one previous file is kept
MAX_DIR_BYTES = 200 * 1024 * 1024  # the whole folder; oldest files go first
SCHEDULE_DELAY_MS = 500  # how long a finished span may wait before export
MAX_QUEUE = 8192  # spans waiting for export; more are dropped, never waited for
MAX_REASON = 500  # characters of a failure reason kept on a span
_CLIENT_TRACEPARENT = re.compile(r"00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})")
_PROPAGATOR = TraceContextTextMapPropagator()
_SCOPE = "fjordbank"

_provider: TracerProvider | None = None
_lock = threading.Lock()
_P = ParamSpec("_P")
_R = TypeVar("_R")


# ---- setup ---------------------------------------------------------------------------------------
def setup(service: str, settings: Settings, *, processor: SpanProcessor | None = None) -> TracerProvider:
    """The process's tracer provider (once per process: a second call returns the first),
    and trace fields on its log records. ``settings`` is a fjordbank.config.Settings;
    ``processor`` replaces the configured export (tests)."""
    global _provider
    with _lock:
        if _provider is not None:
            return _provider
        ratio = min(max(settings.trace_sample_ratio, 0.0), 1.0)
        sampler = ParentBased(root=TraceIdRatioBased(ratio), remote_parent_not_sampled=TraceIdRatioBased(ratio))
        provider = TracerProvider(resource=Resource.create({"service.name": service}), sampler=sampler)
        if processor is None:
            exporter = make_exporter(settings.trace_exporter, service=service, directory=settings.trace_dir)
            if exporter is not None:
                processor = BatchSpanProcessor(
                    exporter, max_queue_size=MAX_QUEUE, schedule_delay_millis=SCHEDULE_DELAY_MS
                )
        if processor is not None:
            provider.add_span_processor(processor)
        _provider = provider
    install_log_fields(settings.project_id, cloud=settings.trace_exporter == "gcp")
    return provider


def make_exporter(kind: str, *, service: str, directory: str | Path) -> SpanExporter | None:
    if kind == "file":
        return JsonLinesExporter(directory, service)
    if kind == "gcp":
        from opentelemetry.exporter.cloud_trace import CloudTraceSpanExporter  # only where it is used

        # the exporter's __init__ carries no annotations (the package is typed otherwise)
        return CloudTraceSpanExporter()  # type: ignore[no-untyped-call]
    if kind == "none":
        return None
    raise ValueError(f"unknown trace exporter {kind!r} (one of {', '.join(EXPORTERS)})")


def reset_for_tests() -> None:
    """Forget the provider (unit tests set up their own, in memory)."""
    global _provider
    with _lock:
        if _provider is not None:
            _provider.shutdown()
        _provider = None


def flush(timeout_seconds: float = 2.0) -> None:
    """Export what is queued, bounded (the functions call it as an invocation ends: a
    serverless instance may get no CPU between invocations to do it later)."""
    provider = _provider
    if provider is not None:
        try:
            provider.force_flush(int(timeout_seconds * 1000))
        except Exception:  # tracing never fails the caller
            log.warning("could not flush spans", exc_info=True)


def flushed(fn: Callable[_P, _R]) -> Callable[_P, _R]:
    """A function trigger whose spans are exported before the invocation ends (``flush``)."""

    @functools.wraps(fn)
    def run(*args: _P.args, **kwargs: _P.kwargs) -> _R:
        try:
            return fn(*args, **kwargs)
        finally:
            flush()

    return run


_made: tuple[TracerProvider, trace.Tracer] | None = None  # the provider and its tracer


def tracer() -> trace.Tracer:
    """The tracer of the process's provider, made once per provider: every message a consumer
    handles starts a span, and asking the provider for a tracer each time cost 3 % of a busy
    notifier's time (py-spy, 2026-12-01)."""
    global _made
    provider, made = _provider, _made
    if provider is None:
        return trace.get_tracer(_SCOPE)
    if made is None or made[0] is not provider:
        made = _made = (provider, provider.get_tracer(_SCOPE))
    return made[1]


# ---- the local exporter ------------------------------------------------------------------------
class JsonLinesExporter(SpanExporter):
    """One JSON object per finished span and line (``span_to_json``), appended to
    ``DIRECTORY/<service>-<pid>.jsonl``; rotated at ``max_file_bytes`` to
    ``<service>-<pid>.1.jsonl``; the folder's oldest files deleted past ``max_dir_bytes``."""

    def __init__(
        self,
        directory: str | Path,
        service: str,
        *,
        max_file_bytes: int = MAX_FILE_BYTES,
        max_dir_bytes: int = MAX_DIR_BYTES,
    ) -> None:
        self.directory = Path(directory)
        self.service = re.sub(r"[^A-Za-z0-9_-]", "_", service)
        self.max_file_bytes = max_file_bytes
        self.max_dir_bytes = max_dir_bytes
        self._lock = threading.Lock()
        self._warned_at = 0.0
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            prune(self.directory, max_dir_bytes)
        except OSError as exc:
            self._warn(exc)

    @property
    def path(self) -> Path:
        return self.directory / f"{self.service}-{os.getpid()}.jsonl"  # the pid now: after a fork, the child's

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        data = "".join(json.dumps(span_to_json(s), separators=(",", ":")) + "\n" for s in spans).encode()
        path = self.path
        try:
            with self._lock:
                size = path.stat().st_size if path.exists() else 0
                if size and size + len(data) > self.max_file_bytes:
                    os.replace(path, path.with_suffix(".1.jsonl"))
                    prune(self.directory, self.max_dir_bytes)
                with open(path, "ab") as fh:
                    fh.write(data)
        except OSError as exc:
            self._warn(exc)
            return SpanExportResult.FAILURE
        return SpanExportResult.SUCCESS

    def _warn(self, exc: OSError) -> None:
        now = time.monotonic()
        if now - self._warned_at > 60:  # at most once a minute: spans are dropped, the bank goes on
            self._warned_at = now
            log.warning("spans dropped: cannot write the trace file", extra={"error": repr(exc)})

    def shutdown(self) -> None:
        return None

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True


def prune(directory: Path, max_bytes: int) -> None:
    """Delete the oldest span files until the folder holds at most ``max_bytes``."""
    files = []
    for p in directory.glob("*.jsonl"):
        try:
            st = p.stat()
        except OSError:
            continue
        files.append((st.st_mtime, st.st_size, p))
    total = sum(size for _, size, _ in files)
    for _mtime, size, p in sorted(files):
        if total <= max_bytes:
            return
        with contextlib.suppress(OSError):
            p.unlink()
            total -= size


def span_to_json(span: ReadableSpan) -> dict[str, Any]:
    """The line format ``bankctl trace`` reads. Times are Unix nanoseconds."""
    ctx = span.get_span_context()
    if ctx is None:  # the SDK gives every span it finished a context
        raise ValueError(f"span {span.name!r} has no span context")
    parent = span.parent
    return {
        "traceId": format(ctx.trace_id, "032x"),
        "spanId": format(ctx.span_id, "016x"),
        "parentSpanId": format(parent.span_id, "016x") if parent is not None else None,
        "name": span.name,
        "kind": span.kind.name,
        "service": (span.resource.attributes.get("service.name") if span.resource else None),
        "startNs": span.start_time,
        "endNs": span.end_time,
        "status": span.status.status_code.name,
        "statusMessage": span.status.description,
        "attributes": dict(span.attributes or {}),
        "events": [
            {"name": e.name, "timeNs": e.timestamp, "attributes": dict(e.attributes or {})} for e in span.events
        ],
    }


# ---- context in carriers (NATS headers, Pub/Sub attributes) ------------------------------------
class _AnyCaseGetter(Getter[Mapping[str, str]]):
    """Header names in any case (a relay or a tool may have changed it)."""

    def get(self, carrier: Mapping[str, str], key: str) -> list[str] | None:
        for k, v in carrier.items():
            if k.lower() == key and isinstance(v, str):
                return [v]
        return None

    def keys(self, carrier: Mapping[str, str]) -> list[str]:
        return list(carrier)


_GETTER = _AnyCaseGetter()


def extract(carrier: Mapping[str, str] | None) -> Context:
    """The trace context a message carries (an empty context when none or malformed)."""
    if not carrier:
        return Context()
    try:
        return _PROPAGATOR.extract(carrier, getter=_GETTER)
    except Exception:  # noqa: BLE001 - a header is never worth a failed message
        return Context()


def inject(ctx: Context | None = None) -> dict[str, str]:
    """``traceparent`` (+ ``tracestate``) for ``ctx`` (default: the current context); an
    empty dict when there is no valid span in it."""
    carrier: dict[str, str] = {}
    if ctx is None or trace.get_current_span(ctx).get_span_context().is_valid:
        _PROPAGATOR.inject(carrier, context=ctx)
    return carrier


def current_span() -> trace.Span:
    return trace.get_current_span()


def span_in(ctx: Context | None) -> trace.Span:
    """The span a context holds (a non-recording invalid one when none)."""
    return trace.get_current_span(ctx)


@overload
def context_of(span: trace.Span) -> Context: ...
@overload
def context_of(span: None) -> None: ...
def context_of(span: trace.Span | None) -> Context | None:
    return trace.set_span_in_context(span) if span is not None else None


def traceparent_of(ctx: Context | trace.Span | None) -> str | None:
    if isinstance(ctx, trace.Span):
        ctx = trace.set_span_in_context(ctx)
    return inject(ctx).get(TRACEPARENT) if ctx is not None else None


def trace_id_of(ctx: Context | trace.Span | None) -> str | None:
    """The 32 hex digits of the trace, or None outside any trace."""
    span = ctx if isinstance(ctx, trace.Span) else trace.get_current_span(ctx)
    sc = span.get_span_context()
    return format(sc.trace_id, "032x") if sc.is_valid else None


def client_context(value: object) -> Context | None:
    """The context of a ``traceparent`` the app wrote, or None unless it is strictly valid
    (version 00, lower-case hex, nothing around it, ids not all zero). Its flags are
    dropped: the bank's own sampler decides what is recorded."""
    if not isinstance(value, str) or len(value) != 55:
        return None
    m = _CLIENT_TRACEPARENT.fullmatch(value)
    if m is None:
        return None
    trace_id, span_id = int(m.group(1), 16), int(m.group(2), 16)
    if not trace_id or not span_id:
        return None
    sc = trace.SpanContext(trace_id, span_id, is_remote=True, trace_flags=trace.TraceFlags(0))
    return trace.set_span_in_context(trace.NonRecordingSpan(sc))


# ---- spans --------------------------------------------------------------------------------------
def clean(value: object) -> Any:
    """An attribute value: strings masked (fjordbank.runtime.redact), then bounded. Cut
    first, a number across the cut kept too few digits to be masked, and the rest of it
    (a check digit, a Luhn digit) could be worked out (found in review, 2026-12-07)."""
    if isinstance(value, bool | int | float):
        return value
    return redact(value if isinstance(value, str) else str(value))[:MAX_REASON]


def attributes(values: Mapping[str, object]) -> dict[str, Any]:
    return {k: clean(v) for k, v in values.items() if v is not None}


def start_span(
    name: str,
    parent: Context | None = None,
    *,
    kind: SpanKind = SpanKind.INTERNAL,
    attrs: Mapping[str, object] | None = None,
    start_ns: int | None = None,
) -> trace.Span:
    """A span (not made current); ``parent`` None starts a new trace."""
    return tracer().start_span(
        name, context=parent or Context(), kind=kind, attributes=attributes(attrs or {}), start_time=start_ns
    )


@contextlib.contextmanager
def span(
    name: str,
    parent: Context | None = None,
    *,
    kind: SpanKind = SpanKind.INTERNAL,
    attrs: Mapping[str, object] | None = None,
) -> Iterator[trace.Span]:
    """A span made current for the block (a child of the current span unless ``parent``);
    an exception marks it ERROR and propagates."""
    s = tracer().start_span(name, context=parent, kind=kind, attributes=attributes(attrs or {}))
    with trace.use_span(s, end_on_exit=True, record_exception=False, set_status_on_exception=False):
        try:
            yield s
        except BaseException as exc:
            fail(s, f"{type(exc).__name__}: {exc}")
            raise


def use(s: trace.Span | None) -> contextlib.AbstractContextManager[trace.Span | None]:
    """Make ``s`` current for a block without ending it (e.g. to log under a message's span)."""
    if s is None:
        return contextlib.nullcontext()
    return trace.use_span(s, end_on_exit=False, record_exception=False, set_status_on_exception=False)


def fail(s: trace.Span, reason: str) -> None:
    s.set_status(Status(StatusCode.ERROR, clean(reason)))


def set_attributes(s: trace.Span | None, values: Mapping[str, object]) -> None:
    if s is not None and s.is_recording():
        s.set_attributes(attributes(values))


def add_to_list(s: trace.Span | None, key: str, value: str) -> None:
    """Append ``value`` to a string-list attribute (e.g. the subjects a step published)."""
    if s is None or not s.is_recording():
        return
    current = list((getattr(s, "attributes", None) or {}).get(key, ()))
    if value not in current:
        s.set_attribute(key, [*current, clean(value)])


@contextlib.contextmanager
def commit(operation: str, parents: Iterable[Context | None], **attrs: object) -> Iterator[None]:
    """Time one Firestore commit (a transaction with its retries) that serves several
    messages, and record it as a child span ``firestore OPERATION`` of each distinct parent
    (see the module docstring), with the commit's times, the batch size and, if it raised,
    the error. Nothing is recorded for parents outside any trace."""
    distinct: dict[tuple[int, int], Context] = {}
    count = 0
    for ctx in parents:
        count += 1
        if ctx is None:
            continue
        sc = trace.get_current_span(ctx).get_span_context()
        if sc.is_valid:
            distinct.setdefault((sc.trace_id, sc.span_id), ctx)
    start = time.time_ns()
    error: str | None = None
    try:
        yield
    except BaseException as exc:
        error = f"{type(exc).__name__}: {exc}"
        raise
    finally:
        end = time.time_ns()
        values = {"db.system": "firestore", "fjb.operation": operation, "fjb.batch_size": count, **attrs}
        for ctx in distinct.values():
            s = start_span(f"firestore {operation}", ctx, kind=SpanKind.CLIENT, attrs=values, start_ns=start)
            if error is not None:
                fail(s, error)
            s.end(end_time=end)


# ---- the batch being handled: which message each outgoing event came from -----------------------
# A batch handler publishes each payment's next step with the trace of the message it came
# from. decode_batch remembers, per payment id, the context of the message it decoded, for the
# rest of the handler's task (the runtime awaits the handler in its worker task, so this is
# one batch's), and events.publish and the notifier look it up there.
_PARENTS: ContextVar[dict[str, Context] | None] = ContextVar("fjb_trace_parents", default=None)


def begin_batch() -> None:
    _PARENTS.set({})


def remember(key: str, ctx: Context | None) -> None:
    parents = _PARENTS.get()
    if parents is None:
        parents = {}
        _PARENTS.set(parents)
    if ctx is not None:
        parents.setdefault(key, ctx)


def parent_of(key: str | None) -> Context | None:
    parents = _PARENTS.get()
    return parents.get(key) if parents is not None and key is not None else None


def batch_contexts() -> list[Context]:
    """The contexts decode_batch remembered for the batch in hand (one per payment)."""
    return list((_PARENTS.get() or {}).values())


# ---- log records ---------------------------------------------------------------------------------
_log_fields: dict[str, object] = {}


def install_log_fields(project_id: str, *, cloud: bool) -> None:
    """Every log record made while a span is current carries ``trace_id`` and ``span_id``
    (and with ``cloud`` Cloud Logging's trace fields). A record factory, not a handler
    filter, so it holds whatever handlers and formatters the process sets up later."""
    _log_fields.update(project_id=project_id, cloud=cloud)
    factory = logging.getLogRecordFactory()
    if getattr(factory, "fjb_trace", False):
        return

    def make(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = factory(*args, **kwargs)
        try:
            sc = trace.get_current_span().get_span_context()
        except Exception:  # noqa: BLE001 - a log line never fails
            return record
        if sc.is_valid:
            trace_id, span_id = format(sc.trace_id, "032x"), format(sc.span_id, "016x")
            record.trace_id = trace_id
            record.span_id = span_id
            if _log_fields.get("cloud"):
                project = _log_fields["project_id"]
                setattr(record, "logging.googleapis.com/trace", f"projects/{project}/traces/{trace_id}")
                setattr(record, "logging.googleapis.com/spanId", span_id)
                setattr(record, "logging.googleapis.com/trace_sampled", sc.trace_flags.sampled)
        return record

    make.fjb_trace = True  # type: ignore[attr-defined]
    logging.setLogRecordFactory(make)
