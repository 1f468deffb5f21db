"""ISO 20022 interbank files for payments from other Norwegian banks to Fjordbank customers.

* ``pacs.008.001.08`` (FI to FI Customer Credit Transfer): what the clearing house delivers
  when another bank's customer pays one of ours (a salary, a refund, a friend at another
  bank). :func:`parse_pacs008` reads one; :func:`build_pacs008` writes one (the simulated
  other banks and the tests send them).
* ``pacs.004.001.09`` (Payment Return): what Fjordbank sends back for a credit it cannot
  apply (no such account, a closed one). :func:`build_pacs004` writes one;
  :func:`parse_pacs004` reads it (the simulated other banks take them).

Pure functions, standard library only, read as defensively as the outgoing files
(fjordbank.domain.iso20022: no DTDs or entities, size limits, every inconsistency an
`InvalidPaymentFile`; error messages never carry a whole account number).

Choices, for domestic NOK clearing (NICS):

* A credit is identified by its debtor agent (the BIC's first eight characters: ``DNBANOKK``
  and ``DNBANOKKXXX`` are one bank), its settlement date and its ``TxId`` (the instructing
  bank's id of the interbank transaction): `IncomingTransfer.key`. The clearing house may
  deliver a file again; a transfer with the same key is the same payment. The date guards
  against a bank that uses a ``TxId`` again on another day.
* A file is the clearing house's for this bank (``CdtrAgt``, when the reader is told its
  BIC) and settles within `SETTLEMENT_WINDOW_DAYS` of its creation; anything else is a
  damaged or misrouted file, refused whole.
* What the customer is shown is read leniently, since no rule of ours made it: every
  ``Ustrd`` line joined, a structured reference that is not a valid KID left out, control
  and format characters (bidi overrides among them) read as spaces, cut to the field's
  length. Only a payer's name that is empty after that refuses the file.
* Only NOK, only Norwegian accounts (IBAN ``NO..`` or an 11-digit BBAN under ``Othr/Id``),
  one settlement date per transfer (``IntrBkSttlmDt`` on the transfer, else the group
  header's). ``NbOfTxs`` and, when given, ``TtlIntrBkSttlmAmt`` must match.
* Every BIC, read or written, is held to these messages' own type, ISO 9362:2014's
  (`_BICFI_RE`), not to the older one of the pain.001.001.03 the bank sends.
* The creditor's name is optional (the account number decides where money goes); the
  debtor's name is required: it is what the customer's feed shows the money came from.
* A return gives the original message id and name, the original ``EndToEndId``, ``TxId``,
  amount and settlement date, the amount returned (all of it: no charges are taken) on
  the banking day it is sent, the banks (``InstgAgt`` this bank, ``InstdAgt`` the paying
  bank) and the reason (``AC01`` no such account, ``AC04`` closed, ``AM03`` currency not
  held, ``MS03`` other).
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from datetime import date, datetime, timedelta

# one family of files with the outgoing ones: their readers, checks and writers
from fjordbank.domain.iso20022 import (
    _KID_FORMAT_RE,
    _REASON_CODE_RE,
    CREDITOR_REFERENCE_TYPE,
    MAX_CONTROL_SUM_MINOR,
    MAX_ID_LENGTH,
    MAX_MESSAGE_LENGTH,
    MAX_NAME_LENGTH,
    InvalidPaymentFile,
    Party,
    _add_account,
    _check_optional_text,
    _check_text,
    _check_utc_datetime,
    _document,
    _fail,
    _format_datetime,
    _parse_account,
    _parse_amount,
    _parse_count,
    _parse_date,
    _parse_datetime,
    _path,
    _Reader,
    _root,
    _serialize,
    _sub,
    _wrap,
    format_amount,
)
from fjordbank.domain.money import MAX_MINOR, NOK
from fjordbank.domain.norway import KID_MAX_LENGTH, KID_MIN_LENGTH, today_in_norway

__all__ = [
    "PACS004_NS",
    "PACS008_NAME",
    "PACS008_NS",
    "RETURN_CLOSED_ACCOUNT",
    "RETURN_CURRENCY",
    "RETURN_NO_ACCOUNT",
    "RETURN_NO_PAYER_ACCOUNT",
    "RETURN_NO_PAYER_NAME",
    "RETURN_OTHER",
    "IncomingBatch",
    "IncomingTransfer",
    "InvalidPaymentFile",
    "PaymentReturn",
    "RefusedCredit",
    "ReturnBatch",
    "build_pacs004",
    "build_pacs008",
    "parse_pacs004",
    "parse_pacs008",
]

PACS008_NS = "urn:iso:std:iso:20022:tech:xsd:pacs.008.001.08"
PACS008_NAME = "pacs.008.001.08"
PACS004_NS = "urn:iso:std:iso:20022:tech:xsd:pacs.004.001.09"
SETTLEMENT_METHOD = "CLRG"  # settled through the clearing system (NICS)

# ExternalReturnReason1Code
RETURN_NO_ACCOUNT = "AC01"  # IncorrectAccountNumber
RETURN_CLOSED_ACCOUNT = "AC04"  # ClosedAccountNumber
RETURN_CURRENCY = "AM03"  # NotAllowedCurrency
RETURN_OTHER = "MS03"  # NotSpecifiedReasonAgentGenerated
RETURN_NO_PAYER_ACCOUNT = "RR01"  # MissingDebtorAccountOrIdentification
RETURN_NO_PAYER_NAME = "RR02"  # MissingDebtorNameOrAddress

KEY_PREFIX = "in"  # an incoming payment's id: "in" + 30 hex digits of its key's SHA-256
SETTLEMENT_WINDOW_DAYS = 7  # a credit settles within this many days of its file's creation
# BICFIDec2014Identifier (ISO 9362:2014), the type of every BIC in pacs.008.001.08 and
# pacs.004.001.09: a letter or a digit anywhere in the bank code and the location. Checked
# with pain.001.001.03's older BICIdentifier (iso20022, kept for the files the bank writes
# in it), a credit from a bank with such a BIC (AB1CNOKK, DNBANOKO) refused its
# schema-valid file whole (found in review, 2026-12-06).
_BICFI_RE = re.compile(r"[A-Z0-9]{4}[A-Z]{2}[A-Z0-9]{2}(?:[A-Z0-9]{3})?")
_HIDDEN = frozenset({"Cc", "Cf", "Cs", "Co", "Zl", "Zp"})  # read as spaces in shown text


def shown_text(text: str | None, limit: int) -> str | None:
    """Text from another bank as a customer may be shown it: control and format characters
    (line breaks, bidi overrides, zero-width ones) as spaces, runs of spaces as one, at most
    ``limit`` characters; None when nothing is left."""
    if text is None:
        return None
    kept = "".join(" " if unicodedata.category(c) in _HIDDEN or c in "\ufffe\uffff" else c for c in text)
    return " ".join(kept.split())[:limit] or None


def same_bank(bic: str) -> str:
    """A BIC's bank and country and location (its first eight characters): the branch
    code ``XXX`` names the same bank as none."""
    return bic.strip().upper()[:8]


def _check_bic(value: object, what: str) -> str:
    if not isinstance(value, str) or _BICFI_RE.fullmatch(value) is None:
        raise _fail(f"{what} must be a BIC (8 or 11 upper-case letters/digits), got {value!r}")
    return value


def is_kid(value: object) -> bool:
    return (
        isinstance(value, str)
        and KID_MIN_LENGTH <= len(value) <= KID_MAX_LENGTH
        and _KID_FORMAT_RE.fullmatch(value) is not None
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class IncomingTransfer:
    """One credit from another bank to an account here (keyword arguments only).

    Attributes:
        transaction_id: ``TxId``, the instructing bank's id of the transfer (1-35).
        end_to_end_id: ``EndToEndId``, the payer's own reference (``NOTPROVIDED`` if none).
        amount_minor: øre, a positive ``int``.
        currency: only ``"NOK"``.
        settlement_date: the interbank settlement date.
        debtor: the payer and the account debited at the other bank.
        debtor_agent_bic: the payer's bank.
        creditor_account: the account credited here (11 digits, MOD11).
        creditor_name: the payee's name as the payer gave it, or None.
        kid, message: a KID (structured reference) and a free-text message, each optional.
    """

    transaction_id: str
    end_to_end_id: str
    amount_minor: int
    currency: str = NOK
    settlement_date: date
    debtor: Party
    debtor_agent_bic: str
    creditor_account: str
    creditor_name: str | None = None
    kid: str | None = None
    message: str | None = None

    def __post_init__(self) -> None:
        _check_credit(self)
        if not isinstance(self.debtor, Party):
            raise _fail("debtor must be a Party")
        object.__setattr__(self, "creditor_account", Party("creditor", self.creditor_account).account)
        _check_optional_text(self.creditor_name, "creditor name", MAX_NAME_LENGTH)
        if self.kid is not None and not is_kid(self.kid):
            raise _fail(f"KID must be {KID_MIN_LENGTH}-{KID_MAX_LENGTH} digits (the last may be '-')")
        _check_optional_text(self.message, "message", MAX_MESSAGE_LENGTH)

    @property
    def key(self) -> str:
        """What makes this credit one payment however often it is delivered: its bank, its
        settlement date and that bank's transaction id."""
        return credit_key(self.debtor_agent_bic, self.settlement_date, self.transaction_id)

    @property
    def payment_id(self) -> str:
        """Fjordbank's id of the payment (the ledger's record, the feed entry): from `key`."""
        return payment_id_of(self.key)


