"""Demo data: a few customers with a realistic history, made through the bank's real paths.

Three customers are onboarded (Auth, device key, `onboarding_submit`), are paid a salary
by an employer, pay rent and bills with KID to other banks (through clearing), send each
other money, move money to a savings account, buy things with their virtual debit card at
several merchants (the card processor's signed API: authorisation, then capture), pay a
streaming service and schedule a payment for a later due date. The months before this one
get card purchases on their days (bankctl/history.py), so my economy has months
to compare and the streaming charges are detected as a subscription.

Idempotent: customers are found by e-mail, payment requests and card purchases have fixed
ids and references per tag, and the salaries' opening deposit has a fixed id, so running
it again makes only what is missing (after `make down` the emulators start empty and the
demo makes everything again). `--tag` makes another, separate set.
"""

from __future__ import annotations

import calendar
import datetime as dt
import os
import re
import time
from dataclasses import dataclass, field

from bankctl import errors
from bankctl.customers import DEVICE_PREFIX, Bank, Made, kroner
from bankctl.errors import CommandError, Refused, StackUnreachable, Workers, step, talking_to
from clientkit.cards import CardNetwork
from clientkit.device import Device
from clientkit.session import AppSession
from fjordbank.domain.cards import authorization_id
from fjordbank.domain.errors import InvalidAccountNumber
from fjordbank.domain.norway import kid_mod10_check, kid_mod11_check, make_account_number, today_in_norway
from fjordbank.domain.payments import TERMINAL

TAG = re.compile(r"[a-z0-9]{1,16}")
HISTORY_MONTHS = 5  # months of past card purchases: my economy compares them, subscriptions appear


