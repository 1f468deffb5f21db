"""Onboarding rules, free of I/O: validate an application, then decide it.

An application is refused (nothing is stored) when a field is malformed: the national
identity number fails its check digits (classic k1/k2, or the 2032 rule), the birth date
given does not match the one the number encodes, the applicant is under 18, or an address,
phone or e-mail is not usable. A well-formed application is decided:

* approved   - the sanctions screening is clear: the customer and a first account are made;
* review     - a possible sanctions match (similar name, birth date not contradicting):
               an operator approves or rejects it;
* rejected   - a sanctions hit (name and birth date match a listed person).
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from datetime import date
from typing import Any

from fjordbank.domain.errors import InvalidNationalId, Refused
from fjordbank.domain.norway import RULE_2032_FROM, NationalId, age_on, mask_national_id, parse_national_id
from fjordbank.domain.sanctions import SanctionsList, ScreeningMatch, name_tokens, reads_as_latin

APPROVED = "approved"
REVIEW = "review"
REJECTED = "rejected"
MINIMUM_AGE = 18
MAXIMUM_AGE = 120  # also bounds the century guess for 2032-rule numbers, which carry none

FIELDS = frozenset({"name", "nationalId", "dateOfBirth", "address", "phone", "email"})
ADDRESS_FIELDS = frozenset({"street", "postalCode", "city"})
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_EMAIL = re.compile(r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@" + _LABEL + r"(?:\." + _LABEL + r")+$")
_E164 = re.compile(r"^\+[1-9][0-9]{7,14}$")
_NAME_CHAR = re.compile(r"^[^\W\d_]$")
_LOOK_ALIKE_SCRIPTS = frozenset({"LATIN", "CYRILLIC", "GREEK", "ARMENIAN"})
# Scripts whose capitals stand in for Latin ones to the eye (Cherokee Ᏼ Ꮢ, Lisu ꓐ ꓣ) and that
# no normalisation maps to them: a name in them reads as "Borislav" to a person and as
# nothing to the sanctions list. A name registered in Norway is not written in them.
_LATIN_STAND_INS = frozenset({"CHEROKEE", "LISU", "CANADIAN", "RUNIC", "OSAGE", "COPTIC"})
# The scripts one part of a real name may mix: Japanese (kanji with kana) and Korean (hangul
# with hanja); any other mix is spelled to look like something else.
_WRITTEN_TOGETHER = (frozenset({"CJK", "HIRAGANA", "KATAKANA"}), frozenset({"HANGUL", "CJK"}))
# Modifier letters (Unicode category Lm) a name may have: the apostrophes ʼ (DʼAngelo) and ʻ
# (the Hawaiian ʻokina, Uzbek Oʻ), and in a Japanese part the long-vowel mark ー and the
# iteration marks 々 ゝ ゞ ヽ ヾ. Any other (ː, ʰ, ˑ ...) is refused: the screening leaves
# modifier letters out, and a name spelled with them, "Boːrislav Draːzheːnko", reads to a
# person as the listed name it was approved past (found in review, 2026-12-07).
_NAME_MODIFIERS = frozenset("ʼʻ")
_JAPANESE_MARKS = frozenset("ー々ゝゞヽヾ")
_JAPANESE = frozenset({"CJK", "HIRAGANA", "KATAKANA"})


class OnboardingRefused(Refused):
    """An application the bank cannot take as given; ``code`` names the reason and
    ``field`` the part of the application it concerns."""

    code = "onboarding_refused"


@dataclass(frozen=True)
class Address:
    street: str
    postal_code: str
    city: str
    country: str = "NO"

    def to_dict(self) -> dict[str, Any]:
        return {"street": self.street, "postalCode": self.postal_code, "city": self.city, "country": self.country}


@dataclass(frozen=True, repr=False)
class Application:
    name: str
    national_id: NationalId
    birth_date: date
    address: Address
    phone: str
    email: str

    def __repr__(self) -> str:  # safe to log: no identity number, contact data or address
        return f"Application(national_id={mask_national_id(self.national_id.number)!r})"


@dataclass(frozen=True)
class Decision:
    outcome: str  # approved | review | rejected
    reason: str | None
    matches: tuple[ScreeningMatch, ...] = ()


def _text(data: dict[str, Any], key: str, *, field: str | None = None, max_len: int = 100) -> str:
    value = data.get(key)
    field = field or key
    if not isinstance(value, str):
        raise OnboardingRefused(f"invalid_{_snake(field)}", f"{field} must be text", field)
    value = " ".join(unicodedata.normalize("NFC", value).split())
    if not 0 < len(value) <= max_len:
        raise OnboardingRefused(f"invalid_{_snake(field)}", f"{field} must be 1-{max_len} characters", field)
    if any(unicodedata.category(ch).startswith("C") for ch in value):
        raise OnboardingRefused(f"invalid_{_snake(field)}", f"{field} has control characters", field)
    return value


def _snake(field: str) -> str:
    return re.sub(r"(?<!^)([A-Z])", r"_\1", field.split(".")[-1]).lower()


def validate_name(data: dict[str, Any]) -> str:
    name = _text(data, "name", max_len=100)
    parts = name.split(" ")
    if len(parts) < 2:
        raise OnboardingRefused("invalid_name", "give both first and last name", "name")
    for part in parts:
        letters = part.replace("-", "").replace("'", "").replace("’", "").replace(".", "")
        if not letters or not all(_NAME_CHAR.match(ch) for ch in letters) or not name_tokens(part):
            raise OnboardingRefused("invalid_name", "a name has letters, hyphens and apostrophes only", "name")
        scripts = _scripts(letters)
        mixed = len(scripts) > 1 and not any(scripts <= together for together in _WRITTEN_TOGETHER)
        if len(_look_alike_scripts(letters)) > 1 or mixed:
            raise OnboardingRefused("invalid_name", "each part of a name is written in one alphabet", "name")
        if scripts & _LATIN_STAND_INS:
            raise OnboardingRefused("invalid_name", "a name has letters the bank cannot read", "name")
        if not all(reads_as_latin(ch) for ch in letters if unicodedata.name(ch, "").startswith("LATIN")):
            raise OnboardingRefused("invalid_name", "a name has letters the bank cannot read", "name")
        modifiers = {ch for ch in letters if unicodedata.category(ch) == "Lm"} - _NAME_MODIFIERS
        if modifiers and not (modifiers <= _JAPANESE_MARKS and scripts and scripts <= _JAPANESE):
            raise OnboardingRefused("invalid_name", "a name has letters the bank cannot read", "name")
    return name


def _scripts(letters: str) -> set[str]:
    """The scripts ``letters`` are written in, by the first word of each one's Unicode name
    (LATIN, CYRILLIC, CJK, HIRAGANA, CHEROKEE ...). Modifier letters (the apostrophe ʼ of
    DʼAngelo) and the ordinal indicators ª º belong to none."""
    return {
        unicodedata.name(ch, "?").split(" ")[0] for ch in letters if unicodedata.category(ch) != "Lm" and ch not in "ªº"
    }


def _look_alike_scripts(letters: str) -> set[str]:
    """The scripts among Latin, Cyrillic and Greek that ``letters`` use: a word mixing them
    is spelled to look like another (Bоrislаv with Cyrillic о and а), never a real name."""
    return {script for ch in letters if (script := unicodedata.name(ch, "").split(" ")[0]) in _LOOK_ALIKE_SCRIPTS}


def validate_phone(raw: object) -> str:
    """E.164; a Norwegian number may be given without +47 (8 digits, spaces allowed)."""
    if not isinstance(raw, str) or len(raw) > 32:
        raise OnboardingRefused("invalid_phone", "phone must be text", "phone")
    compact = re.sub(r"[ \-()]", "", raw)
    if compact.startswith("00"):
        compact = "+" + compact[2:]
    if re.fullmatch(r"[0-9]{8}", compact):
        compact = "+47" + compact
    if not _E164.fullmatch(compact):
        raise OnboardingRefused(
            "invalid_phone", "phone must be an international number such as +47 912 34 567", "phone"
        )
    if compact.startswith("+47") and len(compact) != 11:
        raise OnboardingRefused("invalid_phone", "a Norwegian phone number has 8 digits", "phone")
    return compact


def validate_email(raw: object) -> str:
    if not isinstance(raw, str) or not 3 <= len(raw.strip()) <= 254 or not _EMAIL.fullmatch(raw.strip()):
        raise OnboardingRefused("invalid_email", "email must be an address such as kari@example.no", "email")
    local, domain = raw.strip().rsplit("@", 1)
    return f"{local}@{domain.lower()}"


def validate_address(raw: object) -> Address:
    if not isinstance(raw, dict) or set(raw) - ADDRESS_FIELDS or not ADDRESS_FIELDS <= set(raw):
        raise OnboardingRefused("invalid_address", "address needs street, postalCode and city", "address")
    street = _text(raw, "street", field="address.street", max_len=100)
    postal_code = raw.get("postalCode")
    if not isinstance(postal_code, str) or not re.fullmatch(r"[0-9]{4}", postal_code.strip()):
        raise OnboardingRefused("invalid_postal_code", "a Norwegian postal code has 4 digits", "address.postalCode")
    city = _text(raw, "city", field="address.city", max_len=60)
    return Address(street, postal_code.strip(), city)


def parse_birth_date(raw: object) -> date:
    if not isinstance(raw, str) or not re.fullmatch(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", raw):
        raise OnboardingRefused("invalid_date_of_birth", "dateOfBirth must be YYYY-MM-DD", "dateOfBirth")
    try:
        return date.fromisoformat(raw)
    except ValueError as exc:
        raise OnboardingRefused("invalid_date_of_birth", "dateOfBirth is not a date", "dateOfBirth") from exc


def parse_application(data: object, *, today: date, allow_synthetic: bool = False) -> Application:
    """Validate everything; raises `OnboardingRefused` with the first problem found."""
    if not isinstance(data, dict):
        raise OnboardingRefused("invalid_request", "the application must be an object")
    unknown = set(data) - FIELDS
    missing = FIELDS - set(data)
    if unknown or missing:
        raise OnboardingRefused(
            "invalid_request",
            f"the application has exactly the fields {sorted(FIELDS)}"
            + (f"; unknown: {sorted(unknown)}" if unknown else "")
            + (f"; missing: {sorted(missing)}" if missing else ""),
        )
    name = validate_name(data)
    birth_date = parse_birth_date(data["dateOfBirth"])
    raw_id = data["nationalId"]
    if not isinstance(raw_id, str):
        raise OnboardingRefused("invalid_national_id", "nationalId must be text", "nationalId")
    try:
        nid = parse_national_id(raw_id.replace(" ", ""), today=today, allow_synthetic=allow_synthetic)
    except InvalidNationalId as exc:
        raise OnboardingRefused("invalid_national_id", str(exc), "nationalId") from exc
    if (
        birth_date not in nid.birth_dates
        and not _same_day_month_2032(nid, birth_date, today)
        and not _dnr_year(nid, birth_date, today)
    ):
        raise OnboardingRefused(
            "birth_date_mismatch", "dateOfBirth does not match the national identity number", "dateOfBirth"
        )
    if birth_date > today:
        raise OnboardingRefused("invalid_date_of_birth", "dateOfBirth is in the future", "dateOfBirth")
    if age_on(_youngest(nid, birth_date, today), today) < MINIMUM_AGE:
        raise OnboardingRefused("under_18", f"customers must be at least {MINIMUM_AGE}", "dateOfBirth")
    if age_on(birth_date, today) > MAXIMUM_AGE:
        raise OnboardingRefused(
            "invalid_date_of_birth", f"dateOfBirth is more than {MAXIMUM_AGE} years ago", "dateOfBirth"
        )
    return Application(
        name=name,
        national_id=nid,
        birth_date=birth_date,
        address=validate_address(data["address"]),
        phone=validate_phone(data["phone"]),
        email=validate_email(data["email"]),
    )


def _dnr_year(nid: NationalId, birth_date: date, today: date) -> bool:
    """A D-number is dated on its registration day and month when no number was free on
    the birth date (UDI): only its year says the birth date. The population register, not
    the number, is the authority on the date. One issued before Skatteetaten's 2021
    extension may be a century older than it reads (`NationalId.birth_dates`): either
    year is the applicant's (one born 1920 was refused: found in review, 2026-12-06)."""
    if nid.kind != "dnr":
        return False
    if _no_century(nid, today):
        return nid.birth_date.year % 100 == birth_date.year % 100
    return birth_date.year in {reading.year for reading in nid.birth_dates}


