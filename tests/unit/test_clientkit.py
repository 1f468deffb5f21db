"""The client kit (clientkit/) without a stack: App Check token handling, the phone's
signature, payment request bodies, Firestore REST values, and how answers become results
or one-line errors."""

from __future__ import annotations

import base64
import json
import stat
import time
from http.client import RemoteDisconnected
from pathlib import Path
from types import SimpleNamespace

import jwt
import pytest
import requests
from cryptography.hazmat.primitives.asymmetric import ec
from google.api_core import exceptions as gexc
from urllib3.exceptions import ProtocolError

from clientkit.admin import Admin
from clientkit.app_check import RENEW_BEFORE, AppCheck
from clientkit.auth import Auth, Identity, refusal_code, unsigned_custom_token
from clientkit.callables import Callables
from clientkit.device import Device
from clientkit.employer import DemoEmployer
from clientkit.endpoints import Endpoints
from clientkit.errors import KitError, Refused, StackUnreachable
from clientkit.http import Answer, Http
from clientkit.payments import optional_fields, payment_request
from clientkit.rest import from_value, to_fields, to_value
from clientkit.session import firestore_errors
from fjordbank.adapters.app_check import verify_debug_token
from fjordbank.domain import sca

SECRET = "a-test-secret-of-at-least-32-bytes-long"
PROJECT = "demo-kit"
ENDPOINTS = Endpoints(PROJECT, "127.0.0.1:9099", "127.0.0.1:5001", "127.0.0.1:8080", http_timeout=1.0)


# ---- App Check tokens -------------------------------------------------------------------------
class Clock:
    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


def test_an_app_check_token_is_the_debug_providers_for_this_project_and_app():
    token, expires = AppCheck(SECRET, PROJECT, "1:000:web:kit").mint()
    claims = verify_debug_token(token, secret=SECRET, project_id=PROJECT)
    assert claims is not None and claims["sub"] == "1:000:web:kit"
    assert expires == claims["exp"] and 3590 <= expires - time.time() <= 3600
    assert verify_debug_token(token, secret=SECRET, project_id="another-project") is None


def test_an_expired_token_is_refused_by_the_bank():
    token, expires = AppCheck(SECRET, PROJECT, "1:000:web:kit").mint(ttl=-60)
    assert expires < time.time() and verify_debug_token(token, secret=SECRET, project_id=PROJECT) is None


def test_a_token_without_an_expiry_or_an_issue_time_is_refused_by_the_bank():
    """PyJWT checks exp only when a token has one: a debug token without it was good for
    ever (found in review). Every claim the debug provider gives is required."""
    now = int(time.time())
    claims = {"iss": "fjordbank-app-check-debug", "sub": "1:0:web:x", "aud": [f"projects/{PROJECT}"]}
    full = {**claims, "iat": now, "exp": now + 60}
    assert verify_debug_token(jwt.encode(full, SECRET, algorithm="HS256"), secret=SECRET, project_id=PROJECT)
    for missing in ("exp", "iat", "sub"):
        token = jwt.encode({k: v for k, v in full.items() if k != missing}, SECRET, algorithm="HS256")
        assert verify_debug_token(token, secret=SECRET, project_id=PROJECT) is None, missing
    no_expiry = jwt.encode({**claims, "iat": 0}, SECRET, algorithm="HS256")  # the review's: issued 1970
    assert verify_debug_token(no_expiry, secret=SECRET, project_id=PROJECT) is None


def test_the_token_sent_is_kept_until_shortly_before_it_expires():
    clock = Clock()
    check = AppCheck(SECRET, PROJECT, "1:000:web:kit", ttl=3600, clock=clock)
    minted = []
    mint = check.mint
    check.mint = lambda ttl=None: minted.append(clock.now) or mint(ttl)
    first = check.token()
    clock.now += 3600 - RENEW_BEFORE - 5  # still long enough
    assert check.token() == first and len(minted) == 1
    clock.now += 10  # less than RENEW_BEFORE left: a new one
    check.token()
    assert len(minted) == 2


def test_the_stacks_debug_secret_is_read_from_its_state_directory(tmp_path):
    with pytest.raises(KitError, match=r"no App Check debug secret in .*is the stack up"):
        AppCheck.from_state_dir(tmp_path, PROJECT, "app")
    (tmp_path / "app-check-debug.json").write_text(json.dumps({"secret": SECRET}))
    token = AppCheck.from_state_dir(tmp_path, PROJECT, "app").token()
    assert verify_debug_token(token, secret=SECRET, project_id=PROJECT) is not None


