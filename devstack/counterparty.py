"""The local stack's simulated other banks (the `counterparty` component).

The clearing service writes pain.001 files into the clearing channel's outbox and reads
pain.002 answers from its inbox (FJB_CLEARING_DIR, which the stack sets to
.stack/clearing); in production a transfer service carries them to and from the clearing
house. Here this component is the other side: simulators.counterparty in a process of its
own, answering by the rules in emulators/counterparty.json, reading the chaos runs' faults
file for their ``counterparty`` fault (answers twice and out of order). The clearing
service knows nothing of it.

Ready = GET /healthz on 127.0.0.1 (FJB_COUNTERPARTY_PORT, default 9191): 200 while its
passes over the outbox keep coming. It keeps nothing of its own: answers it holds back when
it stops are made again when it starts, as their files are still in the outbox.
"""

from __future__ import annotations

from pathlib import Path

from devstack.supervisor import Component, http_ok
from simulators.counterparty.bank import NAME


def url(stack) -> str:
    return f"http://127.0.0.1:{stack.s.counterparty_port}"


def rules_file(stack) -> Path:
    return stack.s.repo / "emulators" / "counterparty.json"


def argv(stack) -> list[str]:
    channel = stack.s.clearing_dir
    return [
        str(stack.s.venv_python),
        "-m",
        "simulators.counterparty",
        "--outbox",
        str(channel / "outbox"),
        "--inbox",
        str(channel / "inbox"),
        "--sent",
        str(channel / "sent"),
        "--rules",
        str(rules_file(stack)),
        "--faults-file",
        str(stack.faults_file),
        "--port",
        str(stack.s.counterparty_port),
    ]


def component(stack) -> Component:
    """The `counterparty` component of devstack.stack.Stack."""
    return Component(
        name=NAME,
        address=f"{url(stack)} (the other banks: answers {stack.s.clearing_dir}/outbox into inbox; /healthz)",
        argv=argv(stack),
        env={"PYTHONUNBUFFERED": "1"},
        cwd=stack.s.repo,
        ready=lambda: http_ok(f"{url(stack)}/healthz"),
        start_timeout=30,
    )
