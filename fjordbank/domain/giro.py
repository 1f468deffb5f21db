"""Invoice scanning: a Norwegian giro read by the phone's text recognition, free of I/O.

Two inputs, both turned into a payment draft (account, amount in øre or none where the
giro leaves it to the payer, KID, due date):

* the OCR line at the bottom of a giro (OCR-B):

      <KID>  #  <kroner> <øre> <amount check digit>  >  <to-account> #

  The amount check digit is the MOD10 (Luhn) digit of kroner and øre written together;
  the account has its MOD11 digit, the KID its MOD10 or MOD11 check character (a MOD11
  KID ends in ``-`` when the remainder leaves 10). As printed (the OCR giro's layout:
  wiki.cordel.no, "Krav til oppsett av giroblankett for OCR"), the line may begin with the
  pre-printed alignment mark ``H``, carry the amount check digit between ``<`` and ``>``,
  and end with the form number between ``<`` and ``>``: a phone reading the whole line
  reads those too, and they are passed over.
* the invoice's labelled fields (account number, KID, amount, due date) as read.

The account number and the KID are judged by `fjordbank.domain.norway`'s validators, the
same ones the payment request is checked with, so whatever the scanner drafts the payment
accepts, and what it refuses the payment would refuse too. The scanner only reads the
characters (corrections below); it has no check-digit or format rule of its own for them.

Text recognition misreads a few characters in a digit-only field the same way every time:
O/o/Q/D for 0, l/I/i for 1, and inserts stray spaces. Those are corrected, and each
correction is reported, because in a field of digits they are unambiguous. A vertical
stroke (``|``, ``!``) is not: the OCR giro prints vertical lines around its fields
(1½ print positions from the nearest character, as the layout above requires), and read
as 1 they made a framed KID a longer one whose check digit held about one time in six
(found in review, 2026-12-06). A stroke that stands apart (a space or the field's edge on
each side) at the field's edge (below) is such a line and passed over; one touching a
character, or standing apart inside the field, where no line is printed, is refused as
unreadable: dropped, the 1 of the KID 4611091 read as "46 | 1091" made the KID 461091,
whose check held about one time in five (found in review, 2026-12-06). The same line
is read as ``I``, ``l`` or ``i`` too, and corrected to 1 those made "I 3555125750 I"
the KID 135551257501, whose check digit held about one time in five (found in review,
2026-12-06). The layout prints a box's lines at its edges only
(1½ positions before the KID's first character and after its last), so in the KID, and
in the account (eleven digits: a 1 too many or too few is refused either way), such a
letter standing apart with nothing but spaces and other lines between it and the field's
edge is a line: passed over, and reported; but where the KID holds its check with a 1 there
as well, the letter may be its 1 with a stray space after it ("l 948219936": 948219936 or
1948219936), and the KID is refused as unreadable, as the amount's kroner are below (found
in review, 2026-12-07). Inside the field, or touching a digit, it is
a 1 read wrong, corrected as above. A ``1`` is a digit wherever it stands: no digit read
is ever dropped. The amount's kroner, øre and check digit are split at the spaces; a
part that is a lone ``I``, ``l`` or ``i`` standing apart is the line between two of its
boxes, as a lone stroke is, passed over (and reported), never a digit: read as 1 it made
"74227 I 59 6" 742 271,59 kr, and the check digit held about one time in ten (found in
review, 2026-12-06). Such a part between two of the kroner's digit groups, where no line
is printed, and a part of letters only ("II"), are refused as unreadable; a letter inside
a digit group ("74I27") is a 1 read wrong, corrected, and the check digit judges the
amount. Anything else (S, B, Z, G: 5 or S? 8 or B?) is refused with its position rather
than guessed. A draft is never a payment: the app shows it, the customer confirms it, and
it goes through the normal pipeline (with strong customer authentication where due).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from fjordbank.domain.errors import DomainError, InvalidAccountNumber, InvalidKid, Refused
from fjordbank.domain.money import Money
from fjordbank.domain.norway import (
    is_valid_account_number,
    is_valid_kid,
    luhn_check_digit,
    normalize_account_number,
    split_kid,
)
from fjordbank.domain.payments import MAX_AMOUNT_MINOR, MAX_DUE_DAYS

MAX_TEXT = 200
UNAMBIGUOUS = {"O": "0", "o": "0", "Q": "0", "D": "0", "l": "1", "I": "1", "i": "1"}
STROKES = frozenset("|!")  # a printed field line, or a 1: see the module's docstring
LINE_LETTERS = frozenset("Ili")  # a printed line at a box's edge, a 1 elsewhere: see the module's docstring
_OCR_LINE = re.compile(
    r"^\s*(?:H\s*)?(?P<kid>[^#>]*)#(?P<amount>[^#>]*)>(?P<account>[^#<>]*)#?\s*(?:<[0-9 ]{1,16}>\s*#?\s*)?$",
)


class InvoiceRefused(Refused):
    """A giro that cannot be read into a draft; ``code`` says why, ``field`` where."""

    code = "invoice_refused"


@dataclass(frozen=True)
class PaymentDraft:
    to_account: str
    amount: int | None  # øre; None where the giro leaves the amount for the payer to fill in
    kid: str | None
    due_date: date | None
    corrections: tuple[str, ...] = ()  # what was read differently from the text given

    def to_json(self) -> dict[str, Any]:
        return {
            "toAccount": self.to_account,
            "amount": self.amount,
            "currency": "NOK",
            "kid": self.kid,
            "dueDate": self.due_date.isoformat() if self.due_date else None,
            "corrections": list(self.corrections),
        }


def digits(
    text: str, field: str, corrections: list[str], *, separators: str = " ", keep: str = "", framed: bool = False
) -> str:
    """The digits of a digit-only field: unambiguous misreads corrected (and reported),
    separators and stray spaces dropped, the characters in ``keep`` passed on as they are
    (for the field's validator to judge), anything else refused with its position.
    ``framed``: ``text`` is one whole box of the giro, whose printed lines at its edges
    (`_frame`) are passed over, read as strokes or as letters. A stroke anywhere else is
    unreadable: inside a field no line is printed, and a 1 read as one is never dropped."""
    frame = _frame(text) if framed else frozenset()
    out = []
    for position, ch in enumerate(text, start=1):
        if (ch.isascii() and ch.isdigit()) or ch in keep:
            out.append(ch)
        elif ch in separators or ch.isspace():
            continue
        elif position - 1 in frame and ch in STROKES:
            continue  # a printed line at the box's edge
        elif position - 1 in frame:
            corrections.append(f"{field}: '{ch}' at {position} read as the field's printed line")
        elif ch in UNAMBIGUOUS:
            out.append(UNAMBIGUOUS[ch])
            corrections.append(f"{field}: '{ch}' at {position} read as {UNAMBIGUOUS[ch]}")
        else:
            raise InvoiceRefused(
                "unreadable_character", f"{field}: '{ch}' at position {position} is not a digit (rescan)", field
            )
    return "".join(out)


def _stands_apart(text: str, index: int) -> bool:
    """Whether the stroke at ``index`` has a space, another stroke or the field's edge on
    both sides: a printed line (the layout keeps it 1½ positions from any character), not
    a digit read wrong. One touching a character could be either, and is refused."""

    def apart(i: int) -> bool:
        return i < 0 or i >= len(text) or text[i].isspace() or text[i] in STROKES

    return apart(index - 1) and apart(index + 1)


def _frame(text: str) -> frozenset[int]:
    """The indexes of the strokes and letters (``I``, ``l``, ``i``) in ``text`` that are the
    printed lines of its box: each standing apart (`_stands_apart`), with nothing but
    spaces and other lines between it and the box's edge, where the layout prints them. A
    letter further in, or touching a character, is a 1 read wrong; so is every letter of
    "lI". A stroke further in, or touching a character, is unreadable (`digits`)."""
    found: set[int] = set()
    for order in (range(len(text)), range(len(text) - 1, -1, -1)):
        for index in order:
            ch = text[index]
            if ch.isspace():
                continue
            if ch in STROKES:
                if _stands_apart(text, index):
                    found.add(index)
                continue  # one touching a character is refused by `digits` whatever is found here
            if ch not in LINE_LETTERS or not _stands_apart(text, index):
                break  # the field's first (last) character: no line further in
            found.add(index)
    return frozenset(found)


def amount_check_digit(kroner: str, ore: str) -> int:
    return luhn_check_digit(f"{int(kroner)}{ore}")


def _account(text: str, corrections: list[str]) -> str:
    """The account number read: norway's rule (11 digits, MOD11), as for a payment."""
    number = digits(text, "account", corrections, separators=" .", framed=True)
    try:
        normalize_account_number(number)  # the form: 11 digits
    except InvalidAccountNumber as exc:
        raise InvoiceRefused("invalid_account", exc.message, "account") from None
    if not is_valid_account_number(number):
        raise InvoiceRefused("invalid_account", "the account number's check digit is wrong (misread?)", "account")
    return number


def _kid(text: str, corrections: list[str]) -> str | None:
    """The KID read: norway's rule, as for a payment. A ``-`` is passed on rather than
    refused as unreadable: it is the MOD11 check character for remainder 10, valid only
    last and only where MOD11 gives it; anywhere else norway refuses it (``invalid_kid``).
    A letter at its edge taken for the printed line may have been a 1 with a stray space
    after it ("l 948219936": 948219936 or 1948219936, both valid): as for the amount
    (`_one_or_line`), the KID is refused as unreadable when it holds with that 1 as well;
    dropped, the 1 made another valid KID about one time in ten, and the money went
    against another invoice (found in review, 2026-12-07)."""
    kid = digits(text, "kid", corrections, separators=" ", keep="-", framed=True)
    if not kid:
        return None
    try:
        split_kid(kid)  # the form: 2-25 characters, digits, a '-' only last
    except InvalidKid as exc:
        raise InvoiceRefused("invalid_kid", exc.message, "kid") from None
    if not is_valid_kid(kid):
        raise InvoiceRefused("invalid_kid", "the KID's check character is wrong (MOD10 and MOD11; misread?)", "kid")
    first, last = _edge_letters(text)
    _one_or_line(kid, first, last, is_valid_kid, "kid", "KIDs")
    return kid


def _edge_letters(text: str) -> tuple[bool, bool]:
    """Whether a letter before (after) the field's characters was taken for the printed line
    at its first (last) edge (`_frame`). A stroke so taken is not counted: the scanner
    reads none as a 1 (a frame's ``| 1234567897 |`` is the line, as printed)."""
    frame = _frame(text)
    kept = [i for i, ch in enumerate(text) if not ch.isspace() and i not in frame]
    letters = [i for i in frame if text[i] in LINE_LETTERS]
    if not kept:
        return False, False
    return any(i < kept[0] for i in letters), any(i > kept[-1] for i in letters)


def parse_ocr_line(text: object) -> PaymentDraft:
    """A draft from a giro's OCR line; raises `InvoiceRefused` with the precise reason."""
    if not isinstance(text, str) or not text.strip() or len(text) > MAX_TEXT:
        raise InvoiceRefused("invalid_ocr_line", f"the OCR line must be 1-{MAX_TEXT} characters of text")
    match = _OCR_LINE.match(text.strip())
    if match is None:
        raise InvoiceRefused(
            "invalid_ocr_line", "expected 'KID # kroner øre check-digit > account #' (the '#' and '>' are missing?)"
        )
    corrections: list[str] = []
    kid = _kid(match["kid"], corrections)
    parts, letters = _amount_parts(match["amount"], corrections)
    if not parts:
        # The layout lets the amount be left for the payer to fill in ("kan enten
        # forhåndsutfylles eller fylles ut av betaleren"): kroner, øre and the check digit
        # all blank. The draft carries the account and KID, and the app asks the amount
        # (refused as unreadable before: found in review, 2026-12-06).
        return PaymentDraft(_account(match["account"], corrections), None, kid, None, tuple(corrections))
    if len(parts) < 3:
        raise InvoiceRefused("invalid_amount", "the amount needs kroner, øre and its check digit", "amount")
    *kroner_parts, ore_text, check_text = parts
    kroner = digits(" ".join(kroner_parts), "kroner", corrections)
    ore = digits(ore_text, "øre", corrections)
    check = digits(check_text, "amount check digit", corrections)
    if not kroner or len(kroner) > 8 or len(ore) != 2 or len(check) != 1:
        raise InvoiceRefused("invalid_amount", "kroner (1-8 digits), øre (2) and one check digit", "amount")
    if amount_check_digit(kroner, ore) != int(check):
        raise InvoiceRefused("amount_check_digit", "the amount's check digit is wrong (misread amount?)", "amount")
    _one_or_line(
        kroner,
        0 in letters,  # before the kroner's first digit group
        len(kroner_parts) in letters,  # after its last
        lambda other: len(other) <= 8 and amount_check_digit(other, ore) == int(check),
        "kroner",
        "amounts",
    )
    amount = int(kroner) * 100 + int(ore)
    if amount <= 0:
        raise InvoiceRefused("invalid_amount", "the amount is zero", "amount")
    _payable(amount)
    return PaymentDraft(_account(match["account"], corrections), amount, kid, None, tuple(corrections))


def _one_or_line(read: str, first: bool, last: bool, holds: Callable[[str], bool], field: str, both: str) -> None:
    """A mark read as the printed line at the first (last) edge of a field's digits
    ``read`` might have been a 1 spaced apart instead ("9992 I 59 5": 9 992,59 or 99 921,59
    kr; "l 948219936": the KID 948219936 or 1948219936). Refused as unreadable when ``read``
    with that 1 ``holds`` its check as well: both readings are possible, and taken for the
    line the amount was ten times too small about one time in ten (found in review of the
    first fix, 2026-12-06), the KID another invoice's (found in review, 2026-12-07)."""
    others = (["1" + read] if first else []) + ([read + "1"] if last else [])
    if any(holds(other) for other in others):
        raise InvoiceRefused(
            "unreadable_character",
            f"{field}: a mark at the {field}'s edge reads as a 1 or as the printed line; both {both} hold (rescan)",
            field,
        )


def _amount_parts(text: str, corrections: list[str]) -> tuple[list[str], list[int]]:
    """The amount's digit groups (kroner, øre, check digit), split at the spaces, with the
    printed lines between its boxes passed over: a part of strokes only, or a lone ``I``,
    ``l`` or ``i`` (the same line read as a letter; reported). Neither is ever a digit: read
    as a 1 the line between the kroner and øre made "74227 I 59 6" 742 271,59 kr, and the
    check digit held about one time in ten (found in review, 2026-12-06). The layout prints
    no line inside the kroner box, so such a part between two of the kroner's digit groups
    is a 1 or a line, which cannot be told: refused (as unreadable), neither dropped nor
    read as 1. A part of letters only ("II") is no digit group either: refused too. Also
    returned: for each lone letter taken for a line, the digit groups before it."""
    parts: list[str] = []
    lines: list[tuple[int, int, str]] = []  # (the digit groups before it, position, part)
    for found in re.finditer(r"[^\s<]+", text):  # "< 9 >": the check digit as printed
        part, position = found.group(), found.start() + 1
        if not part.strip("".join(STROKES)) or part in LINE_LETTERS:
            lines.append((len(parts), position, part))
            if part in LINE_LETTERS:
                corrections.append(f"amount: '{part}' at {position} read as the field's printed line")
        elif not part.strip("".join(LINE_LETTERS)):
            raise InvoiceRefused(
                "unreadable_character", f"amount: '{part}' at position {position} is not a digit (rescan)", "amount"
            )
        else:
            parts.append(part)
    for before, position, part in lines:
        if 0 < before < len(parts) - 2:  # digit groups of the kroner on both sides
            raise InvoiceRefused(
                "unreadable_character",
                f"kroner: '{part}' at position {position} of the amount stands between the kroner's digits (rescan)",
                "kroner",
            )
    # a lone letter or a lone stroke: either may be a 1 (a stroke is a printed line or a 1)
    return parts, [before for before, _position, part in lines if part in LINE_LETTERS or len(part) == 1]


def _payable(amount: int) -> None:
    """A draft the payment would refuse (`amount_over_limit`, as its due date is held to
    `MAX_DUE_DAYS`) is refused at the scan, where the customer sees what was read."""
    if amount > MAX_AMOUNT_MINOR:
        raise InvoiceRefused(
            "amount_over_limit",
            f"the amount is above {MAX_AMOUNT_MINOR // 100} kroner, what one payment may be",
            "amount",
        )


FIELDS = frozenset({"account", "kid", "amount", "dueDate"})


def parse_fields(data: object, *, today: date) -> PaymentDraft:
    """A draft from an invoice's labelled fields: account (required), kid, amount (as printed,
    '1 234,50' or '1234.50'; without it the draft's amount is None), dueDate ('dd.mm.yyyy'
    or ISO)."""
    if not isinstance(data, dict) or set(data) - FIELDS or "account" not in data:
        raise InvoiceRefused("invalid_request", f"fields are some of {sorted(FIELDS)}, account required")
    if not isinstance(data["account"], str):  # null included: the account is required
        raise InvoiceRefused("invalid_request", "account must be text", "account")
    for key, value in data.items():
        if value is not None and (not isinstance(value, str) or len(value) > MAX_TEXT):
            raise InvoiceRefused("invalid_request", f"{key} must be text of at most {MAX_TEXT} characters", key)
    corrections: list[str] = []
    account = _account(data["account"], corrections)
    kid = _kid(data.get("kid") or "", corrections)
    amount = None
    if data.get("amount"):
        raw = data["amount"].strip()
        try:
            amount = Money.parse_nok(raw).minor
        except (DomainError, ValueError) as exc:
            raise InvoiceRefused("invalid_amount", f"the amount {raw!r} is not kroner and øre", "amount") from exc
        if amount <= 0:
            raise InvoiceRefused("invalid_amount", "the amount must be positive", "amount")
        _payable(amount)
    due = _due_date(data.get("dueDate"), today, corrections)
    # no amount read: the draft leaves it for the customer to type in, as for a giro whose
    # amount the payer fills in (before, no draft at all: found in review, 2026-12-06)
    return PaymentDraft(account, amount, kid, due, tuple(corrections))


def _due_date(text: str | None, today: date, corrections: list[str]) -> date | None:
    if not text:
        return None
    text = text.strip()
    m = re.fullmatch(r"([0-9]{1,2})\.([0-9]{1,2})\.([0-9]{4})", text) or re.fullmatch(
        r"([0-9]{4})-([0-9]{2})-([0-9]{2})", text
    )
    if m is None:
        raise InvoiceRefused("invalid_due_date", "the due date must be dd.mm.yyyy", "dueDate")
    a, b, c = (int(x) for x in m.groups())
    try:
        due = date(c, b, a) if "." in text else date(a, b, c)
    except ValueError as exc:
        raise InvoiceRefused("invalid_due_date", "the due date is not a date", "dueDate") from exc
    if due < today:  # paid today, and the customer told: the payee may charge for lateness
        corrections.append(f"dueDate: {due:%d.%m.%Y} has passed; paid today")
        return today
    if due > today + timedelta(days=MAX_DUE_DAYS):  # the payment would refuse it: a misread year, mostly
        raise InvoiceRefused(
            "due_date_too_far", f"the due date {due:%d.%m.%Y} is more than {MAX_DUE_DAYS} days ahead", "dueDate"
        )
    return due


# ---- the same invoice paid before ------------------------------------------------------------
# A giro scanned twice (the paper one, then the e-mailed one; or once by each of a couple)
# is the common way an invoice gets paid twice. A KID names one invoice, or one customer
# of the payee, at that payee's account: a request from this customer to the same account
# with the same KID that paid, or is to pay, is told with the draft. It is a warning, not a
# refusal: some payees give a customer one KID for every invoice (a monthly bill), and
# then last month's payment is told too, with its date and amount for the customer to
# judge. A giro without a KID is not matched: its message is free text.
SHOWN_EARLIER = 3  # the newest earlier payments told with a draft
# The states of a request that did not pay and never will.
UNPAID = frozenset({"failed", "rejected", "cancelled"})


def earlier_payments(draft: PaymentDraft, requests: list[tuple[str, dict[str, Any]]]) -> list[dict[str, Any]]:
    """The customer's earlier requests that paid, or are to pay, the draft's invoice (same
    account, same KID), newest first, at most ``SHOWN_EARLIER``: each with its id, amount,
    state and the time it reached that state (``at``), and the date it is due when it waits
    for one. ``requests``: (id, data) of the customer's request documents, any order."""
    if draft.kid is None:
        return []
    found = []
    for request_id, data in requests:
        status = data.get("status")
        if data.get("toAccount") != draft.to_account or data.get("kid") != draft.kid:
            continue
        if not isinstance(status, str) or status in UNPAID:
            continue  # not yet seen by the bank (no state), or it did not pay
        timeline = data.get("timeline")
        at = (timeline.get(status) if isinstance(timeline, dict) else None) or data.get("updatedAt")
        found.append((at if isinstance(at, datetime) else None, request_id, data, status))
    found.sort(key=lambda one: (one[0] is not None, one[0] or datetime.min.replace(tzinfo=UTC)), reverse=True)
    told = []
    for at, request_id, data, status in found[:SHOWN_EARLIER]:
        entry = {"requestId": request_id, "amount": data.get("amount"), "status": status}
        entry["at"] = at.isoformat() if at is not None else None
        if status == "scheduled":
            entry["dueDate"] = data.get("dueDate")
        told.append(entry)
    return told
