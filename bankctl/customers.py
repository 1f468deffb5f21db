"""Customers through the bank's real onboarding path, and what they do in the app.

A customer is made the way the app makes one: a user signs up in Auth, the phone enrols its
key for strong customer authentication (`sca_register_key`), the application goes to
`onboarding_submit` (a synthetic identity number, screened against the sanctions list),
and an opening balance arrives through the ledger's admin deposit path.
"""

from __future__ import annotations

import datetime as dt
import random
import threading
from dataclasses import asdict, dataclass

from bankctl.config import Config, apply_environ
from bankctl.errors import CommandError, Refused
from clientkit.admin import Admin
from clientkit.app_check import AppCheck
from clientkit.auth import Auth, Identity
from clientkit.callables import Callables
from clientkit.cards import CardNetwork
from clientkit.device import Device
from clientkit.session import AppSession
from fjordbank.domain.money import InvalidAmount, Money
from simulators.identities import synthetic_national_id

DEFAULT_PASSWORD = "fjordbank-demo"  # noqa: S105 - local emulator users only, printed on purpose
DEFAULT_ADDRESS = {"street": "Storgata 1", "postalCode": "0155", "city": "Oslo"}
APP_ID = "1:000:web:fjordbank-bankctl"  # the app bankctl's App Check tokens are for
DEVICE_PREFIX = "bankctl-"  # the key ids of the phones bankctl plays
_rnd = random.SystemRandom()


def random_birth_date() -> dt.date:
    return dt.date(1960, 1, 1) + dt.timedelta(days=_rnd.randrange(365 * 38))


def parse_amount(text: str, *, allow_zero: bool = False) -> int:
    """Kroner as typed ("125.50", "125,50", "1 250", "kr 99") to exact øre; at most 2 decimals."""
    try:
        minor = Money.parse_nok(text).minor
    except InvalidAmount as exc:
        raise CommandError(f"bad amount {text!r}: {exc}") from None
    if minor == 0 and not allow_zero:
        raise CommandError(f"bad amount {text!r}: must be more than 0")
    return minor


def kroner(minor: int) -> str:
    return Money.nok(minor).format_nok().replace("\u00a0", " ")


@dataclass
class Made:
    uid: str
    email: str
    password: str
    name: str
    status: str
    account: str | None
    deposited: int
    device_key: str

    def to_json(self) -> dict:
        return asdict(self)


class Bank:
    """The client kit's clients one bankctl command needs, made once (also when threads
    ask at once), from bankctl's configuration."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.auth = Auth(config.endpoints)
        self._callables: Callables | None = None
        self._admin: Admin | None = None
        self._lock = threading.Lock()

    @property
    def callables(self) -> Callables:
        with self._lock:
            if self._callables is None:
                app_check = AppCheck.from_state_dir(self.config.state_dir, self.config.project_id, APP_ID)
                self._callables = Callables(self.config.endpoints, app_check)
            return self._callables

    @property
    def admin(self) -> Admin:
        with self._lock:
            if self._admin is None:
                apply_environ(self.config)
                self._admin = Admin(self.config.project_id, self.config.firestore_host)
            return self._admin

    def app_session(self, identity: Identity, device: Device | None) -> AppSession:
        """``identity`` in the app (the Google client pointed at the emulator), with ``device``."""
        apply_environ(self.config)
        c = self.config
        return AppSession(c.project_id, c.firestore_host, identity, device, sca_threshold=c.sca_threshold)

    def session(self, uid: str, identity: Identity | None = None) -> AppSession:
        """The customer in the app (the emulator's custom-token sign-in unless given), with
        the device key bankctl keeps for them, if any."""
        return self.app_session(identity or self.auth.sign_in_as(uid), Device.load(self.config.devices_dir, uid))

    def card_network(self, timeout: float = 5.0) -> CardNetwork:
        """The card network's side (local stack only); ``timeout``: the processor's for a decision."""
        c = self.config
        apply_environ(c)  # the vault is read in the emulator
        return CardNetwork(c.card_api_url, c.stack_settings.card_secrets_file, c.project_id, timeout)

    def sign_up_or_in(self, email: str, password: str) -> tuple[Identity, bool]:
        """(identity, new): a new user, or the existing one with this e-mail and password."""
        try:
            return self.auth.sign_up(email, password), True
        except Refused as exc:
            if exc.reason != "EMAIL_EXISTS":
                raise
        try:
            return self.auth.sign_in(email, password), False
        except Refused as exc:
            raise CommandError(f"{email} exists with another password") from exc

    def ensure_customer(
        self,
        *,
        name: str,
        email: str,
        password: str = DEFAULT_PASSWORD,
        deposit: int = 0,
        born: dt.date | None = None,
        address: dict | None = None,
        phone: str = "+47 912 34 567",
        deposit_id: str | None = None,
    ) -> Made:
        """Make a customer through the real path; for an e-mail that exists already, finish
        what is missing (idempotent: the deposit has a fixed id per account)."""
        identity, new = self.sign_up_or_in(email, password)
        uid = identity.uid
        devices = self.config.devices_dir
        device = Device.load(devices, uid)
        customer = None if new else self.admin.customer(uid)  # a new user has not applied yet
        if device is None:
            if customer is not None:
                raise CommandError(
                    f"{email} is a customer, but its device key is not in {devices}: it cannot confirm payments"
                )
            # kept before it is sent: a run whose answer was lost sends the same key again,
            # which the bank answers as enrolled
            device = Device.new(uid, DEVICE_PREFIX)
            device.save(devices)
        if customer is None:
            try:
                self.callables.call("sca_register_key", device.enrolment(), identity)
            except Refused as exc:
                if exc.reason != "sca_key_exists":
                    raise
                raise CommandError(f"{email} has a device key that is not in {devices}") from exc
            born = born or random_birth_date()
            application = {
                "name": name,
                "nationalId": synthetic_national_id(born),
                "dateOfBirth": born.isoformat(),
                "address": address or DEFAULT_ADDRESS,
                "phone": phone,
                "email": email,
            }
            for _attempt in range(5):
                try:
                    self.callables.call("onboarding_submit", application, identity)
                    break
                except Refused as exc:
                    if exc.reason != "identity_in_use":  # another run drew this number: draw again
                        raise
                    application["nationalId"] = synthetic_national_id(born)
            customer = self.admin.customer(uid) or {}
        status = customer.get("status", "?")
        account = customer.get("firstAccountId")
        deposited = 0
        if account and deposit:
            deposited = (
                deposit if self.admin.deposit_many([(deposit_id or f"opening-{account}", account, deposit)]) else 0
            )
        return Made(uid, email, password, name, status, account, deposited, device.key_id)
