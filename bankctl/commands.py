"""The commands of bankctl (thin: each calls the shared package or bankctl's clients).

Each takes the parsed arguments (with ``args.config``, read once by main) and returns the
exit code; a failure raises `CommandError`, which main prints as one line.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import re
import sys

from bankctl import errors
from bankctl.config import Config
from bankctl.errors import CommandError, require_reachable, step, talking_to
from fjordbank.service_layer.scheduled import JOBS

JOB_NAMES = JOBS  # the scheduled jobs `bankctl jobs run` can start


def emit_json(data) -> None:
    print(json.dumps(data, indent=2, ensure_ascii=False, default=_json_default))


def _json_default(value):
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    return str(value)


def _err(*parts: object) -> None:
    print(*parts, file=sys.stderr, flush=True)


def _bank(args):
    from bankctl.customers import Bank

    return Bank(args.config)


def _firestore(config: Config):
    from bankctl.config import apply_environ
    from fjordbank.adapters.firestore import sync_client

    require_reachable(errors.FIRESTORE, config.firestore_host)
    apply_environ(config)
    return sync_client(config.project_id)


def _google_errors(what: str, config: Config):
    from clientkit.session import firestore_errors

    return firestore_errors(what, config.firestore_host)


# ---- audit, balances -------------------------------------------------------------------------
def audit(args) -> int:
    """Check conservation, balances against the replay of postings, holds, available
    balances and that every completed payment is posted exactly once. Exit 1 on any problem."""
    from fjordbank.adapters.documents import FirestoreDocuments
    from fjordbank.service_layer.audit import SNAPSHOT_LAG, audit_ledger

    # one moment's snapshot, as the scheduled audit reads it: collection after collection
    # while payments commit shows problems that are not there (a runbook runs it live)
    now = dt.datetime.now(dt.UTC)
    with _google_errors("reading the ledger", args.config):
        report = audit_ledger(
            FirestoreDocuments(_firestore(args.config)), clock=lambda: now, read_time=now - SNAPSHOT_LAG
        )
    if report.accounts == 0:  # every bank has its internal accounts: this is not the ledger
        raise CommandError(
            f"no accounts in project {args.config.project_id} at {args.config.firestore_host}: "
            "is this the bank's project (FJB_PROJECT_ID)?"
        )
    if args.json:
        emit_json(
            {
                "ok": report.ok,
                "accounts": report.accounts,
                "postings": report.postings,
                "payments": report.payments,
                "holds": report.holds,
                "totalBalance": report.total_balance,
                "problems": report.problems,
            }
        )
    else:
        print(report.render())
    return 0 if report.ok else 1


def migrate(args) -> int:
    """Bring documents written by earlier versions up to what this version relies on
    (fjordbank/service_layer/migrations.py). Each migration is idempotent and recorded in
    ops/migrations when done, and not run again unless asked (--force); `make up` runs
    this, and a deployment runs the same (python -m fjordbank.runtime.migrate) once the
    version's functions are deployed."""
    from fjordbank.runtime import migrate as migration

    db = _firestore(args.config)
    with _google_errors("migrating the documents", args.config):
        done = migration.run(db, migration.said, force=args.force)
    if args.json:
        emit_json(done)
    else:
        for name, result in done.items():
            before = result.get("doneBefore")
            print(f"{name}: done before" if before else f"{name}: done, {result['written']} documents written")
    return 0


def balances(args) -> int:
    """Balance, held and available amount of each account, in kroner."""
    from fjordbank.adapters.firestore import ACCOUNTS
    from fjordbank.domain.money import Money

    numbers = []
    for given in args.accounts:  # (a '/' reached the client's path check: a traceback)
        number = _account_number(given)
        if number is None:
            raise CommandError(f"{given!r} is no account number (11 digits, dots allowed)")
        numbers.append(number)
    db = _firestore(args.config)
    rows = []
    with _google_errors("reading the accounts", args.config):
        for account in numbers:
            snap = db.collection(ACCOUNTS).document(account).get()
            if not snap.exists:
                raise CommandError(f"no account {account}")
            rows.append(snap.to_dict())
    if args.json:
        emit_json(
            [
                {k: d.get(k) for k in ("accountId", "ownerUid", "name", "status", "balance", "held", "available")}
                for d in rows
            ]
        )
        return 0
    for d in rows:
        print(
            f"{d['accountId']}  {d.get('status', '?'):<6}  balance {Money.nok(d['balance']).format_nok():>16}  "
            f"held {Money.nok(d.get('held', 0)).format_nok():>14}  "
            f"available {Money.nok(d.get('available', 0)).format_nok():>16}"
        )
    return 0


# ---- trace -------------------------------------------------------------------------------------
def trace(args) -> int:
    """One payment's timeline from its trace: each step (the edge, every delivery to a
    service, the other bank's answer, the push) with its time, duration, delivery attempt
    and outcome, the Firestore commits under it, and the end: the final status, where the
    payment waits now, or why it stopped (dead-lettered, rejected). ID is a payment id, a
    request id or UID/REQUEST_ID. It reads the request document and the local stack's span
    files (FJB_TRACE_DIR); see bankctl/trace.py."""
    from bankctl import trace as timeline
    from fjordbank.adapters.firestore import request_path
    from fjordbank.domain.payments import REQUEST_ID_PATTERN, payment_id_for

    config = args.config
    directory = config.trace_dir or config.state_dir / "traces"
    ident = args.id.strip()
    uid = request_id = payment_id = None
    db = _firestore(config)
    with _google_errors("reading the payment request", config):
        if "/" in ident:
            uid, _, request_id = ident.partition("/")
        elif timeline.PAYMENT_ID.fullmatch(ident):
            payment_id = ident
            uid, request_id = _payment_owner(db, directory, ident)
        else:
            request_id = ident
            uid, payment_id = timeline.find_request(directory, ident)
            if uid is None:
                raise CommandError(f"no trace names request {ident} in {directory}: give UID/{ident} or the payment id")
        if request_id is not None and not REQUEST_ID_PATTERN.fullmatch(request_id or ""):
            raise CommandError(f"{request_id!r} is not a request id")
        request = None
        if uid and request_id:
            payment_id = payment_id or payment_id_for(uid, request_id)
            snap = db.document(request_path(uid, request_id)).get()
            request = snap.to_dict() if snap.exists else None
    trace_ids = [request["traceId"]] if request and isinstance(request.get("traceId"), str) else []
    spans = timeline.spans_of_payment(directory, payment_id, trace_ids)
    if request is None and not spans:
        raise CommandError(f"no payment request and no trace found for {ident}")
    result = timeline.build(payment_id, request, spans, uid=uid, request_id=request_id)
    if args.json:
        emit_json(result)
    else:
        print(timeline.render(result))
    return 0