def credit_key(debtor_agent_bic: str, settlement_date: date, transaction_id: str) -> str:
    return f"{same_bank(debtor_agent_bic)}/{settlement_date.isoformat()}/{transaction_id.strip()}"


def payment_id_of(key: str) -> str:
    return KEY_PREFIX + hashlib.sha256(key.encode()).hexdigest()[:30]


@dataclass(frozen=True, slots=True, kw_only=True)
class RefusedCredit:
    """A credit of a file that is whole but that this bank cannot take as it is (its payer's
    account missing or not Norwegian, no payer's name, the account credited not a valid
    number): sent back on its own with ``reason_code``, the file's other credits taken."""

    transaction_id: str
    end_to_end_id: str
    amount_minor: int
    currency: str = NOK
    settlement_date: date
    debtor_agent_bic: str
    reason_code: str
    why: str  # for the log (no account number in it)
    debtor_name: str | None = None  # the payer's, when the file gives one: screened before it goes back

    def __post_init__(self) -> None:
        # what names it and its money is checked as a transfer's is: its return names them
        # (payment_return), and one that could not be made would be found only after the
        # file's other credits were published, with the file left in incoming/ for ever
        _check_credit(self)
        _check_optional_text(self.debtor_name, "debtor name", MAX_NAME_LENGTH)

    @property
    def key(self) -> str:
        return credit_key(self.debtor_agent_bic, self.settlement_date, self.transaction_id)

    @property
    def payment_id(self) -> str:
        return payment_id_of(self.key)


