"""A cardholder: signed up, onboarded, funded and holding an active card (for the tests
of cards and of what card purchases feed: the transaction list, my economy)."""

from __future__ import annotations

from dataclasses import dataclass

from clientkit.device import Device
from tests.support.bank import application, card_details, register_device, wait_card_active


@dataclass
class Cardholder:
    user: dict
    app: object
    account: str
    card_id: str
    card: dict  # pan, exp_month, exp_year, cvv
    token: str
    device: Device  # the phone, with its key for SCA (enrolled before onboarding, as the app does)

    @property
    def uid(self) -> str:
        return self.user["uid"]

    def account_doc(self) -> dict:
        return self.app.get(f"accounts/{self.account}")[1]


def new_cardholder(stack, auth, as_user, callables, ledger_admin, funds: int = 100_000) -> Cardholder:
    """Sign up, onboard, fund (admin deposit), order a card: all but the deposit through
    the app's surface."""
    user = auth.sign_up()
    app = as_user(user["id_token"])
    token = register_device(app, user["uid"])
    device = Device.new(user["uid"], "phone")
    status, body = callables.call("sca_register_key", device.enrolment(), user["id_token"])
    assert status == 200, body
    status, body = callables.call("onboarding_submit", application(), user["id_token"])
    assert status == 200 and body["result"]["status"] == "approved", body
    account = body["result"]["accountId"]
    if funds:
        ledger_admin.run(ledger_admin.ledger.deposit(deposit_id=f"fund-{account}", account_id=account, amount=funds))
    status, body = callables.call("cards_issue", {"accountId": account}, user["id_token"])
    assert status == 200, body
    card_id = body["result"]["cardId"]
    wait_card_active(app, card_id)
    return Cardholder(user, app, account, card_id, card_details(stack, card_id), token, device)


def limits_of(holder: Cardholder) -> dict:
    """The card's limits as they stand (what a raise is confirmed from)."""
    return holder.app.get(f"cards/{holder.card_id}")[1]["limits"]


def buy(proc, holder: Cardholder, amount: int, **kw) -> dict:
    c = holder.card
    kw.setdefault("cvv", c["cvv"])
    return proc.authorize(pan=c["pan"], exp_month=c["exp_month"], exp_year=c["exp_year"], amount=amount, **kw)
