"""A customer using the bank through the app's surface (Auth + Firestore under the rules),
with the client kit's phone (clientkit.device) and payment requests (clientkit.payments)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from clientkit.device import Device
from clientkit.payments import payment_request
from clientkit.rest import FirestoreAsUser
from fjordbank.domain.norway import today_in_norway
from fjordbank.domain.payments import PaymentRequested, body_hash, payment_id_for
from tests.support.clients import new_account_number, unique, wait_for

TERMINAL = ("completed", "failed", "rejected")


@dataclass
class Customer:
    uid: str
    id_token: str
    app: FirestoreAsUser
    accounts: list[str]
    device: Device | None = None  # the phone, with its key for SCA

    @property
    def key_id(self) -> str | None:
        return self.device.key_id if self.device else None

    def confirm(self, request_id: str, amount: int, to_account: str) -> dict:
        """The phone's confirmation of exactly this payment (strong customer authentication)."""
        assert self.device is not None, f"{self.uid} has no phone"
        return self.device.confirm(request_id, amount, "NOK", to_account)

    def request_payment(
        self,
        to_account: str,
        amount: int,
        *,
        from_account: str | None = None,
        request_id: str | None = None,
        confirm: bool = True,
        **fields,
    ) -> str:
        """Create a payment request as the app does; confirmed on the device (SCA) unless
        ``confirm`` is False or the test gives its own ``sca``."""
        request_id = request_id or unique("req")
        body = payment_request(
            request_id,
            from_account=from_account or self.accounts[0],
            to_account=to_account,
            amount=amount,
            fields=fields,
            device=self.device if confirm else None,
        )
        resp = self.app.create(f"users/{self.uid}/paymentRequests", request_id, body)
        assert resp.status_code == 200, resp.text
        return request_id

    def request(self, request_id: str) -> dict | None:
        return self.app.get(f"users/{self.uid}/paymentRequests/{request_id}")[1]

    def wait_final(self, request_id: str, timeout: float = 60) -> dict:
        return wait_for(
            lambda: (d := self.request(request_id)) and d.get("status") in TERMINAL and d,
            timeout=timeout,
            what=f"request {request_id} to finish",
        )

    def internal_payment(self, request_id: str, amount: int) -> PaymentRequested:
        """The event the edge would publish for a transfer between this customer's first two
        accounts (for tests that talk to the pipeline directly)."""
        body = {
            "v": 1,
            "fromAccount": self.accounts[0],
            "toAccount": self.accounts[1],
            "amount": amount,
            "currency": "NOK",
        }
        return PaymentRequested(
            payment_id=payment_id_for(self.uid, request_id),
            uid=self.uid,
            request_id=request_id,
            kind="internal",
            from_account=self.accounts[0],
            to_account=self.accounts[1],
            amount=amount,
            currency="NOK",
            message=None,
            kid=None,
            due_date=today_in_norway().isoformat(),
            body_hash=body_hash(body),
            requested_at=dt.datetime.now(dt.UTC).isoformat(),
        )

    def balance(self, account: str | None = None) -> int:
        return self.app.get(f"accounts/{account or self.accounts[0]}")[1]["balance"]


def new_customer(auth, as_user, ledger_admin, *funds: int) -> Customer:
    """A signed-up user with one funded account per amount given and a phone whose key is
    enrolled through the admin path (the ledger_admin fixture's client)."""
    user = auth.sign_up()
    accounts = [
        ledger_admin.open_funded_account(user["uid"], new_account_number(), amount) for amount in (funds or (0,))
    ]
    device = Device.new(user["uid"], "phone")
    ledger_admin.set_document(f"users/{user['uid']}/scaKeys/{device.key_id}", device.enrolment())
    return Customer(user["uid"], user["id_token"], as_user(user["id_token"]), accounts, device)