def _payment_owner(db, directory, payment_id: str) -> tuple[str | None, str | None]:
    """(uid, request id) of a payment: from the ledger's record, the request naming it, or
    the traces. A payment from another bank has no request (its trace only)."""
    from bankctl import trace as timeline
    from fjordbank.adapters.firestore import LEDGER_PAYMENTS, PAYMENT_REQUESTS
    from fjordbank.domain.payments import INCOMING

    record = db.collection(LEDGER_PAYMENTS).document(payment_id).get()
    data = (record.to_dict() or {}) if record.exists else {}
    if data.get("kind") == INCOMING:
        return data.get("uid"), None
    if data.get("uid"):
        return data.get("uid"), data.get("requestId")
    found = list(db.collection_group(PAYMENT_REQUESTS).where("paymentId", "==", payment_id).limit(1).stream())
    if found:
        return found[0].reference.parent.parent.id, found[0].id
    return timeline.find_payment(directory, payment_id)


# ---- NATS: dead letters ----------------------------------------------------------------------
def _nats(config: Config, coro_fn):
    """Run ``coro_fn(nc)`` with an admin connection; one-line errors when NATS is away."""
    from fjordbank.adapters import nats_conn
    from fjordbank.config import load_settings

    settings = load_settings({**os.environ, **config.stack.nats_env("admin")})

    async def run():
        nc = await nats_conn.connect(settings.nats, name="bankctl", max_reconnect_attempts=2)
        try:
            return await coro_fn(nc)
        finally:
            await nc.close()

    with talking_to(errors.NATS, config.stack_settings.nats_urls):
        return asyncio.run(run())


def dlq(args) -> int:
    """Show each dead-lettered message with its consumer, reason and deliveries (a message with
    more than one letter, from a dead-lettering tried again, counted once)."""
    from fjordbank import topology
    from fjordbank.runtime.dead_letters import Marks, ReplayRefused, message_of, read_marks

    names = sorted(c.durable for c in topology.CONSUMERS)
    if args.consumer and args.consumer not in names:  # else an empty list that says nothing is wrong
        raise CommandError(f"--consumer {args.consumer!r} is no consumer; one of: {', '.join(names)}")
    subject = topology.dlq_subject(args.consumer) if args.consumer else "dlq.>"

    async def read(nc) -> tuple[list, Marks]:
        from fjordbank.adapters.jetstream_read import ReadCut, read_to_the_end

        js = nc.jetstream()
        try:
            marks = await read_marks(js)
            # a read cut short is an error, not the end: a connection lost midway printed
            # part of the list and its count as the whole (found in review, 2026-12-06)
            return await read_to_the_end(js, subject, stream=topology.STREAM_DLQ), marks
        except ReplayRefused as exc:
            raise CommandError(str(exc)) from exc
        except ReadCut as exc:
            raise CommandError(f"the dead letters could not be read to the end: {exc}; run it again") from None

    messages, marks = _nats(args.config, read)
    rows = []
    first: dict[str, int] = {}  # a message's first letter listed (a dead-lettering tried again stores another)
    for msg in messages:
        h = msg.headers or {}
        sequence = msg.metadata.sequence.stream
        message = message_of(msg.subject or "", h)
        earlier = first.setdefault(message, sequence) if message is not None else sequence
        rows.append(
            {
                "sequence": sequence,
                "subject": msg.subject,
                "originalSubject": h.get("Fjb-Original-Subject"),
                "originalSequence": h.get("Fjb-Original-Sequence"),
                "deliveries": h.get("Fjb-Deliveries"),
                "reason": h.get("Fjb-Reason"),
                "replayed": marks.of(sequence, message),  # None, or when, where and how often
                "letterOf": earlier if earlier != sequence else None,  # another letter of that one's message
            }
        )
    if args.json:
        emit_json(rows)
        return 0
    for r in rows:
        done = r["replayed"]
        print(
            f"#{r['sequence']} {r['subject']} from {r['originalSubject']} "
            f"seq {r['originalSequence']} after {r['deliveries']} deliveries: {r['reason']}"
            + (f" (another letter of #{r['letterOf']}'s message)" if r["letterOf"] is not None else "")
            + (
                f" [replayed {done.get('times')}x, last at {done.get('at')}"
                + (f" by {done['by']}: {done.get('note')}" if done.get("by") else "")
                + "]"
                if done
                else ""
            )
        )
    letters = [r for r in rows if r["letterOf"] is None]  # a message counted once
    waiting = sum(r["replayed"] is None for r in letters)
    more = len(rows) - len(letters)
    print(
        f"{len(letters)} dead-lettered message(s), {waiting} not replayed"
        + (f"; {more} more letter(s) of one of them" if more else "")
    )
    return 0


def operator_name(by: str) -> str:
    """Who decides, as the record keeps it: given by the operator (``--by``), since the
    machine's user name said nothing in a container ("operator") and anyone could set it
    (found in review, 2026-12-06)."""
    name = " ".join(by.split())
    if not name or len(name) > 100 or not name.isprintable():
        raise CommandError("--by names who decides (1-100 printable characters)")
    return name