def _check_credit(credit: IncomingTransfer | RefusedCredit) -> None:
    """What names a credit from another bank and its money: its ids, amount, currency,
    settlement date and the paying bank's BIC. Raises `InvalidPaymentFile`."""
    _check_text(credit.transaction_id, "transaction id", MAX_ID_LENGTH)
    _check_text(credit.end_to_end_id, "end-to-end id", MAX_ID_LENGTH)
    amount = credit.amount_minor
    if isinstance(amount, bool) or not isinstance(amount, int) or not 0 < amount <= MAX_MINOR:
        raise _fail(f"amount must be an int number of øre between 1 and {MAX_MINOR}")
    if credit.currency != NOK:
        raise _fail(f"only NOK is cleared between Norwegian banks, got {str(credit.currency)[:3]!r}")
    settlement = credit.settlement_date
    if isinstance(settlement, datetime) or not isinstance(settlement, date):
        raise _fail("settlement date must be a date (not a datetime)")
    if not isinstance(credit.debtor_agent_bic, str) or _BICFI_RE.fullmatch(credit.debtor_agent_bic) is None:
        raise _fail("debtor agent BIC is not a BIC")


@dataclass(frozen=True, slots=True)
class IncomingBatch:
    """A pacs.008 message: one or more credits, by ``transaction`` key unique in the file."""

    message_id: str
    created_at: datetime
    transfers: tuple[IncomingTransfer, ...]
    refused: tuple[RefusedCredit, ...] = ()  # read from the file, to be sent back

    def __post_init__(self) -> None:
        _check_text(self.message_id, "message id", MAX_ID_LENGTH)
        object.__setattr__(self, "created_at", _check_utc_datetime(self.created_at, "created_at"))
        transfers = tuple(self.transfers) if isinstance(self.transfers, tuple | list) else None
        refused = tuple(self.refused) if isinstance(self.refused, tuple | list) else None
        if transfers is None or refused is None or not transfers + refused:
            raise _fail("a pacs.008 needs at least one transfer")
        if not all(isinstance(t, IncomingTransfer) for t in transfers):
            raise _fail("transfers must be IncomingTransfer instances")
        if not all(isinstance(r, RefusedCredit) for r in refused):
            raise _fail("refused credits must be RefusedCredit instances")
        object.__setattr__(self, "refused", refused)
        keys = [t.key for t in transfers] + [r.key for r in refused]
        if len(set(keys)) != len(keys):
            raise _fail("a transaction id occurs twice for one bank in the file")
        if sum(t.amount_minor for t in transfers) > MAX_CONTROL_SUM_MINOR:
            raise _fail("the file's total exceeds 18 digits")
        object.__setattr__(self, "transfers", transfers)


