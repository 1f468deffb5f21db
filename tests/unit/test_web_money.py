"""The web app's amounts (web/src/money.js) read as the bank's own parser reads them
(fjordbank.domain.money.Money.parse_nok): run in node, the browser's engine's language,
against the same inputs."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from fjordbank.domain.money import InvalidAmount, Money

WEB = Path(__file__).resolve().parents[2] / "web"
TYPED = [
    "150",
    "1 234,50",
    "2 000 000",
    "99.9 kr",
    "1\u00a0234",
    " 150 kr",
    "0,5",
    "123456789",
    # kroner and øre as a giro prints them: every space was taken out, and "500 50" read
    # as 50 050 kr, signed unseen as a standing order's new amount (found in review, 2026-12-07)
    "500 50",
    "150 00",
    "12 50",
    "1 23",
    "1234567890",
    "-5",
    "1,234",
    "",
]


def _parse_in_node(texts: list[str]) -> list[int | None]:
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed (make bootstrap installs it with firebase-tools)")
    script = (
        "import { parseNOK } from './src/money.js';"
        "const texts = JSON.parse(process.argv[1]);"
        "console.log(JSON.stringify(texts.map((t) => parseNOK(t))));"
    )
    out = subprocess.run(
        [node, "--input-type=module", "-e", script, json.dumps(texts)],
        cwd=WEB,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return json.loads(out.stdout)


def _parse_in_the_bank(text: str) -> int | None:
    try:
        return Money.parse_nok(text).minor
    except InvalidAmount:
        return None


def test_the_app_reads_an_amount_as_the_bank_does_or_not_at_all():
    read = dict(zip(TYPED, _parse_in_node(TYPED), strict=True))
    assert read["500 50"] is None and read["150 00"] is None and read["12 50"] is None
    assert read["1 234,50"] == 123_450 and read["2 000 000"] == 200_000_000 and read["99.9 kr"] == 9_990
    for text, ore in read.items():
        bank = _parse_in_the_bank(text)
        assert ore is None or ore == bank, (text, ore, bank)  # never another amount than the bank's