# ---- the phone --------------------------------------------------------------------------------
def test_the_phone_signs_exactly_the_payment_it_confirms():
    phone = Device.new("uid-1", "phone-")
    confirmation = phone.confirm("req-1", 10_000, "NOK", "15030000037")
    der = sca.parse_public_key(phone.enrolment()["publicKey"])
    assert confirmation["keyId"] == phone.key_id == phone.enrolment()["keyId"]
    assert phone.key_id.startswith("phone-") and sca.KEY_ID.fullmatch(phone.key_id)
    signature = confirmation["signature"]
    assert sca.verify(der, signature, sca.challenge("req-1", 10_000, "NOK", "15030000037"))
    assert not sca.verify(der, signature, sca.challenge("req-1", 10_001, "NOK", "15030000037"))
    assert not sca.verify(der, signature, sca.challenge("req-2", 10_000, "NOK", "15030000037"))
    assert not sca.verify(der, signature, sca.challenge("req-1", 10_000, "NOK", "15030000045"))


def test_a_kept_phone_is_readable_by_its_owner_only_and_signs_the_same(tmp_path):
    phone = Device.new("uid-2")
    path = phone.save(tmp_path / "devices")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    again = Device.load(tmp_path / "devices", "uid-2")
    assert again is not None and (again.uid, again.key_id, again.public_key) == (
        "uid-2",
        phone.key_id,
        phone.public_key,
    )
    assert Device.load(tmp_path / "devices", "nobody") is None


def test_a_phone_saved_over_a_file_others_can_read_is_readable_by_its_owner_only(tmp_path):
    """The old file was opened and truncated, keeping its mode: a key saved over a 0644 file
    stayed readable by everyone (found in review)."""
    kept = tmp_path / "devices"
    kept.mkdir()
    (kept / "uid-2.json").write_text("{}")
    (kept / "uid-2.json").chmod(0o644)
    phone = Device.new("uid-2")
    path = phone.save(kept)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert Device.load(kept, "uid-2").key_id == phone.key_id
    assert sorted(p.name for p in kept.iterdir()) == ["uid-2.json"]  # no temporary file left
    assert stat.S_IMODE(phone.save(tmp_path / "new" / "devices").parent.stat().st_mode) == 0o700


def test_a_kept_key_that_is_not_p256_is_refused(tmp_path):
    other = Device("uid-3", "k-12345678", ec.generate_private_key(ec.SECP384R1())).to_json()
    with pytest.raises(KitError, match="does not hold a P-256 key"):
        Device.from_json(other)


# ---- payment requests -------------------------------------------------------------------------
def test_a_payment_request_is_the_contracts_body_confirmed_on_the_phone():
    phone = Device.new("uid-4")
    body = payment_request(
        "req-9",
        from_account="97100000001",
        to_account="15030000037",
        amount=12_550,
        fields=optional_fields(message="Husleie", kid=None, due_date="2030-01-31"),
        device=phone,
    )
    assert {k: v for k, v in body.items() if k != "sca"} == {
        "v": 1,
        "fromAccount": "97100000001",
        "toAccount": "15030000037",
        "amount": 12_550,
        "currency": "NOK",
        "message": "Husleie",
        "dueDate": "2030-01-31",
    }
    der = sca.parse_public_key(phone.public_key)
    assert sca.verify(der, body["sca"]["signature"], sca.challenge("req-9", 12_550, "NOK", "15030000037"))


def test_a_payment_request_without_a_phone_or_with_its_own_sca_is_not_signed_again():
    plain = payment_request("r", from_account="a", to_account="b", amount=1)
    assert "sca" not in plain
    given = payment_request(
        "r", from_account="a", to_account="b", amount=1, fields={"sca": None}, device=Device.new("u")
    )
    assert given["sca"] is None


# ---- Firestore REST values --------------------------------------------------------------------
def test_rest_values_keep_integers_integers_and_round_trip():
    doc = {"amount": 12_550, "ok": True, "name": "Kari", "none": None, "m": {"n": [1, "x", {"k": False}]}}
    encoded = to_fields(doc)["fields"]
    assert encoded["amount"] == {"integerValue": "12550"} and encoded["ok"] == {"booleanValue": True}
    assert {k: from_value(v) for k, v in encoded.items()} == doc
    assert to_value(0.5) == {"doubleValue": 0.5}  # only to see the rules refuse it
    with pytest.raises(TypeError):
        to_value(object())