def dlq_replay(args) -> int:
    """Publish a dead-lettered message again on the subject it came from, once its cause is
    mended, and mark it replayed with who asked and why (`dlq list` shows it). A letter replayed before is refused
    unless --again; either is safe, since every service answers a step it has applied from
    its records. Only on a subject the letter's consumer takes (fjordbank.runtime.dead_letters)."""
    from fjordbank.runtime.dead_letters import ReplayRefused, replay

    async def again(nc):
        try:
            return await replay(nc.jetstream(), args.sequence, by=args.by, note=args.note, again=args.again)
        except ReplayRefused as exc:
            raise CommandError(str(exc)) from exc

    done = _nats(args.config, again)
    print(done.said(args.sequence), file=sys.stdout if done.marked else sys.stderr)
    return 0


# ---- scheduled jobs --------------------------------------------------------------------------
def run_job(args) -> int:
    """Publish {"job": NAME} on the scheduled-jobs topic: the on_scheduled_job function runs it
    (in production Cloud Scheduler publishes the same message on its schedule). --now and
    --customer set the job's clock and scope, which only the emulator accepts
    (fjordbank.service_layer.scheduled.job_overrides)."""
    import datetime as dt

    from google.api_core import exceptions

    from bankctl.config import apply_environ
    from fjordbank.adapters.pubsub import JOBS_TOPIC, TopicPublisher

    config = args.config
    apply_environ(config)
    require_reachable(errors.PUBSUB, config.pubsub_host)
    message: dict = {"job": args.job}
    if getattr(args, "now", None):
        try:
            now = dt.datetime.fromisoformat(args.now.replace("Z", "+00:00"))
        except ValueError:
            raise CommandError(f"--now {args.now!r} is not an ISO 8601 instant") from None
        if now.tzinfo is None:
            raise CommandError("--now needs its offset (e.g. Z or +01:00)")
        message["now"] = now.isoformat()
    if getattr(args, "customer", None):
        message["uids"] = list(args.customer)
    topic = TopicPublisher(config.project_id, JOBS_TOPIC)
    with step(f"queueing job {args.job}"), talking_to(errors.PUBSUB, config.pubsub_host):
        try:
            topic.ensure_topic()
            message_id = asyncio.run(topic.publish_json(message))
        except exceptions.GoogleAPICallError as exc:
            if errors.transport_error(exc) is not None:
                raise
            raise CommandError(f"the pubsub emulator refused it: {exc.message}") from None
    print(f"queued job {args.job} (message {message_id})")
    return 0


def list_jobs(args) -> int:
    """The scheduled jobs (fjordbank/service_layer/scheduled.py)."""
    if args.json:
        emit_json(list(JOB_NAMES))
    else:
        print("\n".join(JOB_NAMES))
    return 0


# ---- onboarding reviews -----------------------------------------------------------------------
def reviews(args) -> int:
    """Onboarding applications waiting for an operator: list them, approve or reject one.
    Approving opens the customer's first account; both push the result to the customer.
    ``release`` frees the identity number a rejected application holds, so that the
    number's holder can apply (someone else applied with it)."""
    from fjordbank.adapters.documents import FirestoreDocuments
    from fjordbank.adapters.publisher import SyncPublisher
    from fjordbank.config import load_settings
    from fjordbank.domain.onboarding import OnboardingRefused
    from fjordbank.service_layer import onboarding

    config = args.config
    db = FirestoreDocuments(_firestore(config))
    with _google_errors("reading the reviews", config):
        if args.action == "list":
            pending = onboarding.pending_reviews(db)
            if args.json:
                emit_json(pending)
                return 0
            for item in pending:
                matches = ", ".join(f"{m['entity_id']} ({m['alias']}, {m['score']:.2f})" for m in item["screening"])
                print(f"{item['uid']}  {item['name']}  {item['nationalIdMasked']}  possible match: {matches or '-'}")
            # a full page is cut short: say so (it read as all of them: found in review, 2026-12-06)
            more = " (the first; more wait: decide these first)" if len(pending) >= onboarding.REVIEWS_LISTED else ""
            print(f"{len(pending)} application(s) in review{more}")
            return 0
        if not re.fullmatch(r"[A-Za-z0-9_-]{1,128}", args.uid):  # a document id, never a path
            raise CommandError(f"{args.uid!r} is no customer id (letters, digits, '-' and '_')")
        if args.action == "release":
            try:
                onboarding.release_identity(
                    db, args.uid, operator=f"bankctl:{operator_name(args.by)}", reason=args.reason
                )
            except OnboardingRefused as exc:
                raise CommandError(f"{exc.code}: {exc.message}") from exc
            print(f"{args.uid}: its identity number is free for its holder to apply")
            return 0
        settings = load_settings({**os.environ, **config.stack.nats_env("admin")})
        with talking_to(errors.NATS, config.stack_settings.nats_urls):
            publisher = SyncPublisher(settings.nats, name="bankctl")
        try:
            result = onboarding.decide_review(
                db,
                publisher,
                args.uid,
                approve=args.action == "approve",
                operator=f"bankctl:{operator_name(args.by)}",
                reason=args.reason,
                bank_reg=settings.bank_regs[0],
            )
        except OnboardingRefused as exc:
            raise CommandError(f"{exc.code}: {exc.message}") from exc
        finally:
            publisher.close()
    account = f", first account {result['accountId']}" if result.get("accountId") else ""
    # the decision is committed with its event in the outbox; one NATS did not take stays
    # there for the relay-outbox job (onboarding.decide_review does not raise for it)
    print(f"{args.uid}: {result['status']}{account}")
    return 0