def _months_back(day: dt.date, months: int) -> dt.date:
    """The first of the month ``months`` before ``day``'s."""
    index = day.year * 12 + day.month - 1 - months
    return dt.date(index // 12, index % 12 + 1, 1)


MONTHS = (
    "januar",
    "februar",
    "mars",
    "april",
    "mai",
    "juni",
    "juli",
    "august",
    "september",
    "oktober",
    "november",
    "desember",
)


def _other_bank(group: str, serial: int) -> str:
    """A valid account number in another bank (1503): the simulated counterparty settles it."""
    while True:
        try:
            return make_account_number("1503", group, serial)
        except InvalidAccountNumber:
            serial += 1


ELECTRICITY = "15030000037"  # the simulated counterparty requires a MOD10 KID here (emulators/counterparty.json)
BROADBAND = _other_bank("20", 1001)
INSURANCE = _other_bank("20", 2002)
STUDENT_LOAN = _other_bank("20", 3003)
LANDLORDS = {"ingrid": _other_bank("30", 1111), "ola": _other_bank("30", 2222), "amira": _other_bank("30", 3333)}


def mod10_kid(body: str) -> str:
    return body + kid_mod10_check(body)


def mod11_kid(body: str) -> str:
    return body + kid_mod11_check(body)


@dataclass(frozen=True)
class Person:
    key: str
    name: str
    born: dt.date
    address: dict
    phone: str
    salary: int  # øre
    rent: int
    purchases: tuple[tuple[str, str, int, str], ...]  # merchant, MCC, øre, channel
    streaming: tuple[str, str, int]  # merchant, MCC, øre


PEOPLE = (
    Person(
        "ingrid",
        "Ingrid Solberg",
        dt.date(1988, 3, 14),
        {"street": "Thorvald Meyers gate 12", "postalCode": "0555", "city": "Oslo"},
        "+47 412 34 567",
        salary=4_850_000,
        rent=1_450_000,
        purchases=(
            ("Rema 1000 Grünerløkka", "5411", 61_240, "pos"),
            ("Kiwi Birkelunden", "5411", 28_990, "pos"),
            ("Ruter", "4111", 89_300, "online"),
            ("Peppes Pizza Aker Brygge", "5812", 48_900, "pos"),
            ("Apotek 1 Storgata", "5912", 15_450, "pos"),
        ),
        streaming=("Netflix", "4899", 17_900),
    ),
    Person(
        "ola",
        "Ola Haugen",
        dt.date(1979, 9, 2),
        {"street": "Bryggen 5", "postalCode": "5003", "city": "Bergen"},
        "+47 913 45 678",
        salary=4_120_000,
        rent=1_200_000,
        purchases=(
            ("Coop Extra Møhlenpris", "5411", 84_315, "pos"),
            ("Circle K Danmarksplass", "5541", 74_218, "pos"),
            ("Vinmonopolet Bergen Storsenter", "5921", 32_990, "pos"),
            ("Elkjøp Lagunen", "5732", 149_900, "online"),
        ),
        streaming=("Spotify", "5815", 12_900),
    ),
    Person(
        "amira",
        "Amira Berg",
        dt.date(1995, 6, 21),
        {"street": "Munkegata 20", "postalCode": "7011", "city": "Trondheim"},
        "+47 934 56 789",
        salary=3_690_000,
        rent=680_000,
        purchases=(
            ("Rema 1000 Solsiden", "5411", 34_560, "pos"),
            ("AtB", "4111", 4_200, "pos"),
            ("Starbucks Trondheim Torg", "5814", 6_900, "pos"),
            ("Clas Ohlson Trondheim", "5200", 24_900, "pos"),
        ),
        streaming=("Viaplay", "4899", 44_900),
    ),
)


@dataclass
class Customer:
    person: Person
    made: Made
    session: AppSession
    accounts: list[str] = field(default_factory=list)
    card: dict | None = None


@dataclass
class Tally:
    """What this run made and what was there already, per kind."""

    made: dict[str, int] = field(default_factory=dict)
    existing: dict[str, int] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    def add(self, kind: str, new: bool) -> None:
        target = self.made if new else self.existing
        target[kind] = target.get(kind, 0) + 1


class Demo:
    def __init__(self, bank: Bank, *, tag: str, password: str, log) -> None:
        if not TAG.fullmatch(tag):
            raise CommandError(f"bad tag {tag!r}: 1-16 lower-case letters or digits")
        self.bank = bank
        self.tag = tag
        self.password = password
        started = time.monotonic()
        self.log = lambda msg: log(f"[{time.monotonic() - started:5.1f} s] {msg}")
        self.tally = Tally()
        self.today = today_in_norway()
        self.month = MONTHS[self.today.month - 1]

    def email(self, key: str, domain: str = "fjordbank.example") -> str:
        return f"{key}@{domain}" if self.tag == "demo" else f"{key}+{self.tag}@{domain}"

    def rid(self, *parts: str) -> str:
        return "-".join(("demo", self.tag, *parts))

    # ---- the people ---------------------------------------------------------------------------
    def customers(self) -> list[Customer]:
        out = []
        for person in PEOPLE:
            with step(f"onboarding {person.name}"):
                out.append(self.customer(person))
        return out

    def customer(self, person: Person) -> Customer:
        made = self.bank.ensure_customer(
            name=person.name,
            email=self.email(person.key),
            password=self.password,
            born=person.born,
            address=person.address,
            phone=person.phone,
        )
        if made.status != "approved" or not made.account:
            raise CommandError(f"demo customer {person.name} is {made.status}, not approved")
        self.log(f"customer {person.name} <{made.email}>: {made.status}, account {made.account}")
        session = self.bank.session(made.uid)
        return Customer(person, made, session, [a["accountId"] for a in session.accounts()])

    def employer(self) -> tuple[AppSession, str]:
        """The employer that pays the salaries: a company account in this bank, made through
        the ledger's admin path (the bank onboards persons only), funded once."""
        identity, _new = self.bank.sign_up_or_in(self.email("lonn", "fjordtech.example"), self.password)
        device = Device.load(self.bank.config.devices_dir, identity.uid)
        if device is None:
            device = Device.new(identity.uid, DEVICE_PREFIX)
            self.bank.admin.enrol_device(device)
            device.save(self.bank.config.devices_dir)
        accounts = [a["accountId"] for a in self.bank.admin.accounts_of(identity.uid)]
        if not accounts:
            for _ in range(20):
                number = _other_bank_in_ours(self.bank.config.bank_regs[0])
                try:
                    self.bank.admin.open_account(owner_uid=identity.uid, account_id=number, name="Fjordtech AS lønn")
                except StackUnreachable:
                    raise
                except CommandError:
                    continue  # taken: draw again
                accounts = [number]
                break
            else:
                raise CommandError("could not find a free account number for the demo employer")
        account = accounts[0]
        self.bank.admin.deposit_many([(self.rid("employer-capital"), account, 100_000_000)])
        self.log(f"employer Fjordtech AS: account {account} (admin path)")
        return self.bank.app_session(identity, device), account

    # ---- payments -----------------------------------------------------------------------------
    def pay(self, session: AppSession, kind: str, request_id: str, **body) -> str:
        try:
            session.request_payment(request_id=request_id, **body)
            self.tally.add(kind, True)
        except CommandError as exc:
            if "exists already" not in str(exc):
                raise
            self.tally.add(kind, False)
        return request_id

    def wait_all(self, pending: list[tuple[AppSession, str, str]], until=TERMINAL) -> None:
        """Follow each payment to ``until`` in threads: one that is not is a problem of the
        demo's; the stack not answering is the command's error (from the worker, one line)."""

        def one(session: AppSession, request_id: str, what: str) -> None:
            try:
                result = session.wait(request_id, timeout=90, until=until)
            except StackUnreachable:
                raise
            except CommandError as exc:
                self.tally.problems.append(f"{what}: {exc}")
                return
            if result.status in ("rejected", "failed"):
                self.tally.problems.append(f"{what}: {result.status} {result.reason or ''}".strip())

        with Workers(8, name="demo") as pool:
            for session, request_id, what in pending:
                pool.submit(f"following the {what}", one, session, request_id, what)
            pool.results()

    def salaries(self, employer: AppSession, employer_account: str, people: list[Customer]) -> None:
        pending = []
        for c in people:
            rid = self.rid(c.person.key, "salary", f"{self.today:%Y%m}")
            self.pay(
                employer,
                "salary",
                rid,
                from_account=employer_account,
                to_account=c.made.account,
                amount=c.person.salary,
                message=f"Lønn {self.month} Fjordtech AS",
            )
            pending.append((employer, rid, f"salary to {c.person.name}"))
        self.wait_all(pending)

    def savings(self, c: Customer) -> str:
        """A savings account named "Buffer" (the accounts_open callable), opened once."""
        existing = [a for a in c.session.accounts() if a.get("type") == "savings"]
        if existing:
            self.tally.add("savings account", False)
            return existing[0]["accountId"]
        identity = c.session.identity
        account = self.bank.callables.call("accounts_open", {"kind": "savings", "name": "Buffer"}, identity)[
            "accountId"
        ]
        self.tally.add("savings account", True)
        c.accounts.append(account)
        return account

    def everyday(self, people: list[Customer]) -> None:
        """Rent, bills with KID, transfers between the three, a transfer to savings."""
        ingrid, ola, amira = people
        pending = []
        ym = f"{self.today:%Y%m}"

        def pay(c: Customer, kind: str, name: str, **body) -> None:
            rid = self.rid(c.person.key, name, ym)
            self.pay(c.session, kind, rid, from_account=c.made.account, **body)
            pending.append((c.session, rid, f"{kind} from {c.person.name}"))

        for i, c in enumerate(people):
            pay(
                c,
                "rent",
                "rent",
                to_account=LANDLORDS[c.person.key],
                amount=c.person.rent,
                message=f"Husleie {self.month}",
            )
            customer_no = f"{7_300_000 + i * 1_111:08d}"
            pay(
                c,
                "bill with KID",
                "power",
                to_account=ELECTRICITY,
                amount=84_350 + i * 21_900,
                kid=mod10_kid(customer_no + ym),
            )
            pay(
                c,
                "bill with KID",
                "broadband",
                to_account=BROADBAND,
                amount=64_900,
                kid=mod11_kid("55" + customer_no + ym[2:]),
            )
        pay(
            ingrid, "bill with KID", "insurance", to_account=INSURANCE, amount=38_700, kid=mod10_kid("9020" + ym + "17")
        )
        pay(ingrid, "transfer", "to-ola", to_account=ola.made.account, amount=45_000, message="Takk for middagen!")
        pay(ola, "transfer", "to-amira", to_account=amira.made.account, amount=120_000, message="Hyttetur Hemsedal")
        pay(amira, "transfer", "to-ingrid", to_account=ingrid.made.account, amount=89_000, message="Konsertbilletter")
        savings = self.savings(ingrid)
        pay(ingrid, "transfer to savings", "savings", to_account=savings, amount=500_000, message="Sparing")
        self.wait_all(pending)

    def scheduled(self, c: Customer) -> str:
        """A payment with a later due date: it waits as "scheduled" for the due-payments job."""
        due = self.today + dt.timedelta(days=14)
        rid = self.rid(c.person.key, "studentloan", f"{self.today:%Y%m}")
        self.pay(
            c.session,
            "scheduled payment",
            rid,
            from_account=c.made.account,
            to_account=STUDENT_LOAN,
            amount=163_200,
            kid=mod10_kid("41" + f"{self.today:%Y%m}" + "5532"),
            due_date=due.isoformat(),
        )
        self.wait_all(
            [(c.session, rid, f"scheduled payment from {c.person.name}")], until=frozenset({"scheduled", *TERMINAL})
        )
        return due.isoformat()

    # ---- cards --------------------------------------------------------------------------------
    def card(self, c: Customer, cards: CardNetwork) -> dict:
        """The customer's virtual debit card (cards_issue, once), as printed on it."""
        usable = [k for k in self.bank.admin.cards_of(c.made.uid) if k.get("status") in ("active", "issuing")]
        if usable:
            card_id = usable[0]["cardId"]
            self.tally.add("card", False)
        else:
            card_id = self.bank.callables.call("cards_issue", {"accountId": c.made.account}, c.session.identity)[
                "cardId"
            ]
            self.tally.add("card", True)
        deadline = time.monotonic() + 60
        while True:
            doc = next((k for k in self.bank.admin.cards_of(c.made.uid) if k["cardId"] == card_id), {})
            if doc.get("status") == "active":
                break
            if time.monotonic() > deadline:
                raise CommandError(f"card {card_id} of {c.person.name} not active after 60 s")
            time.sleep(0.2)
        return {"cardId": card_id, "last4": doc.get("last4"), **cards.details(card_id)}

    def purchases(self, people: list[Customer]) -> set[str]:
        cards = self.bank.card_network()
        merchants: set[str] = set()
        for c in people:
            c.card = self.card(c, cards)
            items = [
                (m, mcc, amount, channel, f"p{i}") for i, (m, mcc, amount, channel) in enumerate(c.person.purchases)
            ]
            items.append((*c.person.streaming, "online", "streaming"))
            for merchant, mcc, amount, channel, ref in items:
                reference = self.rid(c.person.key, ref, f"{self.today:%Y%m}")
                kind = "streaming charge" if ref == "streaming" else "card purchase"
                with self.bank.admin.errors("reading the card authorisation"):
                    done = self.bank.admin.db.document(f"cardAuthorizations/{authorization_id(reference)}").get()
                if done.exists and done.get("status") == "captured":  # made by an earlier run
                    merchants.add(merchant)
                    self.tally.add(kind, False)
                    continue
                answer = cards.purchase(
                    c.card, reference=reference, amount=amount, merchant=merchant, mcc=mcc, channel=channel
                )
                if answer.get("approved"):
                    merchants.add(merchant)
                    self.tally.add(kind, True)
                elif answer.get("status") == "captured" or answer.get("reason") == "duplicate_reference":
                    merchants.add(merchant)
                    self.tally.add(kind, False)
                else:
                    self.tally.problems.append(f"{kind} at {merchant} for {c.person.name}: {answer.get('reason')}")
        return merchants

    def history(self, people: list[Customer], months: int = HISTORY_MONTHS) -> int:
        """The card purchases of the months before this one, booked on their days
        (bankctl/history.py): my economy gets months to compare, and the
        streaming charges become a subscription. Returns how many were booked now."""
        import asyncio
        import random

        from bankctl.history import PastPurchase, book
        from fjordbank.adapters import nats_conn
        from fjordbank.adapters.documents import AsyncFirestoreDocuments
        from fjordbank.adapters.firestore import async_client
        from fjordbank.adapters.publisher import AsyncJetStreamPublisher
        from fjordbank.config import load_settings
        from fjordbank.service_layer.ledger import Ledger

        plan = []
        for c in people:
            rng = random.Random(f"{self.tag}-{c.person.key}")  # the same history every run
            for back in range(months, 0, -1):
                first = _months_back(self.today, back)
                day = min(self.today.day, calendar.monthrange(first.year, first.month)[1])
                merchant, mcc, amount = c.person.streaming
                ym = f"{first:%Y%m}"
                plan.append(
                    (
                        c,
                        PastPurchase(
                            self.rid(c.person.key, "streaming", ym),
                            first.replace(day=day),
                            amount,
                            merchant,
                            mcc,
                            "online",
                        ),
                    )
                )
                for i, (name, code, price, channel) in enumerate(c.person.purchases):
                    for visit, visit_day in enumerate((4 + i, 16 + i)):
                        varied = price * rng.randint(70, 130) // 100
                        plan.append(
                            (
                                c,
                                PastPurchase(
                                    self.rid(c.person.key, f"h{i}v{visit}", ym),
                                    first.replace(day=visit_day),
                                    varied,
                                    name,
                                    code,
                                    channel,
                                ),
                            )
                        )
        settings = load_settings({**os.environ, **self.bank.config.stack.nats_env("admin")})

        async def run() -> tuple[int, int]:
            with talking_to(errors.NATS, self.bank.config.stack_settings.nats_urls):
                nc = await nats_conn.connect(settings.nats, name="bankctl-demo", max_reconnect_attempts=2)
            db = async_client(self.bank.config.project_id)
            docs = AsyncFirestoreDocuments(db)
            booked = already = 0
            try:
                # what those months cost, deposited once (their salaries cannot be backdated)
                for c in people:
                    cost = sum(p.amount for who, p in plan if who is c)
                    await Ledger(docs).deposit(
                        deposit_id=self.rid(c.person.key, "history-funds"), account_id=c.made.account, amount=cost
                    )
                published = AsyncJetStreamPublisher(nc.jetstream())
                for c, purchase in plan:
                    card = c.card
                    status = await book(
                        docs, published, card["cardId"], card["pan"], (card["exp_month"], card["exp_year"]), purchase
                    )
                    if status == "booked":
                        booked += 1
                    elif status == "already":
                        already += 1
                    else:
                        self.tally.problems.append(
                            f"past purchase at {purchase.merchant_name} for {c.person.name}: {status}"
                        )
            finally:
                await nc.close()
            return booked, already

        with step("booking the past card purchases"):
            booked, already = asyncio.run(run())
        if booked:
            self.tally.made["past card purchase"] = booked
        if already:
            self.tally.existing["past card purchase"] = already
        return booked

    # ---- the whole demo -----------------------------------------------------------------------
    def run(self) -> dict:
        with step("demo"):
            return self._run()

    def _run(self) -> dict:
        people = self.customers()
        with step("the employer"):
            employer, employer_account = self.employer()
        self.log("salaries ...")
        with step("salaries"):
            self.salaries(employer, employer_account, people)
        self.log("rent, bills with KID, transfers ...")
        with step("rent, bills and transfers"):
            self.everyday(people)
        self.log("card purchases ...")
        with step("card purchases"):
            merchants = self.purchases(people)
        self.log(f"card purchases of the last {HISTORY_MONTHS} months ...")
        self.history(people)
        with step("the scheduled payment"):
            due = self.scheduled(people[1])
        with step("the standing order"):
            standing = self.standing_order(people[0])
        out = []
        for c in people:
            accounts = []
            for a in self.bank.admin.accounts_of(c.made.uid):
                accounts.append({"accountId": a["accountId"], "name": a.get("name"), "balance": a.get("balance", 0)})
            out.append(
                {
                    "name": c.person.name,
                    "uid": c.made.uid,
                    "email": c.made.email,
                    "password": self.password,
                    "accounts": accounts,
                    "card": {"cardId": c.card["cardId"], "last4": c.card.get("last4")} if c.card else None,
                }
            )
            c.session.close()
        employer.close()
        web_port = getattr(self.bank.config.stack_settings, "web_port", 9200)
        return {
            "tag": self.tag,
            "webApp": f"http://127.0.0.1:{web_port}",
            "customers": out,
            "employer": {"name": "Fjordtech AS", "account": employer_account},
            "merchants": sorted(merchants),
            "scheduledDueDate": due,
            "standingOrder": standing,
            "made": self.tally.made,
            "existing": self.tally.existing,
            "problems": self.tally.problems,
        }

    def standing_order(self, c: Customer) -> dict | None:
        """Rent as a monthly standing order from the 1st of next month (the
        standing_orders_create callable, confirmed on the device; idempotent by order id)."""
        first = (self.today.replace(day=1) + dt.timedelta(days=32)).replace(day=1)
        order_id = "-".join(("demo", self.tag, c.person.key, "rent"))
        to_account, amount = LANDLORDS[c.person.key], c.person.rent
        body = {
            "orderId": order_id,
            "fromAccount": c.made.account,
            "toAccount": to_account,
            "amount": amount,
            "message": "Husleie",
            "frequency": "monthly",
            "startDate": first.isoformat(),
            "sca": c.session.device.confirm_order(
                order_id,
                amount,
                "NOK",
                to_account,
                "monthly",
                first.isoformat(),
                from_account=c.made.account,
                end_date=None,
            ),
        }
        with self.bank.admin.errors("reading the standing order"):
            existed = self.bank.admin.db.document(f"users/{c.made.uid}/standingOrders/{order_id}").get().exists
        try:
            result = self.bank.callables.call("standing_orders_create", body, c.session.identity)
        except StackUnreachable:
            raise
        except Refused as exc:
            if exc.reason is None or exc.reason in ("NOT_FOUND", "UNIMPLEMENTED"):
                self.log(f"no standing order: {exc}")
                return None
            raise
        except CommandError as exc:  # no such function in this backend
            self.log(f"no standing order: {exc}")
            return None
        self.tally.add("standing order", not existed)
        return {k: result.get(k) for k in ("orderId", "status", "frequency", "nextDue", "amount", "toAccount")}


def _other_bank_in_ours(bank_reg: str) -> str:
    """An account number in our registry range, group 99 (the registry issues from group 00)."""
    import secrets

    while True:
        try:
            return make_account_number(bank_reg, "99", secrets.randbelow(10_000))
        except InvalidAccountNumber:
            continue


def render(result: dict) -> str:
    lines = [f"Demo customers (sign in to the web app at {result['webApp']} with e-mail and password):"]
    for c in result["customers"]:
        accounts = ", ".join(f"{a['accountId']} {a['name']} {kroner(a['balance'])}" for a in c["accounts"])
        card = f", card **** {c['card']['last4']}" if c.get("card") else ""
        lines.append(f"  {c['name']:<15} {c['email']:<28} password {c['password']}  {accounts}{card}")
    made = ", ".join(f"{n} {k}" for k, n in result["made"].items()) or "nothing new"
    lines.append(f"made: {made}")
    if result["existing"]:
        lines.append("already there: " + ", ".join(f"{n} {k}" for k, n in result["existing"].items()))
    lines.append(f"merchants: {', '.join(result['merchants'])}")
    lines.append(f"scheduled payment due {result['scheduledDueDate']} (shown as scheduled until then)")
    order = result["standingOrder"]
    if order is None:
        lines.append("standing order: not made (the backend has no standing_orders_create callable)")
    else:
        lines.append(
            f"standing order {order['orderId']}: {order['frequency']} {kroner(order['amount'])} "
            f"to {order['toAccount']}, next due {order['nextDue']} ({order['status']})"
        )
    lines.append(f"salaries paid by {result['employer']['name']}, account {result['employer']['account']}")
    lines.append(
        "note: their device keys are bankctl's: in the web app they pay earlier payees below the SCA "
        "threshold; a new payee needs `bankctl pay`"
    )
    for problem in result["problems"]:
        lines.append(f"problem: {problem}")
    return "\n".join(lines)