@dataclass(frozen=True, slots=True, kw_only=True)
class PaymentReturn:
    """One credit sent back: which one (the original message and ids), how much, why."""

    return_id: str
    original_message_id: str
    original_end_to_end_id: str
    original_transaction_id: str
    amount_minor: int
    currency: str = NOK
    original_settlement_date: date
    settlement_date: date  # the banking day it settles: the day it is sent, never before the original
    instructing_agent_bic: str  # this bank
    instructed_agent_bic: str  # the paying bank, which gets its money back
    reason_code: str

    def __post_init__(self) -> None:
        for value, what in (
            (self.return_id, "return id"),
            (self.original_message_id, "original message id"),
            (self.original_end_to_end_id, "original end-to-end id"),
            (self.original_transaction_id, "original transaction id"),
        ):
            _check_text(value, what, MAX_ID_LENGTH)
        amount = self.amount_minor
        if isinstance(amount, bool) or not isinstance(amount, int) or not 0 < amount <= MAX_MINOR:
            raise _fail(f"amount must be an int number of øre between 1 and {MAX_MINOR}")
        if self.currency != NOK:
            raise _fail("only NOK is returned")
        for day in (self.settlement_date, self.original_settlement_date):
            if isinstance(day, datetime) or not isinstance(day, date):
                raise _fail("settlement dates must be dates")
        _check_bic(self.instructing_agent_bic, "instructing agent BIC")
        _check_bic(self.instructed_agent_bic, "instructed agent BIC")
        if not isinstance(self.reason_code, str) or _REASON_CODE_RE.fullmatch(self.reason_code) is None:
            raise _fail("reason code must be 4 upper-case letters/digits")