# ---- devices ---------------------------------------------------------------------------------
def devices(args) -> int:
    """A customer's device keys for strong customer authentication. A customer who lost
    every device is let enrol a new one after the bank proved who they are (in production
    BankID or a branch; the reason says which): ``reopen`` revokes every key they have and
    lets ``sca_register_key`` enrol, for 30 minutes, the one key whose id and fingerprint
    the customer's new device shows (the web app's Devices screen)."""
    from fjordbank.adapters.documents import FirestoreDocuments
    from fjordbank.adapters.publisher import SyncPublisher
    from fjordbank.adapters.sessions import FirebaseSessions
    from fjordbank.config import load_settings
    from fjordbank.domain.sca import Enrolment, ScaRefused
    from fjordbank.service_layer import sca

    if not re.fullmatch(r"[A-Za-z0-9_-]{1,128}", args.uid):  # a document id, never a path
        raise CommandError(f"{args.uid!r} is no customer id (letters, digits, '-' and '_')")
    config = args.config
    db = FirestoreDocuments(_firestore(config))
    with _google_errors("reading the devices", config):
        if args.action == "reopen":
            settings = load_settings({**os.environ, **config.stack.nats_env("admin")})
            with talking_to(errors.NATS, config.stack_settings.nats_urls):
                publisher = SyncPublisher(settings.nats, name="bankctl")
            try:
                # the customer's security notice is committed with the change in the outbox;
                # one NATS did not take is published by the relay-outbox job
                result = sca.reopen_enrolment(
                    db,
                    publisher,
                    args.uid,
                    operator=f"bankctl:{operator_name(args.by)}",
                    reason=args.reason,
                    key_id=args.key,
                    fingerprint=args.fingerprint,
                    sessions=FirebaseSessions(config.project_id),
                )
            except ScaRefused as exc:
                raise CommandError(f"{exc.code}: {exc.message}") from exc
            finally:
                publisher.close()
            if args.json:
                emit_json(result)
            else:
                print(
                    f"{args.uid}: {len(result['revoked'])} key(s) revoked; the device with key {result['keyId']} "
                    f"({result['fingerprint']}) may enrol in the next {result['minutes']} minutes; "
                    "every session of theirs is signed out"
                )
                if not result["noticePublished"]:
                    print("the customer's notice of the reset waits in the outbox (NATS did not take it now)")
            return 0
        keys = db.query(sca.keys_collection(args.uid), limit=50)
        enrolment = db.get(f"{sca.SCA_ENROLMENTS}/{args.uid}")
    state = Enrolment.of(None if enrolment is None else enrolment.data)
    listed = {
        "uid": args.uid,
        "keys": [
            {"keyId": k.id, "createdAt": k.data.get("createdAt"), "approvedBy": k.data.get("approvedBy")} for k in keys
        ],
        "revoked": sorted(state.revoked) if state else [],
        "reopenedAt": state.reopened_at if state else None,
        "expectedKey": state.expected[0] if state and state.expected else None,
    }
    if args.json:
        emit_json(listed)
        return 0
    for key in listed["keys"]:
        print(
            f"{key['keyId']}  enrolled {key['createdAt']}"
            + (f"  approved by {key['approvedBy']}" if key["approvedBy"] else "")
        )
    print(
        f"{len(listed['keys'])} device key(s), {len(listed['revoked'])} revoked"
        + (f"; reopened at {listed['reopenedAt']} for key {listed['expectedKey']}" if listed["reopenedAt"] else "")
    )
    return 0


# ---- customers -------------------------------------------------------------------------------
def customers_create(args) -> int:
    """Make customers through the real onboarding path: an Auth user with e-mail and
    password, a device key for strong customer authentication (sca_register_key, kept in
    the stack's state directory so `bankctl pay` can confirm payments), an application
    with a synthetic identity number (onboarding_submit) and an opening deposit through
    the ledger's admin deposit path."""
    from bankctl.customers import kroner, parse_amount
    from bankctl.load import FIRST_NAMES, LAST_NAMES
    from clientkit.ids import unique

    if args.count < 1:
        raise CommandError("--count must be at least 1")
    if args.count > 1 and args.email:
        raise CommandError("--email names one customer: leave out --count")
    deposit = parse_amount(args.deposit, allow_zero=True)
    bank = _bank(args)
    made = []
    for i in range(args.count):
        name = args.name or f"{FIRST_NAMES[i % len(FIRST_NAMES)]} {LAST_NAMES[(i * 7) % len(LAST_NAMES)]}"
        email = args.email or f"{name.split()[0].lower()}.{unique('')}@fjordbank.example"
        with step(f"onboarding customer {i + 1} of {args.count}"):
            m = bank.ensure_customer(name=name, email=email, password=args.password, deposit=deposit)
        made.append(m)
        if not args.json:
            account = f"account {m.account}" if m.account else "no account"
            print(
                f"{m.uid}  {m.name}  {m.email}  password {m.password}  {m.status}  {account}  "
                f"deposit {kroner(m.deposited)}"
            )
    if args.json:
        emit_json([m.to_json() for m in made])
    not_approved = [m for m in made if m.status != "approved"]
    if not_approved and not args.json:
        _err(f"note: {len(not_approved)} application(s) {not_approved[0].status}: see `bankctl reviews list`")
    return 0


def customers_list(args) -> int:
    """Customers, newest application first: uid, name, e-mail, status, first account."""
    bank = _bank(args)
    rows = bank.admin.customers(limit=args.limit)
    if args.json:
        emit_json(
            [
                {k: r.get(k) for k in ("uid", "name", "email", "status", "firstAccountId", "appliedAt", "reason")}
                for r in rows
            ]
        )
        return 0
    for r in rows:
        print(
            f"{r['uid']}  {r.get('status', '?'):<8}  {r.get('name', '')}  {r.get('email', '')}  "
            f"{r.get('firstAccountId') or '-'}"
        )
    print(f"{len(rows)} customer(s)")
    return 0


# ---- pay ---------------------------------------------------------------------------------------
def _account_number(text: str) -> str | None:
    digits = text.replace(".", "").replace(" ", "")
    return digits if digits.isdigit() and len(digits) == 11 else None


def _payee_account(bank, to: str) -> str:
    """An account number as given, or the first open account of the customer named."""
    to_account = _account_number(to)
    if to_account is not None:
        return to_account
    payee = bank.admin.resolve_customer(to, bank.auth)
    payee_accounts = [a["accountId"] for a in bank.admin.accounts_of(payee) if a.get("status") == "open"]
    if not payee_accounts:
        raise CommandError(f"{to} has no open account")
    return payee_accounts[0]


