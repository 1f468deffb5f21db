"""Spending categories of the transaction feed, free of I/O.

Order of precedence for one transaction:

1. money coming in is "income": a customer recategorises only spending
   (fjordbank.service_layer.insights), so no choice is ever looked up for money in;
2. the customer's own choice for that merchant (a card merchant by its normalised name,
   a payee by its account number) — a recategorisation sticks for that merchant;
3. for card purchases, the merchant category code (MCC, ISO 18245);
4. for payments, the bank's rules for known payees (``PayeeRule``), then "bills" for a
   payment with a KID and "transfers" for the rest.

Until 2026-12-01 a choice came first for money in as well: a payee who had recategorised
what they paid someone saw that person's payments to them in the chosen spending category,
which the recategorisation itself never relabelled (it moves spending only), and every
payment in read the payee's choice for nothing (two documents of an internal payment).
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from dataclasses import dataclass

CATEGORIES = (
    "groceries",
    "restaurants",
    "transport",
    "travel",
    "shopping",
    "health",
    "entertainment",
    "subscriptions",
    "housing",
    "bills",
    "cash",
    "transfers",
    "income",
    "other",
)

# MCC ranges (inclusive) -> category. Ranges from ISO 18245 and the card schemes' tables.
_MCC_RANGES: tuple[tuple[int, int, str], ...] = (
    (3000, 3350, "travel"),  # airlines
    (3351, 3500, "transport"),  # car rental
    (3501, 3999, "travel"),  # hotels
    (4011, 4131, "transport"),  # rail, local transport, taxis, buses
    (4411, 4411, "travel"),  # cruise lines
    (4511, 4582, "travel"),  # airlines, airports
    (4722, 4722, "travel"),  # travel agencies
    (4784, 4784, "transport"),  # tolls and bridge fees (bompenger)
    (4812, 4816, "bills"),  # telecom
    (4899, 4899, "subscriptions"),  # cable and streaming services
    (4900, 4900, "housing"),  # utilities: electricity, water
    (5300, 5399, "shopping"),
    (5411, 5499, "groceries"),
    (5541, 5542, "transport"),  # fuel
    (5552, 5552, "transport"),  # electric vehicle charging
    (5600, 5699, "shopping"),  # clothing
    (5811, 5814, "restaurants"),
    (5815, 5818, "subscriptions"),  # digital goods, media, apps
    (5912, 5912, "health"),  # pharmacies (apotek)
    (5200, 5299, "housing"),  # home supply, hardware
    (5700, 5799, "shopping"),  # furniture, electronics
    (5900, 5999, "shopping"),
    (6010, 6011, "cash"),
    (6300, 6300, "bills"),  # insurance
    (7011, 7011, "travel"),
    (7512, 7512, "transport"),  # car rental agencies (the generic code; the brands are 3351-3500)
    (7523, 7523, "transport"),  # parking
    (7832, 7999, "entertainment"),
    (8011, 8099, "health"),
)


def mcc_category(mcc: str | None) -> str:
    if not mcc or not re.fullmatch(r"[0-9]{4}", mcc):
        return "other"
    code = int(mcc)
    for low, high, category in _MCC_RANGES:
        if low <= code <= high:
            return category
    return "other"


def merchant_key(name: str) -> str:
    """One key per merchant however the terminal spells it: 'REMA 1000 MAJORSTUEN 23' and
    'Rema 1000 Majorstuen' are the same merchant. Case, accents, punctuation and trailing
    store numbers are dropped.

    A name with no Latin letter ('Яндекс Такси', 'セブンイレブン', 'ΣΚΛΑΒΕΝΙΤΗΣ 12') keeps its own
    script's letters, and one with no letter at all that is not only digits ('***', '*** 12')
    is known by a digest of it: all of them were 'unknown' (or their store number), one key
    whose category choice, history and subscription every such merchant shared."""
    text = unicodedata.normalize("NFKD", name).casefold()
    text = "".join(ch for ch in text if not unicodedata.combining(ch))
    latin = _without_store_number(re.sub(r"[^a-z0-9æøå ]+", " ", text).split())
    if any(not ch.isdigit() for word in latin for ch in word):
        return "-".join(latin)[:100]
    wide = _without_store_number(re.sub(r"[\W_]+", " ", text).split())  # any script's letters and digits
    if any(ch.isalpha() for word in wide for ch in word):
        return "-".join(wide)[:100]
    # numbers only ('1881', '1881*', '7-11'): as before, unless a word is marks alone ('*** 12'
    # and '+++ 12' shared the key "12")
    if latin and all(any(ch.isalnum() for ch in word) for word in name.split()):
        return "-".join(latin)[:100]
    shown = " ".join(name.split()).casefold()
    return "x-" + hashlib.sha256(shown.encode()).hexdigest()[:16] if shown else "unknown"


def _without_store_number(words: list[str]) -> list[str]:
    while len(words) > 1 and words[-1].isdigit() and len(words[-1]) <= 4 and words[-1] != "1000":
        words.pop()  # a store or terminal number, not the name (but "Rema 1000" keeps its 1000)
    return words


@dataclass(frozen=True)
class PayeeRule:
    """A known payee (the bank's table): an account number and its category."""

    account: str
    category: str


def categorise(
    *,
    direction: str,
    kind: str,
    mcc: str | None = None,
    merchant_name: str | None = None,
    counterparty_account: str | None = None,
    kid: str | None = None,
    overrides: dict[str, str] | None = None,
    payee_rules: dict[str, str] | None = None,
) -> str:
    """The category of one transaction (see the module docstring for the order)."""
    if direction == "in":
        return "income"
    overrides = overrides or {}
    key = override_key(kind=kind, merchant_name=merchant_name, counterparty_account=counterparty_account)
    if key in overrides and overrides[key] in CATEGORIES:
        return overrides[key]
    if kind == "card":
        return mcc_category(mcc)
    if counterparty_account and payee_rules and counterparty_account in payee_rules:
        return payee_rules[counterparty_account]
    return "bills" if kid else "transfers"


def override_key(*, kind: str, merchant_name: str | None, counterparty_account: str | None) -> str:
    """Where a customer's choice is kept: ``m:<merchant key>`` or ``a:<account>``."""
    if kind == "card":
        return "m:" + merchant_key(merchant_name or "")
    return "a:" + (counterparty_account or "")