def _no_century(nid: NationalId, today: date) -> bool:
    """Whether the number may carry no century: one under the 2032 rule, and from 2032 any
    number (issued then, the individual number says no century; one whose first control
    digit has remainder 0 reads as a classic number, and the classic table may well find
    a century for it, a hundred years off: a holder born 1990 read as born 1890)."""
    return nid.uses_2032_rule or today >= RULE_2032_FROM


def _youngest(nid: NationalId, birth_date: date, today: date) -> date:
    """The birth date the age is checked on: the latest of the claimed one and every date
    the number itself may be read as (`NationalId.birth_dates`), and, when the number may
    carry no century (`_no_century`: from 2032 even one whose own reading is the claimed
    date), of each of those in the latest century that is not after today.

    A number gives its holder's day, month and two-digit year: someone born 2015 claiming
    1915 would otherwise be taken for 117. (A holder over 100 whose two-digit year is in
    this century is refused with them: the number cannot tell the two apart.) A classic
    D-number whose century is one of two (`NationalId.birth_dates`: issued before or after
    Skatteetaten's 2021 extension) is the same: the age is checked on the latest reading.
    A holder born 1900-1925 whose number is of the older kind is refused with the children
    whose number is of the newer kind, as the 2032 numbers' are: a bank does not take a
    child for a hundred years older to let the very few such holders in (decided
    2026-12-06, after a review found them all refused as a date that did not match).

    A D-number vouches for its year only (`_dnr_year`), so a claimed day and month earlier
    in that year cannot be checked against it: a 17-year-old whose number reads 20 December
    claimed 1 January and was taken for 18 (found in review). The age is never checked on a
    claimed date earlier than the number's own; a holder whose number is dated on a
    registration day later than the birthday waits for that day, as the number says."""
    dates = [birth_date, *nid.birth_dates]
    if _no_century(nid, today):
        dates += [reading for known in (birth_date, nid.birth_date) for reading in _centuries(known)]
    return max(d for d in dates if d <= today)