@dataclass(frozen=True, slots=True)
class ReturnBatch:
    message_id: str
    created_at: datetime
    returns: tuple[PaymentReturn, ...]

    def __post_init__(self) -> None:
        _check_text(self.message_id, "message id", MAX_ID_LENGTH)
        object.__setattr__(self, "created_at", _check_utc_datetime(self.created_at, "created_at"))
        returns = tuple(self.returns) if isinstance(self.returns, tuple | list) else None
        if not returns or not all(isinstance(r, PaymentReturn) for r in returns):
            raise _fail("a pacs.004 needs at least one PaymentReturn")
        object.__setattr__(self, "returns", returns)


# ------------------------------------------------------------------ pacs.008


def build_pacs008(batch: IncomingBatch, *, creditor_agent_bic: str) -> bytes:
    """Write ``batch`` as a ``pacs.008.001.08`` document, as the clearing house delivers it
    to ``creditor_agent_bic`` (Fjordbank)."""
    if not isinstance(batch, IncomingBatch):
        raise _fail(f"expected an IncomingBatch, got {type(batch).__name__}")
    _check_bic(creditor_agent_bic, "creditor agent BIC")
    root = _document(PACS008_NS)
    body = _sub(root, "FIToFICstmrCdtTrf")
    header = _sub(body, "GrpHdr")
    _sub(header, "MsgId", batch.message_id)
    _sub(header, "CreDtTm", _format_datetime(batch.created_at))
    _sub(header, "NbOfTxs", str(len(batch.transfers)))
    total = _sub(header, "TtlIntrBkSttlmAmt", format_amount(sum(t.amount_minor for t in batch.transfers)))
    total.set("Ccy", NOK)
    _path(header, "SttlmInf/SttlmMtd", SETTLEMENT_METHOD)
    for t in batch.transfers:
        tx = _sub(body, "CdtTrfTxInf")
        payment_id = _sub(tx, "PmtId")
        _sub(payment_id, "EndToEndId", t.end_to_end_id)
        _sub(payment_id, "TxId", t.transaction_id)
        _sub(tx, "IntrBkSttlmAmt", format_amount(t.amount_minor)).set("Ccy", t.currency)
        _sub(tx, "IntrBkSttlmDt", t.settlement_date.isoformat())
        _sub(tx, "ChrgBr", "SLEV")
        _path(tx, "Dbtr/Nm", t.debtor.name)
        _add_account(tx, "DbtrAcct", t.debtor.account)
        _path(tx, "DbtrAgt/FinInstnId/BICFI", t.debtor_agent_bic)
        _path(tx, "CdtrAgt/FinInstnId/BICFI", creditor_agent_bic)
        creditor = _sub(tx, "Cdtr")
        if t.creditor_name is not None:
            _sub(creditor, "Nm", t.creditor_name)
        _add_account(tx, "CdtrAcct", t.creditor_account)
        if t.kid is not None or t.message is not None:
            remittance = _sub(tx, "RmtInf")
            if t.message is not None:
                _sub(remittance, "Ustrd", t.message)
            if t.kid is not None:
                reference = _sub(_sub(remittance, "Strd"), "CdtrRefInf")
                _path(reference, "Tp/CdOrPrtry/Cd", CREDITOR_REFERENCE_TYPE)
                _sub(reference, "Ref", t.kid)
    return _serialize(root)


