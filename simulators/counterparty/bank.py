"""The other banks as a process: the far side of the clearing channel, on the local stack.

    python -m simulators.counterparty --outbox DIR --inbox DIR --rules FILE \\
        [--sent DIR] [--faults-file FILE] [--port N]

Every ``POLL_SECONDS`` it takes the bank's returns of payments from other banks (pacs.004,
``RET-*.xml``) into ``sent/`` and answers each pain.001 file in the outbox with a pain.002 by the
rules (simulators.counterparty, emulators/counterparty.json on the stack), writes the
answer atomically into the inbox and moves the file to ``sent/``. It runs apart from the
clearing service (the stack's ``counterparty`` component, devstack/counterparty.py), as a
real clearing house does: it works on while the bank's side of the channel is down (a chaos
run's ``clearing_channel_down``), and production's clearing service has no simulator in it.

A chaos run's ``counterparty`` fault (an entry of the faults file, fjordbank/adapters/faults.py,
naming the service ``counterparty``) has some answers sent twice and some held back, so
that later files' answers arrive first (simulators.counterparty.answers). A file leaves the
outbox only when its answer is in the inbox: a restart while answers are held answers it again.

``GET /healthz`` on ``--port`` (the stack's readiness check) answers 200 while passes keep
coming, 503 once none has finished for ``HEALTHY_WITHIN`` seconds; its body says how many
answers went out and how many are held.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from devstack.healthz import run_until_stopped
from fjordbank.adapters.clearing_store import ClearingDirs
from fjordbank.adapters.faults import FaultSwitch
from fjordbank.domain import pacs
from fjordbank.domain.errors import DomainError
from fjordbank.service_layer.incoming import RETURN_PREFIX
from simulators import counterparty
from simulators.counterparty.answers import FAULT, AnswerPost

NAME = "counterparty"  # the stack's component, and the service its faults-file entries name
POLL_SECONDS = 0.5  # answers.MAX_HOLD counts passes of this length
HEALTHY_WITHIN = 10.0  # seconds since the last finished pass

log = logging.getLogger(NAME)


@dataclass
class CounterpartyBank:
    outbox: Path
    inbox: Path
    sent: Path
    rules: counterparty.CounterpartyRules
    switch: FaultSwitch | None = None
    post: AnswerPost = field(default_factory=lambda: AnswerPost(random.Random()))
    clock: Callable[[], dt.datetime] = field(default=lambda: dt.datetime.now(dt.UTC))
    refused: set[str] = field(default_factory=set)  # outbox files it cannot read, said once
    answered: int = 0  # answers written into the inbox, copies included
    returns: int = 0  # payments the bank sent back (pacs.004) and this side took
    last_pass: float | None = None  # time.monotonic() at the end of the last pass

    def __post_init__(self) -> None:
        for folder in (self.outbox, self.inbox, self.sent):
            folder.mkdir(parents=True, exist_ok=True)

    def fault(self) -> dict[str, Any] | None:
        """The ``counterparty`` entry while a chaos run has it on, else None."""
        return self.switch.active(FAULT) if self.switch is not None else None

    def take(self, path: Path, fault: dict[str, Any] | None) -> None:
        """Answer one outbox file (the answer waits in the post for its pass). A file that
        cannot be read stays where it is, unanswered, and is said once."""
        try:
            message_id = f"SIM{path.stem[3:]}"
            data = counterparty.answer(path.read_bytes(), self.rules, now=self.clock(), message_id=message_id)
        except DomainError as exc:
            self.refused.add(path.name)
            log.error("outbox file not answered: %s: %s", path.name, exc)
            return
        self.post.add(path.name, f"{path.stem}-status.xml", data, fault)

    def take_return(self, path: Path) -> None:
        """A pacs.004 the bank sent (a payment from another bank it could not credit):
        taken, as the clearing house takes it, into ``sent/``; one that cannot be read stays
        where it is, and is said once. The paying bank's side of a return is not simulated."""
        try:
            returned = pacs.parse_pacs004(path.read_bytes())
        except DomainError as exc:
            self.refused.add(path.name)
            log.error("return not taken: %s: %s", path.name, exc)
            return
        path.rename(self.sent / path.name)
        self.returns += len(returned.returns)
        for r in returned.returns:
            log.info("return taken: %s %s øre, %s", r.original_transaction_id, r.amount_minor, r.reason_code)

    def one_pass(self) -> int:
        """Answer the outbox's new files and send what is due; returns how many went out."""
        fault = self.fault()
        for path in sorted(self.outbox.glob("*.xml")):
            if path.name in self.refused:
                continue
            if path.name.startswith(RETURN_PREFIX):
                self.take_return(path)
            elif not self.post.holds(path.name):
                self.take(path, fault)
        due = self.post.release(fault)
        for source, name, data in due:
            ClearingDirs.write_atomic(self.inbox / name, data)
            if source is not None:
                (self.outbox / source).rename(self.sent / source)
        self.answered += len(due)
        self.last_pass = time.monotonic()
        return len(due)

    def run(self, stop: threading.Event) -> None:
        """Pass until ``stop``. A pass the file system fails (the stack emptying the clearing
        folders under it) is said and the next one tries again."""
        while not stop.is_set():
            try:
                self.one_pass()
            except OSError as exc:
                log.warning("pass failed; trying again: %s", exc)
            stop.wait(POLL_SECONDS)

    def healthy(self) -> bool:
        return self.last_pass is not None and time.monotonic() - self.last_pass < HEALTHY_WITHIN

    def health(self) -> dict[str, Any]:
        return {"ok": self.healthy(), "answered": self.answered, "held": len(self.post.queue), "returns": self.returns}


def load_rules(path: str) -> counterparty.CounterpartyRules:
    """The rules file, or the reason it is unusable as the process's exit message."""
    try:
        return counterparty.rules_from_json(json.loads(Path(path).read_text()))
    except (OSError, ValueError, DomainError) as exc:
        raise SystemExit(f"--rules {path}: {exc}") from None


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m simulators.counterparty", description=__doc__.split("\n\n")[0])
    parser.add_argument("--outbox", required=True, type=Path, help="where the bank writes its pain.001 files")
    parser.add_argument("--inbox", required=True, type=Path, help="where the answers (pain.002) go")
    parser.add_argument("--sent", type=Path, help="where answered files go (default: sent/ beside the outbox)")
    parser.add_argument("--rules", required=True, help="the other banks' accounts and KID agreements (JSON)")
    parser.add_argument("--faults-file", help="a chaos run's faults file (its `counterparty` entry)")
    parser.add_argument("--port", type=int, default=0, help="GET /healthz on 127.0.0.1 (0: none)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    bank = CounterpartyBank(
        outbox=args.outbox,
        inbox=args.inbox,
        sent=args.sent or args.outbox.parent / "sent",
        rules=load_rules(args.rules),
        switch=FaultSwitch(Path(args.faults_file), NAME) if args.faults_file else None,
    )
    log.info("answering %s into %s by %s", bank.outbox, bank.inbox, args.rules)
    run_until_stopped(bank.run, bank, args.port)  # a stop lets the pass under way finish
    return 0
