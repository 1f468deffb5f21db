"""Synthetic national identity numbers for demo and test customers (never a real person's).

Skatteetaten's synthetic test numbers add 80 to the month; the bank accepts them only where
FJB_ALLOW_SYNTHETIC_IDS is set (the local stack).
"""

from __future__ import annotations

import datetime as dt
import random

from fjordbank.domain.norway import national_id_control_digits, parse_national_id

_rnd = random.SystemRandom()


def synthetic_national_id(born: dt.date) -> str:
    """A fresh synthetic number for ``born`` (1900-2039) with classic control digits and a
    random individual number."""
    low, high = (0, 499) if born.year < 2000 else (500, 999)
    for _ in range(10_000):
        body = f"{born.day:02d}{born.month + 80:02d}{born.year % 100:02d}{_rnd.randint(low, high):03d}"
        digits = national_id_control_digits(body)
        if digits is None:
            continue
        number = f"{body}{digits[0]}{digits[1]}"
        if parse_national_id(number, allow_synthetic=True).birth_date == born:
            return number
    raise ValueError(f"no synthetic identity number found for {born}")