def parse_pacs008(xml: bytes, *, bic: str | None = None) -> IncomingBatch:
    """Read a ``pacs.008.001.08`` document; ``bic``: this bank's, which every credit's
    ``CdtrAgt`` must name (`same_bank`). Raises `InvalidPaymentFile` on hostile, malformed,
    inconsistent or misrouted input (the whole file: the clearing house is asked to send it
    again)."""
    reader, body = _root(xml, PACS008_NS, "FIToFICstmrCdtTrf")
    header = reader.one(body, "GrpHdr")
    message_id = reader.text(header, "MsgId")
    created_at = _parse_datetime(reader.token(header, "CreDtTm"), "CreDtTm")
    declared = _parse_count(reader.token(header, "NbOfTxs"), "GrpHdr/NbOfTxs")
    method = reader.opt_text(header, "SttlmInf/SttlmMtd")
    if method is not None and method.strip() != SETTLEMENT_METHOD:
        raise _fail(f"settlement method must be {SETTLEMENT_METHOD}")
    default_date = reader.opt_text(header, "IntrBkSttlmDt")
    transactions = reader.all(body, "CdtTrfTxInf")
    if declared != len(transactions):
        raise _fail(f"GrpHdr/NbOfTxs is {declared} but the file holds {len(transactions)} transfers")
    read = [_parse_credit(reader, tx, default_date, bic) for tx in transactions]
    transfers = [t for t in read if isinstance(t, IncomingTransfer)]
    refused = [t for t in read if isinstance(t, RefusedCredit)]
    try:
        created = today_in_norway(created_at)
    except OverflowError:  # a well-formed time at the calendar's edge: past year 9999 in Oslo
        raise _fail("CreDtTm is out of range") from None
    window = timedelta(days=SETTLEMENT_WINDOW_DAYS)
    if any(abs(t.settlement_date - created) > window for t in read):
        raise _fail(f"a settlement date more than {SETTLEMENT_WINDOW_DAYS} days from the file's creation")
    total = reader.opt(header, "TtlIntrBkSttlmAmt")
    if total is not None:
        if (total.get("Ccy") or "").strip() != NOK:
            raise _fail("TtlIntrBkSttlmAmt must be in NOK")
        if _parse_amount(reader.leaf_text(total).strip(), "TtlIntrBkSttlmAmt") != sum(t.amount_minor for t in read):
            raise _fail("TtlIntrBkSttlmAmt does not equal the sum of the amounts")
    return _wrap(
        "pacs.008",
        lambda: IncomingBatch(
            message_id=message_id, created_at=created_at, transfers=tuple(transfers), refused=tuple(refused)
        ),
    )


def _bic(reader: _Reader, parent: ET.Element, what: str) -> str:
    """``FinInstnId/BICFI`` (or the older ``BIC``) of an agent."""
    element = reader.opt(parent, "FinInstnId/BICFI")
    if element is None:  # (an Element without children is falsy: never ``or`` two of them)
        element = reader.opt(parent, "FinInstnId/BIC")
    if element is None:
        raise _fail(f"{what} needs a BIC")
    return reader.leaf_text(element).strip()