def _centuries(day: date) -> list[date]:
    """``day`` in the 2000s and the 1900s, the centuries a number with no century may be
    of; 29 February of a year that is not a leap year in a century is left out."""
    readings = []
    for century in (2000, 1900):
        try:
            readings.append(day.replace(year=century + day.year % 100))
        except ValueError:
            continue
    return readings


def _same_day_month_2032(nid: NationalId, birth_date: date, today: date) -> bool:
    """Numbers that carry no century (`_no_century`): only day, month and two-digit year
    can be compared (the number's own date is a best guess)."""
    return _no_century(nid, today) and (nid.birth_date.day, nid.birth_date.month, nid.birth_date.year % 100) == (
        birth_date.day,
        birth_date.month,
        birth_date.year % 100,
    )


NOT_APPROVED = "not_approved"


def told(decision: Decision) -> str | None:
    """The reason the applicant is told (the app's customer document, the callable's answer,
    the event): never the screening's own. A listed person told "sanctions_match", or
    "possible_sanctions_match" in review, could try spellings and birth dates until one
    screened clear; the bank's record of the application keeps the screening's reason and
    its matches for the people who review it."""
    if decision.outcome == REVIEW:
        return None
    if decision.outcome == REJECTED:
        return NOT_APPROVED
    return decision.reason


def decide(application: Application, sanctions: SanctionsList) -> Decision:
    # a D-number may be dated on its registration day: only its year vouches for the date
    year_only = application.national_id.kind == "dnr"
    result = sanctions.screen(application.name, application.birth_date, year_only=year_only)
    if result.outcome == "hit":
        return Decision(REJECTED, "sanctions_match", result.matches)
    if result.outcome == "review":
        return Decision(REVIEW, "possible_sanctions_match", result.matches)
    return Decision(APPROVED, None)