# ---- answers: results or one-line errors -------------------------------------------------------
def callables() -> Callables:
    return Callables(ENDPOINTS, AppCheck(SECRET, PROJECT, "app"))


def test_a_callables_answer_is_its_result_or_the_banks_refusal_with_its_reason():
    c = callables()
    assert c.result("accounts_open", Answer(200, {"result": {"accountId": "1"}})) == {"accountId": "1"}
    refusal = {"error": {"status": "FAILED_PRECONDITION", "message": "no", "details": {"reason": "account_closed"}}}
    with pytest.raises(Refused) as refused:
        c.result("accounts_close", Answer(400, refusal, tries=1))
    assert refused.value.reason == "account_closed"
    assert str(refused.value) == "accounts_close refused: account_closed: no"
    busy = {"error": {"status": "RESOURCE_EXHAUSTED", "message": "slow down"}}
    with pytest.raises(Refused) as limited:
        c.result("invoices_scan", Answer(429, busy, tries=5))
    assert limited.value.reason == "RESOURCE_EXHAUSTED" and str(limited.value).endswith("(tried 5 times)")


def test_a_server_failure_or_no_answer_is_one_line_naming_the_emulator():
    c = callables()
    with pytest.raises(StackUnreachable, match=r"the functions emulator \(127.0.0.1:5001\) answered HTTP 500 to x"):
        c.result("x", Answer(500, {"error": {"status": "INTERNAL"}}))
    with pytest.raises(KitError, match="x: HTTP 404 without an answer"):
        c.result("x", Answer(404, None))


def test_the_callers_tokens_go_in_the_headers_only_when_there_are_some():
    c = callables()
    headers = c.headers("id-token")
    assert headers["Authorization"] == "Bearer id-token"
    assert verify_debug_token(headers["X-Firebase-AppCheck"], secret=SECRET, project_id=PROJECT) is not None
    for missing in (None, ""):
        assert "X-Firebase-AppCheck" not in c.headers("id-token", app_check=missing)
        assert "Authorization" not in c.headers(missing)
    assert c.headers(None, app_check="garbage")["X-Firebase-AppCheck"] == "garbage"


class FakeResponse:
    def __init__(self, status: int, body: dict) -> None:
        self.status_code, self.body = status, body

    def json(self) -> dict:
        return self.body


class FakeSession:
    """requests.Session's post, answering from ``answers`` and keeping what was sent."""

    def __init__(self, *answers: tuple[int, dict]) -> None:
        self.answers, self.sent = list(answers), []

    def post(self, url, json, headers, timeout):
        self.sent.append((url, json, headers))
        return FakeResponse(*self.answers.pop(0))


def test_auth_signs_in_and_refuses_with_the_emulators_code():
    session = FakeSession(
        (200, {"localId": "u1", "idToken": "t1"}),
        (400, {"error": {"message": "EMAIL_EXISTS"}}),
        (503, {"error": {"message": "down"}}),
    )
    auth = Auth(ENDPOINTS, session)
    assert auth.sign_up("a@b.c", "pw") == Identity("u1", "t1", "a@b.c")
    with pytest.raises(Refused) as refused:
        auth.sign_up("a@b.c", "pw")
    assert refused.value.reason == "EMAIL_EXISTS"
    with pytest.raises(
        StackUnreachable, match=r"the auth emulator \(127.0.0.1:9099\) answered HTTP 503 to accounts:signUp"
    ):
        auth.sign_up("a@b.c", "pw")
    url, body, _headers = session.sent[0]
    assert url.endswith("/identitytoolkit.googleapis.com/v1/accounts:signUp?key=fake-api-key")
    assert body == {"email": "a@b.c", "password": "pw", "returnSecureToken": True}
    assert refusal_code("WEAK_PASSWORD : Password should be at least 6 characters", 400) == "WEAK_PASSWORD"
    assert refusal_code(None, 400) == "HTTP"


def test_the_emulators_custom_token_names_the_user_and_is_unsigned():
    token = unsigned_custom_token("uid-7", now=1_000)
    header, _claims, signature = token.split(".")
    assert signature == "" and json.loads(base64.urlsafe_b64decode(header + "==")) == {"alg": "none", "typ": "JWT"}
    decoded = jwt.decode(token, options={"verify_signature": False})
    assert (decoded["uid"], decoded["iat"], decoded["exp"]) == ("uid-7", 1_000, 4_600)


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        (gexc.PermissionDenied("no"), "reading: the security rules refused it"),
        (gexc.NotFound("gone\nmore"), "reading: gone"),
        (gexc.ServiceUnavailable("down"), "reading: cannot reach the firestore emulator at 127.0.0.1:8080"),
    ],
)
def test_firestore_errors_become_one_line(exc, expected):
    with pytest.raises(KitError) as raised, firestore_errors("reading", "127.0.0.1:8080"):
        raise exc
    assert str(raised.value).startswith(expected) and "\n" not in str(raised.value)