def receive(args) -> int:
    """Money from another bank: the clearing house's pacs.008 for it, delivered into the local
    clearing channel (as simulators.counterparty.send does), then followed in the ledger until
    the bank credited it or sent it back (a closed account, no such account: a pacs.004 to the
    paying bank), or held it for sanctions review (the payer's name like a listed one: `bankctl
    held`). The payee is an account number, or a customer (uid, e-mail: their first open
    account)."""
    import time

    from fjordbank.adapters.firestore import LEDGER_PAYMENTS
    from fjordbank.domain.errors import DomainError
    from fjordbank.domain.money import Money
    from fjordbank.service_layer.incoming import HELD, return_name, return_path
    from simulators.counterparty import send

    to_account = _account_number(args.to) or _payee_account(_bank(args), args.to)
    try:
        credit = send.Credit(
            to_account=to_account,
            amount=Money.parse_nok(args.amount).minor,
            payer_name=args.from_name,
            payer_account=args.from_account.replace(".", "").replace(" ", ""),
            message=args.message,
            kid=args.kid,
        )
        batch = send.batch_of([credit], now=dt.datetime.now(dt.UTC))
    except DomainError as exc:
        raise CommandError(f"not sent: {exc.message}") from None
    channel = args.config.stack_settings.clearing_dir
    send.deliver(channel, batch)
    payment_id = batch.transfers[0].payment_id
    result = {"paymentId": payment_id, "toAccount": to_account, "amount": credit.amount, "status": "delivered"}
    if not args.no_wait:
        db = _firestore(args.config)
        deadline = time.monotonic() + args.timeout
        returned = channel / "delivered" / return_name(payment_id)
        with _google_errors("following the payment", args.config):
            while time.monotonic() < deadline:
                snap = db.collection(LEDGER_PAYMENTS).document(payment_id).get()
                status = (snap.to_dict() or {}).get("status") if snap.exists else None
                if status == "completed" or (returned.exists() and returned.stat().st_size > 0):
                    result["status"] = "credited" if status == "completed" else "sent back"
                    result["reason"] = (snap.to_dict() or {}).get("steps", {}).get("arrived", {}).get("reason")
                    break
                record = db.document(return_path(payment_id)).get().to_dict() or {}
                if record.get("status") == HELD:  # the payer's name is like a listed one
                    result["status"] = "held for sanctions review"
                    result["reason"] = record.get("reason")
                    break
                time.sleep(0.25)
            else:
                raise CommandError(f"{payment_id} not credited or sent back in {args.timeout:g} s: is the stack up?")
    if args.json:
        emit_json(result)
    else:
        reason = f" ({result['reason']})" if result.get("reason") else ""
        print(f"{payment_id}  {Money.nok(credit.amount).format_nok()} to {to_account}: {result['status']}{reason}")
    return 0 if result["status"] in ("credited", "delivered") else 1


def _held_docs(config: Config):
    """The documents on the stack's Firestore, for a coroutine (an async client is made in
    the loop that uses it)."""
    from bankctl.config import apply_environ
    from fjordbank.adapters.documents import AsyncFirestoreDocuments
    from fjordbank.adapters.firestore import async_client

    require_reachable(errors.FIRESTORE, config.firestore_host)
    apply_environ(config)
    return AsyncFirestoreDocuments(async_client(config.project_id))


def held(args) -> int:
    """Payments from other banks held for sanctions review: the payer's name is equal or
    similar to a listed person's or enterprise's, so the credit was neither made nor sent
    back (the payee is not told). A compliance officer releases a false match (credited
    within seconds, as it would have been) or freezes a true one; in production
    `python -m fjordbank.runtime.held` does the same with the officer's credentials."""
    from bankctl.customers import kroner
    from fjordbank.runtime import held as module

    async def read() -> list:
        return await module.listed(_held_docs(args.config), args.status)

    with _google_errors("reading the held payments", args.config):
        rows = asyncio.run(read())
    if args.json:
        emit_json(rows)
        return 0
    for r in rows:
        like = (
            ", ".join(f"{m.get('entityId')} {m.get('alias')!r} ({m.get('score')})" for m in r["matches"])
            or "no list entry (a name with nothing to screen)"
        )
        decided = f"  {r['decidedBy']}: {r['note']}" if r.get("decidedBy") else ""
        print(f"{r['paymentId']}  {kroner(r['amount'] or 0)} to {r['toAccount'] or '-'} from {r['payerName']!r}")
        print(f"    like {like}; held {r['heldAt']}{decided}")
    print(f"{len(rows)} payment(s) {args.status}")
    return 0


def held_decide(args) -> int:
    """Release (a false match) or freeze (a true match) one held payment, once; who and why
    are kept with it. A release is then followed until it is credited or sent back."""
    import time

    from fjordbank.adapters.firestore import LEDGER_PAYMENTS
    from fjordbank.runtime import held as module
    from fjordbank.service_layer import incoming

    async def decide() -> dict:
        try:
            return await module.decide(
                _held_docs(args.config), args.action, args.payment_id, by=operator_name(args.by), note=args.note
            )
        except incoming.HeldDecisionRefused as exc:
            raise CommandError(f"refused: {exc.message}") from None

    with _google_errors("recording the decision", args.config):
        result = asyncio.run(decide())
    if args.action == "release" and not args.no_wait:
        db = _firestore(args.config)
        deadline = time.monotonic() + args.timeout
        with _google_errors("following the payment", args.config):
            while time.monotonic() < deadline:
                record = db.document(incoming.return_path(args.payment_id)).get().to_dict() or {}
                ledger = db.collection(LEDGER_PAYMENTS).document(args.payment_id).get()
                if ledger.exists and (ledger.to_dict() or {}).get("status") == "completed":
                    result["status"] = "credited"
                    break
                if record.get("status") == incoming.DELIVERED:
                    result["status"] = "sent back"
                    break
                time.sleep(0.25)
            else:
                raise CommandError(
                    f"{args.payment_id} released but not credited in {args.timeout:g} s: is the stack up?"
                )
    if args.json:
        emit_json(result)
    else:
        print(f"{args.payment_id}: {result['status']} ({args.by})")
    return 0


