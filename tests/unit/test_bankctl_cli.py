"""bankctl without a stack: the command line, amounts, identity numbers, percentiles, progress."""

from __future__ import annotations

import argparse
import datetime as dt
import io

import pytest

from bankctl.__main__ import build_parser, main
from bankctl.customers import kroner, parse_amount
from bankctl.errors import CommandError
from bankctl.load import percentile
from bankctl.progress import Progress
from fjordbank.domain.errors import InvalidNationalId
from fjordbank.domain.norway import parse_national_id
from fjordbank.simulators.identities import synthetic_national_id


def commands(parser: argparse.ArgumentParser, prefix: tuple[str, ...] = ()):
    """Every command path (("customers", "create"), ("audit",), ...) and its parser."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from commands(sub, (*prefix, name))
            return
    yield prefix, parser


ALL = dict(commands(build_parser()))


def test_every_command_is_listed_and_described():
    top = build_parser().format_help()
    for name in ("customers", "pay", "ledger", "balances", "reviews", "dlq", "jobs", "audit", "load", "demo"):
        assert f"    {name}" in top
    assert {
        ("customers", "create"),
        ("customers", "list"),
        ("pay",),
        ("ledger",),
        ("load",),
        ("demo",),
        ("audit",),
        ("dlq", "list"),
        ("dlq", "replay"),
        ("jobs", "run"),
        ("jobs", "list"),
        ("reviews", "list"),
        ("reviews", "approve"),
        ("reviews", "reject"),
        ("balances",),
    } <= set(ALL)
    for path, parser in ALL.items():
        assert parser.description and len(parser.description) > 15, path


@pytest.mark.parametrize("path", sorted(ALL), ids=" ".join)
def test_help_of_every_command(path, capsys):
    with pytest.raises(SystemExit) as exit_:
        main([*path, "--help"])
    assert exit_.value.code == 0
    assert capsys.readouterr().out.startswith(f"usage: bankctl {' '.join(path)}")


@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["nonsense"],
        ["pay"],
        ["pay", "a", "b", "1", "--due", "31.12.2030"],
        ["pay", "a", "b", "1", "--kid", "123", "--message", "hei"],
        ["load", "--payments", "0"],
        ["jobs", "run", "no-such-job"],
    ],
)
def test_usage_errors_are_one_line_with_exit_2(argv, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("bankctl: error: ") and err.count("\n") == 1, err


@pytest.mark.parametrize(
    ("text", "ore"),
    [("125.50", 12_550), ("125,50", 12_550), ("125", 12_500), ("0.01", 1), ("1 250,5", 125_050), ("kr 99", 9_900)],
)
def test_amounts_are_exact_ore(text, ore):
    assert parse_amount(text) == ore


@pytest.mark.parametrize("text", ["12.345", "-5", "abc", "1e3", "0", "0.00", "", "12.3.4"])
def test_bad_amounts_are_refused(text):
    with pytest.raises(CommandError, match="bad amount"):
        parse_amount(text)


def test_a_bad_amount_is_one_line_and_exit_1_before_any_network(capsys):
    assert main(["pay", "nobody", "12345678903", "12.345"]) == 1
    err = capsys.readouterr().err
    assert err == "bankctl: error: bad amount '12.345': amount has more than 2 decimals (øre is the smallest unit)\n"


def test_kroner_are_formatted_with_plain_spaces():
    assert kroner(123_456_78) == "123 456,78 kr"
    assert kroner(-5) == "-0,05 kr"


def test_synthetic_identity_numbers_are_valid_for_the_birth_date_and_never_real():
    for born in (dt.date(1960, 1, 1), dt.date(1988, 3, 14), dt.date(1999, 12, 31)):
        number = synthetic_national_id(born)
        parsed = parse_national_id(number, allow_synthetic=True)
        assert parsed.birth_date == born and parsed.synthetic
        with pytest.raises(InvalidNationalId, match="synthetic"):
            parse_national_id(number)  # production refuses them


def test_percentiles_are_nearest_rank():
    values = sorted(float(i) for i in range(1, 101))
    assert (percentile(values, 50), percentile(values, 95), percentile(values, 99)) == (50.0, 95.0, 99.0)
    assert percentile([0.3], 99) == 0.3
    assert percentile([], 50) is None


class Stream(io.StringIO):
    def __init__(self, tty: bool) -> None:
        super().__init__()
        self.tty = tty

    def isatty(self) -> bool:
        return self.tty


def test_progress_is_a_redrawn_bar_on_a_terminal_and_lines_otherwise():
    state = {"done": 0}
    tty, plain = Stream(True), Stream(False)
    for stream in (tty, plain):
        state["done"] = 0
        with Progress(10, lambda: (state["done"], "completed"), stream=stream, interval=0.01, line_interval=0.01):
            for _ in range(10):
                state["done"] += 1
    assert "\r" in tty.getvalue() and "[##############################] 10/10" in tty.getvalue()
    lines = plain.getvalue().splitlines()
    assert "\r" not in plain.getvalue() and lines[-1].startswith("load: 10/10 final")
    assert len(lines) == len(set(lines))  # a line only when something changed