def test_a_bug_inside_firestore_errors_keeps_its_type():
    with pytest.raises(KeyError), firestore_errors("reading", "127.0.0.1:8080"):
        raise KeyError("bug")


# ---- the demo employer's state -----------------------------------------------------------------
def test_the_demo_employer_is_todays_only(tmp_path: Path):
    state_file = tmp_path / "employer.json"
    employer = DemoEmployer(ENDPOINTS, callables(), None, state_file)
    assert employer._load() is None
    today = {"day": time.strftime("%Y-%m-%d"), "device": Device.new("e").to_json(), "account": "1"}
    employer._save(today)
    assert employer._load() == today and stat.S_IMODE(state_file.stat().st_mode) == 0o600
    employer._save({**today, "day": "2000-01-01"})
    assert employer._load() is None
    employer._save({k: v for k, v in today.items() if k != "device"})  # an older server's state
    assert employer._load() is None


class _ClosingSession:
    """A session whose first POSTs meet a connection the server closed (``error``)."""

    def __init__(self, *errors: BaseException) -> None:
        self.errors = list(errors)
        self.posts = 0

    def post(self, url, **_kwargs):
        self.posts += 1
        if self.errors:
            raise self.errors.pop(0)
        resp = requests.Response()
        resp.status_code, resp._content = 200, b'{"ok": true}'
        return resp


def _aborted(cause: BaseException) -> requests.ConnectionError:
    return requests.ConnectionError(ProtocolError("Connection aborted.", cause))


def test_a_post_on_a_connection_the_server_closed_while_idle_is_sent_again_once():
    closed = _aborted(RemoteDisconnected("Remote end closed connection without response"))
    session = _ClosingSession(closed)
    answer = Http("the auth emulator", "127.0.0.1:9099", 1.0, session).send("http://x/signUp", {})  # type: ignore[arg-type]
    assert (answer.status, answer.data, session.posts) == (200, {"ok": True}, 2)
    twice = _ClosingSession(closed, _aborted(ConnectionResetError(104, "reset")))
    with pytest.raises(StackUnreachable):  # closed again: reported, not tried forever
        Http("the auth emulator", "127.0.0.1:9099", 1.0, twice).send("http://x/signUp", {})  # type: ignore[arg-type]
    assert twice.posts == 2


def test_a_refused_connection_is_not_sent_again():
    refused = _ClosingSession(requests.ConnectionError(ConnectionRefusedError(111, "refused")))
    with pytest.raises(StackUnreachable):
        Http("the auth emulator", "127.0.0.1:9099", 1.0, refused).send("http://x/signUp", {})  # type: ignore[arg-type]
    assert refused.posts == 1


class _Customers:
    """The admin client's query chain over customers/{uid} documents {uid: email}, as the
    google client orders them (by document id)."""

    def __init__(self, emails: dict[str, str], limit: int | None = None, wanted: str | None = None) -> None:
        self.emails, self.n, self.wanted = emails, limit, wanted

    def where(self, filter):  # (the client's keyword)
        return _Customers(self.emails, self.n, filter.value)

    def limit(self, n: int):
        return _Customers(self.emails, n, self.wanted)

    def stream(self):
        found = [SimpleNamespace(id=uid) for uid, email in sorted(self.emails.items()) if email == self.wanted]
        return found[: self.n]


def test_a_customer_is_found_by_the_e_mail_they_sign_in_with_not_one_an_applicant_typed():
    """An applicant who typed Kari's address was taken for Kari by bankctl's pay, receive,
    sanctions freeze... (found in review, 2026-12-06): Auth's address is verified and unique."""
    admin = Admin.__new__(Admin)
    typed = {"aMallory": "kari@example.no", "uKari": "kari@example.no"}
    admin.db = SimpleNamespace(collection=lambda _name: _Customers(typed))
    admin.firestore_host = "test"
    auth = SimpleNamespace(uid_for_email=lambda e: {"kari@example.no": "uKari"}.get(e))
    assert admin.resolve_customer("kari@example.no", auth) == "uKari"
    with pytest.raises(KitError, match=r"no customer with e-mail .* \(nobody signs in"):
        admin.resolve_customer("nobody@example.no", auth)
    # without Auth: the one application that gave it, never a guess between two
    with pytest.raises(KitError, match="more than one customer"):
        admin.resolve_customer("kari@example.no")
    admin.db = SimpleNamespace(collection=lambda _name: _Customers({"uKari": "kari@example.no"}))
    assert admin.resolve_customer("kari@example.no") == "uKari"


