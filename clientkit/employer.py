"""A demo employer that pays salaries, so a new customer on the local stack has money.

The employer is a customer of the bank like any other: signed up in Auth, its phone's key
enrolled (sca_register_key), onboarded (onboarding_submit with a synthetic identity) and
paying through the app's surface (a payment request confirmed on its phone, followed under
the security rules). Only its own funding is the ledger's admin path: money entering the
bank from outside, its daily limit's worth, once. A new employer each day (its limits are
daily), and another when this one is spent or the emulators started afresh (they keep no
data). Its state (e-mail, password, account, device key) is kept in a file readable by
the owner only.
"""

from __future__ import annotations

import json
import os
import random
import secrets
import threading
import time
from datetime import date, timedelta
from pathlib import Path

from clientkit.admin import LedgerAdmin
from clientkit.auth import Auth
from clientkit.callables import Callables
from clientkit.device import Device
from clientkit.endpoints import Endpoints
from clientkit.errors import KitError
from clientkit.payments import payment_request
from clientkit.rest import FirestoreAsUser
from fjordbank.domain.payments import TERMINAL
from simulators.identities import synthetic_national_id

SALARY = 2_500_000  # øre: 25 000 kr
EMPLOYER_FUNDS = 100_000_000  # øre: what the demo employer starts each day with (its daily limit)
SPENT = frozenset({"over_daily_limit", "velocity_limit", "insufficient_funds"})  # then a new employer
NAME = "Fjordlaks Demo"
FOLLOW_S = 90.0  # seconds a salary is followed; then it is reported "pending"
_rnd = random.SystemRandom()


class _NotMade(KitError):
    """A salary surely not paid: another employer may pay it."""


class DemoEmployer:
    def __init__(self, endpoints: Endpoints, callables: Callables, ledger: LedgerAdmin, state_file: Path) -> None:
        self.endpoints = endpoints
        self.auth = Auth(endpoints)
        self.callables = callables
        self.ledger = ledger
        self.state_file = state_file
        self.lock = threading.Lock()

    def pay_salary(self, to_account: str) -> dict:
        """Pay SALARY to ``to_account``: {"status", "amount", "reason"}."""
        with self.lock:
            state = self._load()
            try:
                result = self._pay(state or self._create(), to_account)
            except _NotMade:
                if state is None:
                    raise
                # the emulators started afresh since (their data is not kept): a new employer
                result = self._pay(self._create(), to_account)
            if result["reason"] in SPENT:
                result = self._pay(self._create(), to_account)  # this one is spent: a new employer
            return result

    # ---- its state: today's employer --------------------------------------------------------
    def _load(self) -> dict | None:
        if not self.state_file.exists():
            return None
        state = json.loads(self.state_file.read_text())
        return state if state.get("day") == date.today().isoformat() and "device" in state else None

    def _save(self, state: dict) -> None:
        self.state_file.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.state_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.fchmod(fd, 0o600)  # a file there already keeps its mode through O_CREAT (a copied 0644 one did)
        with os.fdopen(fd, "w") as fh:
            json.dump(state, fh)

    def _create(self) -> dict:
        email = f"employer-{secrets.token_hex(6)}@demo.fjordbank.test"
        password = secrets.token_urlsafe(16)
        identity = self.auth.sign_up(email, password)
        device = Device.new(identity.uid, "employer-")
        self.callables.call("sca_register_key", device.enrolment(), identity)
        result = self.callables.call("onboarding_submit", self._application(email), identity)
        if result.get("status") != "approved" or not result.get("accountId"):
            raise KitError(f"the demo employer was not approved: {result.get('status')}")
        account = result["accountId"]
        self.ledger.deposit(deposit_id=f"demo-employer-{account}", account_id=account, amount=EMPLOYER_FUNDS)
        state = {
            "day": date.today().isoformat(),
            "email": email,
            "password": password,
            "account": account,
            "device": device.to_json(),
        }
        self._save(state)
        return state

    @staticmethod
    def _application(email: str) -> dict:
        born = date(1970, 1, 1) + timedelta(days=_rnd.randrange(365 * 30))
        return {
            "name": NAME,
            "nationalId": synthetic_national_id(born),
            "dateOfBirth": born.isoformat(),
            "address": {"street": "Bryggen 1", "postalCode": "5003", "city": "Bergen"},
            "phone": "+4791234567",
            "email": email,
        }

    # ---- a salary ---------------------------------------------------------------------------
    def _pay(self, state: dict, to_account: str) -> dict:
        """One salary: `_NotMade` when it surely was not (the employer cannot sign in, or
        its request was refused), and a new employer may pay it. Any failure after that
        (the request's create timed out, its reads fail) may have made the payment: the
        request is followed as long as it can be, never made again by another employer
        (a read timing out after the create paid the salary twice: found in review,
        2026-12-07)."""
        try:
            identity = self.auth.sign_in(state["email"], state["password"])
        except KitError as exc:
            raise _NotMade(str(exc)) from exc
        app = FirestoreAsUser(self.endpoints.firestore_host, self.endpoints.project_id, identity.id_token)
        request_id = f"salary-{secrets.token_hex(10)}"
        body = payment_request(
            request_id,
            from_account=state["account"],
            to_account=to_account,
            amount=SALARY,
            fields={"message": "Lønn fra Fjordlaks Demo AS"},
            device=Device.from_json(state["device"]),
        )
        requests_path = f"users/{identity.uid}/paymentRequests"
        status = app.create(requests_path, request_id, body).status_code
        if status != 200:
            raise _NotMade(f"the salary request was refused (HTTP {status})")
        deadline = time.monotonic() + FOLLOW_S
        while time.monotonic() < deadline:
            try:
                _, doc = app.get(f"{requests_path}/{request_id}")
            except KitError:
                doc = None  # (a slow read: the next one, until the deadline)
            if doc and doc.get("status") in TERMINAL:
                return {"status": doc["status"], "amount": SALARY, "reason": (doc.get("reason") or {}).get("code")}
            time.sleep(0.3)
        return {"status": "pending", "amount": SALARY, "reason": None}