def sanctions(args) -> int:
    """Customers the sanctions list names since they were taken on: the rescreen-customers
    job (hourly; `bankctl jobs run rescreen-customers`) screens every customer again against
    each new list. A name and birth date on the list freeze the customer's accounts at once
    (status frozen: nothing paid from them, money still taken in); a name like a listed one
    is an open alert, nothing frozen. A compliance officer decides; in production `python -m
    fjordbank.runtime.sanctions_alerts` does the same with the officer's credentials."""
    from fjordbank.adapters.documents import FirestoreDocuments
    from fjordbank.runtime import sanctions_alerts as module

    with _google_errors("reading the sanctions alerts", args.config):
        rows = module.listed(FirestoreDocuments(_firestore(args.config)), args.status)
    if args.json:
        emit_json(rows)
        return 0
    for r in rows:
        like = ", ".join(f"{m.get('entity_id')} {m.get('alias')!r} ({m.get('verdict')})" for m in r["matches"])
        frozen = f"; frozen: {', '.join(r['frozenAccounts'])}" if r["frozenAccounts"] else ""
        last = r["decisions"][-1] if r["decisions"] else None
        decided = f"  {last.get('by')}: {last.get('note')}" if last else ""
        print(f"{r['uid']}  {r['status']}  like {like}{frozen}")
        print(f"    raised {r['raisedAt']}{decided}  (version {r['version']}: --seen)")
    # a full page is cut short: say so (it read as all of them: found in review, 2026-12-06)
    from fjordbank.service_layer.rescreening import ALERTS_LISTED

    shown = f"the oldest {len(rows)}" if len(rows) >= ALERTS_LISTED else str(len(rows))
    print(f"{shown} alert(s) {args.status}")
    return 0


def sanctions_decide(args) -> int:
    """Freeze (it is the listed person) or clear (not, or delisted) a customer's alert; who
    and why are kept with it. The customer: a uid or an e-mail."""
    from fjordbank.adapters.documents import FirestoreDocuments
    from fjordbank.domain.rescreening import AlertRefused
    from fjordbank.runtime import sanctions_alerts as module

    bank = _bank(args)
    uid = bank.admin.resolve_customer(args.customer, bank.auth)
    with _google_errors("recording the decision", args.config):
        try:
            result = module.decide(
                FirestoreDocuments(_firestore(args.config)),
                args.action,
                uid,
                by=args.by,
                note=args.note,
                seen=args.seen,
            )
        except AlertRefused as exc:
            raise CommandError(f"refused: {exc.message}") from None
    if args.json:
        emit_json(result)
    else:
        accounts = ", ".join(result["frozenAccounts"]) or "none"
        print(f"{uid}: {result['status']} ({args.by}); accounts frozen: {accounts}")
    return 0


def payees(args) -> int:
    """Payees at other banks whose name is like one on the sanctions list: screening refuses
    every payment to such a payee (reason payee_in_review; nothing is paid) and raises an
    alert per payee (its account and the name as typed), with the list's entries found and
    who tried to pay it. A compliance officer clears it (not the listed party: payments pass
    again, until the list says something new of it) or confirms it (every payment refused as
    blocked_counterparty); in production `python -m fjordbank.runtime.payee_alerts` does the
    same with the officer's credentials."""
    from fjordbank.adapters.documents import FirestoreDocuments
    from fjordbank.runtime import payee_alerts as module

    with _google_errors("reading the payee alerts", args.config):
        rows = module.listed(FirestoreDocuments(_firestore(args.config)), args.status)
    if args.json:
        emit_json(rows)
        return 0
    for r in rows:
        like = ", ".join(f"{m.get('entity_id')} {m.get('alias')!r} ({m.get('score')})" for m in r["matches"])
        last = r["decisions"][-1] if r["decisions"] else None
        decided = f"  {last.get('by')}: {last.get('note')}" if last else ""
        print(f"{r['key']}  {r['status']}  {r['toAccount']} {r['payeeName']!r}  like {like or 'no name to screen'}")
        count = f"{r['attempts']}+" if r["attemptsCapped"] else str(r["attempts"])
        tried = f"{count} payment(s) to the account refused from {len(r['payers'])} customer(s)"
        print(f"    {tried}, raised {r['raisedAt']}{decided}  (version {r['version']}: --seen)")
    shown = f"the oldest {len(rows)}" if len(rows) >= module.LISTED else str(len(rows))
    print(f"{shown} payee alert(s) {args.status}")
    return 0


def payees_decide(args) -> int:
    """Clear an open payee alert (not the listed party) or a confirmed one (a mistake),
    confirm an open one (the listed party), or lift a confirmed one (the party delisted:
    listed again, it is refused again), by its key as `payees list` shows it; who and why
    are kept with it."""
    from fjordbank.adapters.documents import FirestoreDocuments
    from fjordbank.domain.rescreening import AlertRefused
    from fjordbank.runtime import payee_alerts as module

    with _google_errors("recording the decision", args.config):
        try:
            result = module.decide(
                FirestoreDocuments(_firestore(args.config)),
                args.action,
                args.key,
                by=args.by,
                note=args.note,
                seen=args.seen,
            )
        except AlertRefused as exc:
            raise CommandError(f"refused: {exc.message}") from None
    if args.json:
        emit_json(result)
    else:
        print(f"{args.key}: {result['status']} ({args.by})")
    return 0