def _parse_credit(
    reader: _Reader, tx: ET.Element, default_date: str | None, bic: str | None
) -> IncomingTransfer | RefusedCredit:
    """One credit; a `RefusedCredit` when what identifies it and its money is read but its
    parties are not ones this bank can take (a missing payer's account is ``RR01``, a
    missing payer's name ``RR02``, an account credited that is no valid number ``AC01``).
    Raises `InvalidPaymentFile` when even that cannot be read (the whole file is refused)."""
    transaction_id = reader.token(tx, "PmtId/TxId")
    where = f"transfer {transaction_id[:35]!r}"
    end_to_end_id = reader.text(tx, "PmtId/EndToEndId")
    amount_element = reader.one(tx, "IntrBkSttlmAmt")
    currency = (amount_element.get("Ccy") or "").strip()
    amount = _parse_amount(reader.leaf_text(amount_element).strip(), f"{where} amount")
    settlement = reader.opt_text(tx, "IntrBkSttlmDt") or default_date
    if settlement is None:
        raise _fail(f"{where}: no interbank settlement date (IntrBkSttlmDt)")
    settlement_date = _parse_date(settlement.strip(), f"{where} IntrBkSttlmDt")
    debtor_agent = _bic(reader, reader.one(tx, "DbtrAgt"), f"{where} debtor agent")
    creditor_agent = _bic(reader, reader.one(tx, "CdtrAgt"), f"{where} creditor agent")
    if bic is not None and same_bank(creditor_agent) != same_bank(bic):
        raise _fail(f"{where} is for another bank ({creditor_agent[:11]!r})")
    if currency != NOK or not 0 < amount <= MAX_MINOR:
        raise _fail(f"{where}: only NOK amounts from 0.01 are cleared between Norwegian banks")

    debtor_name = shown_text(reader.opt_text(tx, "Dbtr/Nm"), MAX_NAME_LENGTH)

    def refused(reason_code: str, why: str) -> RefusedCredit:
        return _wrap(
            where,
            lambda: RefusedCredit(
                transaction_id=transaction_id,
                end_to_end_id=end_to_end_id,
                amount_minor=amount,
                currency=currency,
                settlement_date=settlement_date,
                debtor_agent_bic=debtor_agent,
                reason_code=reason_code,
                why=why,
                debtor_name=debtor_name,
            ),
        )

    if debtor_name is None:
        return refused(RETURN_NO_PAYER_NAME, "no payer's name")
    debtor_account_element = reader.opt(tx, "DbtrAcct")
    if debtor_account_element is None:
        return refused(RETURN_NO_PAYER_ACCOUNT, "no payer's account")
    try:
        debtor_account = _parse_account(reader, debtor_account_element, f"{where} debtor account")
    except InvalidPaymentFile as exc:
        return refused(RETURN_NO_PAYER_ACCOUNT, exc.message)
    creditor_name = shown_text(reader.opt_text(tx, "Cdtr/Nm"), MAX_NAME_LENGTH)
    try:
        creditor_account = _parse_account(reader, reader.one(tx, "CdtrAcct"), f"{where} creditor account")
    except InvalidPaymentFile as exc:
        return refused(RETURN_NO_ACCOUNT, exc.message)
    kid, message = _lenient_remittance(reader, tx)
    return _wrap(
        where,
        lambda: IncomingTransfer(
            transaction_id=transaction_id,
            end_to_end_id=end_to_end_id,
            amount_minor=amount,
            currency=currency,
            settlement_date=settlement_date,
            debtor=Party(debtor_name, debtor_account),
            debtor_agent_bic=debtor_agent,
            creditor_account=creditor_account,
            creditor_name=creditor_name,
            kid=kid,
            message=message,
        ),
    )


def _lenient_remittance(reader: _Reader, tx: ET.Element) -> tuple[str | None, str | None]:
    """(kid, message) of a credit: the first SCOR reference that is a valid KID, and every
    ``Ustrd`` line joined (`shown_text`). Anything else in ``RmtInf`` (invoice references,
    a reference that is no KID) is left out: it is the payer's bank's to send, not a reason
    to hold the money."""
    kid: str | None = None
    lines: list[str] = []
    for remittance in reader.all(tx, "RmtInf"):
        lines += [reader.leaf_text(line) for line in reader.all(remittance, "Ustrd")]
        for structured in reader.all(remittance, "Strd"):
            for reference in reader.all(structured, "CdtrRefInf"):
                kind = reader.opt_text(reference, "Tp/CdOrPrtry/Cd")
                ref = reader.opt_text(reference, "Ref")
                if kid is None and kind is not None and kind.strip() == CREDITOR_REFERENCE_TYPE and ref:
                    kid = ref.strip() if is_kid(ref.strip()) else None
    return kid, shown_text(" ".join(lines), MAX_MESSAGE_LENGTH)


# ------------------------------------------------------------------ pacs.004


