"""A customer using the bank through the app's surface (Auth + Firestore under the rules)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from cryptography.hazmat.primitives.asymmetric import ec

from fjordbank.domain import sca
from fjordbank.domain.norway import today_in_norway
from fjordbank.domain.payments import PaymentRequested, body_hash, payment_id_for
from tests.support.clients import FirestoreAsUser, new_account_number, unique, wait_for

TERMINAL = ("completed", "failed", "rejected")


@dataclass
class Customer:
    uid: str
    id_token: str
    app: FirestoreAsUser
    accounts: list[str]
    device_key: ec.EllipticCurvePrivateKey | None = None  # the phone's SCA key
    key_id: str | None = None

    def confirm(self, request_id: str, amount: int, to_account: str) -> dict:
        """The phone's confirmation of exactly this payment (strong customer authentication)."""
        return {
            "keyId": self.key_id,
            "signature": sca.sign(self.device_key, sca.challenge(request_id, amount, "NOK", to_account)),
        }

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
        body = {
            "v": 1,
            "fromAccount": from_account or self.accounts[0],
            "toAccount": to_account,
            "amount": amount,
            "currency": "NOK",
            **fields,
        }
        if confirm and "sca" not in body and self.device_key is not None:
            body["sca"] = self.confirm(request_id, amount, to_account)
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
    """A signed-up user with one funded account per amount given and a registered device
    key (admin path)."""
    user = auth.sign_up()
    accounts = [
        ledger_admin.open_funded_account(user["uid"], new_account_number(), amount) for amount in (funds or (0,))
    ]
    key = ec.generate_private_key(ec.SECP256R1())
    key_id = unique("phone")
    ledger_admin.run(
        ledger_admin.ledger.db.document(f"users/{user['uid']}/scaKeys/{key_id}").set(
            {"keyId": key_id, "publicKey": sca.public_key_b64(key)}
        )
    )
    return Customer(user["uid"], user["id_token"], as_user(user["id_token"]), accounts, key, key_id)