def pay(args) -> int:
    """Pay as the customer, through the app's surface: the payment request is written to
    users/{uid}/paymentRequests/{id} with the customer's ID token (the security rules apply),
    confirmed with the device key when the app would ask (a payee not paid before, or above
    the SCA threshold), then followed to its final status."""
    import time

    from bankctl.customers import kroner, parse_amount

    amount = parse_amount(args.amount)
    bank = _bank(args)
    uid = bank.admin.resolve_customer(args.customer, bank.auth)
    to_account = _payee_account(bank, args.to)
    session = bank.session(uid)
    own = [a["accountId"] for a in session.accounts() if a.get("status") == "open"]
    from_account = _account_number(args.from_account) if args.from_account else (own[0] if own else None)
    if from_account is None:
        raise CommandError(
            f"customer {uid} has no open account" if not args.from_account else f"bad account {args.from_account!r}"
        )
    confirm = not args.no_sca and session.needs_sca(to_account, amount, own)
    if confirm and session.device is None:
        raise CommandError(
            f"no device key for {uid} in {args.config.devices_dir} (only customers made by bankctl "
            "here can confirm payments; pass --no-sca to send it unconfirmed)"
        )
    started = time.monotonic()
    request_id = session.request_payment(
        from_account=from_account,
        to_account=to_account,
        amount=amount,
        message=args.message,
        kid=args.kid,
        due_date=args.due,
        payee_name=args.payee_name,
        confirm=confirm,
        request_id=args.request_id,
    )
    if not args.json:
        sca_note = ", confirmed on the device" if confirm else ""
        print(f"request {request_id}: {from_account} -> {to_account}, {kroner(amount)}{sca_note}")
    if args.no_wait:
        if args.json:
            emit_json({"requestId": request_id, "uid": uid})
        return 0

    def show(status: str, _doc: dict) -> None:
        if not args.json:
            print(f"  {status:<10} +{time.monotonic() - started:.2f} s", flush=True)

    from fjordbank.domain.payments import TERMINAL

    try:
        result = session.wait(
            request_id, timeout=args.timeout, until=frozenset({*TERMINAL, "scheduled"}), on_status=show, started=started
        )
    finally:
        session.close()
    doc = result.doc
    reason = doc.get("reason") if isinstance(doc.get("reason"), dict) else {}
    if args.json:
        emit_json(
            {
                "requestId": request_id,
                "uid": uid,
                "fromAccount": from_account,
                "toAccount": to_account,
                "amount": amount,
                "status": result.status,
                "reason": reason.get("code"),
                "message": reason.get("message"),
                "paymentId": doc.get("paymentId"),
                "seconds": round(result.seconds, 3),
            }
        )
    elif result.status == "scheduled":
        print(f"scheduled for {args.due} (the submit-due-payments job pays it then)")
    elif result.status == "completed":
        print(f"completed in {result.seconds:.2f} s")
    if result.status in ("rejected", "failed"):
        raise CommandError(f"payment {result.status}: {reason.get('code')}: {reason.get('message')}")
    return 0


# ---- ledger ------------------------------------------------------------------------------------
def economy(args) -> int:
    """A customer's "my economy": income, spending per category and savings per month, each
    month against the one before, and whether the figures the insights service keeps equal
    a recomputation from the ledger's records (exit 1 if not)."""
    from bankctl.customers import kroner
    from fjordbank.adapters.documents import FirestoreDocuments
    from fjordbank.domain.economy import compare, previous_month
    from fjordbank.service_layer.insights import economy_differences, stored_economy

    bank = _bank(args)
    admin = bank.admin
    uid = admin.resolve_customer(args.customer, bank.auth)
    with admin.errors("reading my economy"):
        docs = FirestoreDocuments(admin.db)
        months = stored_economy(docs, uid)
        problems = economy_differences(docs, uid)
    ordered = sorted(months)[-args.months :]
    if args.json:
        emit_json(
            {
                "uid": uid,
                "months": [
                    {**months[m].to_dict(), "change": compare(months[m], months.get(previous_month(m)))}
                    for m in ordered
                ],
                "equalsRecomputation": not problems,
                "problems": problems,
            }
        )
        return 1 if problems else 0
    if not ordered:
        print("no bookings yet")
    for m in ordered:
        month, change = months[m], compare(months[m], months.get(previous_month(m)))
        print(
            f"{m}  income {kroner(month.income):>14}  spent {kroner(month.spent):>14}  "
            f"saved {kroner(month.savings):>14}  (vs {change['previousMonth']}: saved {kroner(change['savings'])})"
        )
        for category, amount in sorted(month.spending.items(), key=lambda kv: -kv[1]):
            print(f"    {category:<14} {kroner(amount):>14}  ({kroner(change['spending'][category])})")
    print("equals a recomputation from the ledger" if not problems else "DIFFERS from a recomputation:")
    for problem in problems:
        print(f"  {problem}")
    return 1 if problems else 0


def ledger(args) -> int:
    """A customer's accounts with balance, held and available amount, and each account's
    transaction feed (what the app shows), newest first. With --postings also the ledger's
    postings on the accounts (this scans the payments' ledger records and the postings
    collection: slow on a large ledger)."""
    from bankctl.customers import kroner
    from fjordbank.domain.norway import OSLO

    bank = _bank(args)
    admin = bank.admin
    uid = admin.resolve_customer(args.customer, bank.auth)
    customer = admin.customer(uid) or {}
    accounts = admin.accounts_of(uid)
    feeds = {a["accountId"]: admin.feed(a["accountId"], args.limit) for a in accounts}
    postings = _postings(admin, {a["accountId"] for a in accounts}, args.limit) if args.postings else {}
    if args.json:
        emit_json(
            {
                "uid": uid,
                "name": customer.get("name"),
                "email": customer.get("email"),
                "status": customer.get("status"),
                "accounts": [
                    {
                        **{
                            k: a.get(k) for k in ("accountId", "name", "type", "status", "balance", "held", "available")
                        },
                        "transactions": feeds[a["accountId"]],
                        **({"postings": postings.get(a["accountId"], [])} if args.postings else {}),
                    }
                    for a in accounts
                ],
            }
        )
        return 0
    print(
        f"{customer.get('name', '(not onboarded)')}  {customer.get('email', '')}  "
        f"uid {uid}  {customer.get('status', '')}{'  FROZEN (sanctions)' if customer.get('frozen') else ''}"
    )
    if not accounts:
        print("no accounts")
    for a in accounts:
        print()
        print(
            f"{a['accountId']}  {a.get('name', '')}  ({a.get('status', '?')})  balance {kroner(a.get('balance', 0))}  "
            f"held {kroner(a.get('held', 0))}  available {kroner(a.get('available', 0))}"
        )
        feed = feeds[a["accountId"]]
        if not feed:
            print("  no transactions")
        for t in feed:
            when = t.get("createdAt") or t.get("updatedAt")
            stamp = when.astimezone(OSLO).strftime("%Y-%m-%d %H:%M:%S") if isinstance(when, dt.datetime) else "?"
            if t.get("kind") == "card":
                other = f"{t.get('merchantName')} (MCC {t.get('mcc')}, card *{t.get('cardLast4')})"
            else:
                arrow = "to" if t.get("direction") == "out" else "from"
                other = f"{arrow} {t.get('counterpartyAccount')}"
            text = f"KID {t['kid']}" if t.get("kid") else (f'"{t["message"]}"' if t.get("message") else "")
            print(
                f"  {stamp}  {t.get('status', '?'):<9} {kroner(t.get('amount', 0)):>15}  "
                f"{t.get('category') or '-':<14} {other}  {text}".rstrip()
            )
        for p in postings.get(a["accountId"], []):
            print(f"  posting {p['postingId']}  {kroner(p['amount']):>15}  step {p['step']}")
    return 0