def test_a_customer_named_by_something_that_is_no_id_is_refused_before_any_read():
    """A '/' reached a document path: another document read, or a traceback from the
    client's path check (found in review, 2026-12-06)."""
    admin = Admin.__new__(Admin)
    admin.db = SimpleNamespace(collection=lambda _name: pytest.fail("read"))
    admin.firestore_host = "test"
    for ref in ("a/b", "users/x/accounts", "__x__", "x" * 129):
        with pytest.raises(KitError, match="is no customer"):
            admin.resolve_customer(ref)


# ---- found in review (2026-12-07): a made payment reported as failed, a salary paid twice --------
class _Requests:
    """A payment-request collection whose create was made but answered AlreadyExists (the
    client's retry of a commit whose answer was lost)."""

    def __init__(self, stored: dict | None) -> None:
        self.stored = stored

    def document(self, _request_id):
        outer = self

        class Ref:
            def create(self, body):
                if outer.stored is None:
                    outer.stored = dict(body)
                raise gexc.AlreadyExists("Document already exists")

            def get(self):
                return SimpleNamespace(exists=outer.stored is not None, to_dict=lambda: dict(outer.stored))

        return Ref()


def _session(requests_: _Requests):
    from clientkit.session import AppSession

    session = AppSession.__new__(AppSession)
    session.firestore_host, session.uid, session.device = "127.0.0.1:1", "u1", None
    session.requests = lambda: requests_  # type: ignore[method-assign]
    return session


def test_a_payment_request_the_retry_finds_made_is_made_and_another_is_refused():
    made = _Requests(None)  # the first commit stored it; its answer was lost
    payment = {"from_account": "15030000037", "to_account": "15030000045", "amount": 15_000, "confirm": False}
    assert _session(made).request_payment(**payment, request_id="cli-abc123456789") == "cli-abc123456789"
    other = _Requests({**made.stored, "amount": 99_900})  # another payment under the id
    with pytest.raises(KitError, match="exists already"):
        _session(other).request_payment(**payment, request_id="cli-abc123456789")


def test_the_demo_employer_pays_a_salary_once_when_a_read_after_its_request_fails(tmp_path: Path, monkeypatch):
    from clientkit import employer as kit_employer

    made: list[str] = []

    class App:
        reads = 0

        def __init__(self, *_args) -> None:
            pass

        def create(self, _path, request_id, _body):
            made.append(request_id)
            return SimpleNamespace(status_code=200)

        def get(self, _path):
            App.reads += 1
            if App.reads == 1:  # the emulator slow once: the read times out
                raise StackUnreachable("firestore", "127.0.0.1:8080", "did not answer within 10 s")
            return 200, {"status": "completed"}

    monkeypatch.setattr(kit_employer, "FirestoreAsUser", App)
    monkeypatch.setattr(kit_employer.time, "sleep", lambda _s: None)
    employer = DemoEmployer(ENDPOINTS, callables(), None, tmp_path / "employer.json")
    employer.auth = SimpleNamespace(sign_in=lambda email, _pw: Identity(email, "token"))  # type: ignore[assignment]
    employer._save({"day": time.strftime("%Y-%m-%d"), "email": "e@x", "password": "p", "account": "1",
                    "device": Device.new("e").to_json()})  # fmt: skip
    employer._create = lambda: pytest.fail("a second employer paid the salary again")  # type: ignore[method-assign]
    assert employer.pay_salary("15030000037")["status"] == "completed"
    assert len(made) == 1


def test_the_demo_employers_state_file_is_made_private_whatever_its_mode_was(tmp_path: Path):
    state_file = tmp_path / "employer.json"
    state_file.write_text("{}")
    state_file.chmod(0o644)  # a restored or copied state folder
    DemoEmployer(ENDPOINTS, callables(), None, state_file)._save({"password": "secret"})
    assert stat.S_IMODE(state_file.stat().st_mode) == 0o600
