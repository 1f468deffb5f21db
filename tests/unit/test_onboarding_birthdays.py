"""The birth date an identity number gives and the age onboarding checks on it, against
Skatteetaten's rules: the century from the individual number (digits 7-9) with the
two-digit year, a D-number's day less 40, the 18th birthday of someone born on 29
February, and "today" as the date in Norway (Europe/Oslo), not in UTC.

Reviewed 2026-12-06 after a note that a D-number holder was dated after their real
birthday: a D-number is read as the fødselsnummer of the same date, and its holder is 18
on the same day (these tests); the number is later than the birthday only where the
onboarding rules choose it so (`fjordbank.domain.onboarding._youngest`: a claimed date
earlier in the number's year than the number's own, and a holder born 1900-1925 whose
D-number is of the kind issued before 2021)."""

from __future__ import annotations

import datetime as dt

import pytest

from fjordbank.domain.errors import InvalidNationalId
from fjordbank.domain.norway import national_id_control_digits, parse_national_id, today_in_norway
from fjordbank.domain.onboarding import OnboardingRefused, parse_application
from fjordbank.domain.sanctions import SanctionsList
from fjordbank.service_layer import onboarding
from tests.support.memory import MemoryDocuments
from tests.support.use_cases import BANK_REG, RecordingPublisher, fixed_clock
from tests.unit.test_onboarding import SAMPLE, application

D = dt.date
TODAY = D(2026, 12, 6)


def _number(born: dt.date, individual: int, *, dnumber: bool = False) -> str:
    """The classic number of ``born`` (its two-digit year) with the first individual number
    from ``individual`` on (same hundred) that has control digits."""
    for ind in range(individual, individual + 100):
        body = f"{born.day + (40 if dnumber else 0):02d}{born:%m%y}{ind:03d}"
        control = national_id_control_digits(body)
        if control is not None:
            return f"{body}{control[0]}{control[1]}"
    raise AssertionError("no control digits")


@pytest.mark.parametrize(
    ("individual", "yy", "year"),
    [
        (0, 10, 1910),  # 000-499: 1900-1999
        (400, 39, 1939),
        (400, 99, 1999),
        (500, 54, 1854),  # 500-749 with YY 54-99: 1854-1899
        (700, 99, 1899),
        (500, 0, 2000),  # 500-999 with YY 00-39: 2000-2039
        (900, 8, 2008),
        (900, 39, 2039),  # read on its birth date (a later one than today)
        (900, 40, 1940),  # 900-999 with YY 40-99: 1940-1999
        (950, 99, 1999),
    ],
)
def test_the_century_of_a_fodselsnummer_and_of_a_d_number_of_the_same_date(individual: int, yy: int, year: int) -> None:
    born = D(year, 3, 14)
    today = max(TODAY, born)
    fnr = parse_national_id(_number(born, individual), today=today)
    assert (fnr.kind, fnr.birth_date) == ("fnr", born)
    if individual in range(500, 750) and yy >= 54:
        return  # 1854-1899: the 2021 D-number table gives 600-749 to the 1900s (nobody alive)
    dnr = parse_national_id(_number(born, individual, dnumber=True), today=today)
    assert dnr.kind == "dnr" and dnr.birth_date == born  # the day less 40, the same century


@pytest.mark.parametrize(("individual", "yy"), [(500, 40), (700, 53), (750, 60), (800, 99)])
def test_individual_numbers_not_issued_for_the_year_are_refused(individual: int, yy: int) -> None:
    with pytest.raises(InvalidNationalId, match="individual number range"):
        parse_national_id(_number(D(1900 + yy, 3, 14), individual), today=TODAY)


def _application(born: dt.date, *, dnumber: bool) -> dict:
    return application(born, nationalId=_number(born, 500 if born.year >= 2000 else 0, dnumber=dnumber))


def _code(born: dt.date, today: dt.date, *, dnumber: bool) -> str:
    try:
        parse_application(_application(born, dnumber=dnumber), today=today)
    except OnboardingRefused as refused:
        return refused.code
    return "ok"


@pytest.mark.parametrize("dnumber", [False, True], ids=["fnr", "dnr"])
@pytest.mark.parametrize(
    ("born", "day_before", "eighteenth"),
    [
        (D(2008, 6, 15), D(2026, 6, 14), D(2026, 6, 15)),
        (D(2008, 1, 1), D(2025, 12, 31), D(2026, 1, 1)),
        (D(2008, 12, 31), D(2026, 12, 30), D(2026, 12, 31)),
        # born on 29 February: 18 on 1 March in a common year (28 February is before the
        # birthday), on 29 February in a leap year
        (D(2008, 2, 29), D(2026, 2, 28), D(2026, 3, 1)),
        (D(2004, 2, 29), D(2022, 2, 28), D(2022, 3, 1)),
        (D(2012, 2, 29), D(2030, 2, 28), D(2030, 3, 1)),
        (D(2010, 2, 28), D(2028, 2, 27), D(2028, 2, 28)),
    ],
)
def test_a_holder_is_18_on_the_18th_birthday_a_d_number_holder_too(
    born: dt.date, day_before: dt.date, eighteenth: dt.date, dnumber: bool
) -> None:
    assert _code(born, day_before, dnumber=dnumber) == "under_18"
    assert _code(born, eighteenth, dnumber=dnumber) == "ok"


@pytest.fixture(scope="module")
def sanctions() -> SanctionsList:
    return SanctionsList.from_xml(SAMPLE.read_bytes())


@pytest.mark.parametrize("dnumber", [False, True], ids=["fnr", "dnr"])
@pytest.mark.parametrize(
    ("born", "now", "status"),
    [
        # summer time (UTC+2): 22:30 UTC on 14 June is 00:30 on the 18th birthday in Oslo
        (D(2008, 6, 15), dt.datetime(2026, 6, 14, 22, 30, tzinfo=dt.UTC), "approved"),
        (D(2008, 6, 15), dt.datetime(2026, 6, 14, 21, 30, tzinfo=dt.UTC), "under_18"),
        # winter time (UTC+1): 23:30 UTC on 5 December is 00:30 on 6 December in Oslo
        (D(2008, 12, 6), dt.datetime(2026, 12, 5, 23, 30, tzinfo=dt.UTC), "approved"),
        (D(2008, 12, 6), dt.datetime(2026, 12, 5, 22, 30, tzinfo=dt.UTC), "under_18"),
        # the last hour of the year: 23:30 UTC on 31 December is 1 January in Oslo
        (D(2008, 1, 1), dt.datetime(2025, 12, 31, 23, 30, tzinfo=dt.UTC), "approved"),
        (D(2008, 1, 1), dt.datetime(2025, 12, 31, 22, 59, tzinfo=dt.UTC), "under_18"),
    ],
)
def test_the_age_is_checked_on_the_date_in_norway(
    sanctions: SanctionsList, born: dt.date, now: dt.datetime, status: str, dnumber: bool
) -> None:
    assert today_in_norway(now) == (now + dt.timedelta(hours=2 if now.month == 6 else 1)).date()
    clock = fixed_clock(now)
    app = _application(born, dnumber=dnumber)
    try:
        result = onboarding.submit(
            MemoryDocuments(clock),
            RecordingPublisher(),
            "kari",
            app,
            sanctions=sanctions,
            bank_reg=BANK_REG,
            clock=clock,
        )
    except OnboardingRefused as refused:
        assert refused.code == status
    else:
        assert result["status"] == status