def _postings(admin, accounts: set[str], limit: int) -> dict[str, list[dict]]:
    """The postings on ``accounts``, newest first (at most ``limit`` each): the payments' and
    card captures' (kept on their ledger and authorisation records) and the postings
    collection's (deposits, and those booked before postings moved onto the records)."""
    from fjordbank.adapters.firestore import CARD_AUTHORIZATIONS, LEDGER_PAYMENTS, POSTINGS

    out: dict[str, list[dict]] = {a: [] for a in accounts}
    with admin.errors("reading the postings"):
        for snap in admin.db.collection(POSTINGS).select(["entries", "step", "createdAt", "paymentId"]).stream():
            data = snap.to_dict()
            _posting_rows(out, snap.id, data, data.get("createdAt"))
        for collection in (LEDGER_PAYMENTS, CARD_AUTHORIZATIONS):
            for snap in admin.db.collection(collection).select(["postings"]).stream():
                for posting in (snap.to_dict().get("postings") or {}).values():
                    at = dt.datetime.fromisoformat(posting["postedAt"]) if posting.get("postedAt") else None
                    _posting_rows(out, posting.get("postingId"), posting, at)
    epoch = dt.datetime.min.replace(tzinfo=dt.UTC)
    for rows in out.values():
        rows.sort(key=lambda p: p["createdAt"] or epoch, reverse=True)
        del rows[limit:]
    return out


def _posting_rows(out: dict[str, list[dict]], posting_id: str | None, d: dict, at: dt.datetime | None) -> None:
    """One row per entry of the posting ``d`` on an account of ``out``."""
    for entry in d.get("entries", []):
        if entry.get("account") in out:
            out[entry["account"]].append(
                {
                    "postingId": posting_id,
                    "paymentId": d.get("paymentId"),
                    "step": d.get("step"),
                    "amount": entry["amount"],
                    "createdAt": at,
                }
            )


# ---- load and demo ---------------------------------------------------------------------------
def load(args) -> int:
    """Generate load through the app's surface: N payment requests from M new customers
    (onboarded through the real path and funded), at most C unfinished at a time, each
    followed to its final status. Progress on stderr (a bar on a terminal), then a summary:
    counts per final status, throughput, p50/p95/p99 time to final status; then the ledger
    audit. Exit 1 if the audit finds a problem or a payment did not finish."""
    from bankctl.customers import parse_amount
    from bankctl.load import LoadRun, render, run_load
    from fjordbank.adapters.documents import FirestoreDocuments
    from fjordbank.service_layer.audit import audit_ledger

    if args.payments < 1 or args.customers < 2 or args.concurrency < 1:
        raise CommandError("need --payments >= 1, --customers >= 2 and --concurrency >= 1")
    if not 0 <= args.external <= 100:
        raise CommandError("--external is a percentage from 0 to 100")
    bank = _bank(args)
    run = LoadRun(
        payments=args.payments,
        customers=args.customers,
        concurrency=args.concurrency,
        max_amount=parse_amount(args.max_amount),
        external_share=args.external / 100,
        timeout=args.timeout,
    )
    summary = run_load(bank, run, log=lambda msg: _err(msg))
    ok = "not final (timeout)" not in summary["statuses"]
    if not args.no_audit:
        with step("load audit"), _google_errors("reading the ledger", args.config):
            report = audit_ledger(FirestoreDocuments(bank.admin.db))
        summary["audit"] = {
            "ok": report.ok,
            "accounts": report.accounts,
            "postings": report.postings,
            "problems": report.problems,
        }
        ok = ok and report.ok
    if args.json:
        emit_json(summary)
    else:
        print(render(summary))
        if not args.no_audit:
            audit_line = "ok" if report.ok else f"{len(report.problems)} problem(s)"
            print(f"ledger audit: {audit_line} ({report.accounts} accounts, {report.postings} postings)")
            for problem in report.problems[:20]:
                print(f"  {problem}")
    return 0 if ok else 1


def demo(args) -> int:
    """Seed demo customers with a realistic month: salary in, rent and bills with KID to
    other banks, transfers between them and to savings, card purchases at several merchants
    (the card processor's API), a streaming-service charge and a payment scheduled for a
    later due date. Idempotent per --tag: a second run makes only what is missing. Prints
    how to sign in as them in the web app."""
    from bankctl.demo import Demo, render

    bank = _bank(args)
    result = Demo(bank, tag=args.tag, password=args.password, log=lambda msg: _err(msg)).run()
    if args.json:
        emit_json(result)
    else:
        print(render(result))
    return 1 if result["problems"] else 0