def build_pacs004(batch: ReturnBatch) -> bytes:
    """Write ``batch`` as a ``pacs.004.001.09`` document (the credits Fjordbank sends back)."""
    if not isinstance(batch, ReturnBatch):
        raise _fail(f"expected a ReturnBatch, got {type(batch).__name__}")
    root = _document(PACS004_NS)
    body = _sub(root, "PmtRtr")
    header = _sub(body, "GrpHdr")
    _sub(header, "MsgId", batch.message_id)
    _sub(header, "CreDtTm", _format_datetime(batch.created_at))
    _sub(header, "NbOfTxs", str(len(batch.returns)))
    _path(header, "SttlmInf/SttlmMtd", SETTLEMENT_METHOD)
    for r in batch.returns:
        tx = _sub(body, "TxInf")
        _sub(tx, "RtrId", r.return_id)
        original = _sub(tx, "OrgnlGrpInf")
        _sub(original, "OrgnlMsgId", r.original_message_id)
        _sub(original, "OrgnlMsgNmId", PACS008_NAME)
        _sub(tx, "OrgnlEndToEndId", r.original_end_to_end_id)
        _sub(tx, "OrgnlTxId", r.original_transaction_id)
        _sub(tx, "OrgnlIntrBkSttlmAmt", format_amount(r.amount_minor)).set("Ccy", r.currency)
        _sub(tx, "OrgnlIntrBkSttlmDt", r.original_settlement_date.isoformat())
        _sub(tx, "RtrdIntrBkSttlmAmt", format_amount(r.amount_minor)).set("Ccy", r.currency)
        _sub(tx, "IntrBkSttlmDt", r.settlement_date.isoformat())
        _path(tx, "InstgAgt/FinInstnId/BICFI", r.instructing_agent_bic)
        _path(tx, "InstdAgt/FinInstnId/BICFI", r.instructed_agent_bic)
        _path(tx, "RtrRsnInf/Rsn/Cd", r.reason_code)
    return _serialize(root)


def parse_pacs004(xml: bytes) -> ReturnBatch:
    """Read a ``pacs.004.001.09`` document. Raises `InvalidPaymentFile`."""
    reader, body = _root(xml, PACS004_NS, "PmtRtr")
    header = reader.one(body, "GrpHdr")
    message_id = reader.text(header, "MsgId")
    created_at = _parse_datetime(reader.token(header, "CreDtTm"), "CreDtTm")
    declared = _parse_count(reader.token(header, "NbOfTxs"), "GrpHdr/NbOfTxs")
    returns = [_parse_return(reader, tx) for tx in reader.all(body, "TxInf")]
    if declared != len(returns):
        raise _fail(f"GrpHdr/NbOfTxs is {declared} but the file holds {len(returns)} returns")
    return _wrap("pacs.004", lambda: ReturnBatch(message_id=message_id, created_at=created_at, returns=tuple(returns)))


def _parse_return(reader: _Reader, tx: ET.Element) -> PaymentReturn:
    return_id = reader.text(tx, "RtrId")
    where = f"return {return_id[:35]!r}"
    if reader.token(tx, "OrgnlGrpInf/OrgnlMsgNmId") != PACS008_NAME:
        raise _fail(f"{where} does not return a {PACS008_NAME}")
    amount_element = reader.one(tx, "RtrdIntrBkSttlmAmt")
    amount = _parse_amount(reader.leaf_text(amount_element).strip(), f"{where} amount")
    original_message_id = reader.text(tx, "OrgnlGrpInf/OrgnlMsgId")
    original_end_to_end_id = reader.text(tx, "OrgnlEndToEndId")
    original_transaction_id = reader.text(tx, "OrgnlTxId")
    currency = (amount_element.get("Ccy") or "").strip()
    settlement_date = _parse_date(reader.token(tx, "IntrBkSttlmDt"), f"{where} IntrBkSttlmDt")
    original_date = _parse_date(reader.token(tx, "OrgnlIntrBkSttlmDt"), f"{where} OrgnlIntrBkSttlmDt")
    instructing = _bic(reader, reader.one(tx, "InstgAgt"), f"{where} instructing agent")
    instructed = _bic(reader, reader.one(tx, "InstdAgt"), f"{where} instructed agent")
    reason_code = reader.token(tx, "RtrRsnInf/Rsn/Cd")
    return _wrap(
        where,
        lambda: PaymentReturn(
            return_id=return_id,
            original_message_id=original_message_id,
            original_end_to_end_id=original_end_to_end_id,
            original_transaction_id=original_transaction_id,
            amount_minor=amount,
            currency=currency,
            original_settlement_date=original_date,
            settlement_date=settlement_date,
            instructing_agent_bic=instructing,
            instructed_agent_bic=instructed,
            reason_code=reason_code,
        ),
    )
