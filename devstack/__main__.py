"""python -m devstack {up,down,status,restart,kill}: the local stack's command line."""

from __future__ import annotations

import argparse
import signal
import sys
import time

from devstack import settings as stack_settings
from devstack import web
from devstack.prometheus import NotInstalled
from devstack.stack import Row, Stack
from devstack.supervisor import Component, StartError


def print_table(rows: list[Row]) -> None:
    headers = ("component", "state", "pid", "address", "log")
    data = [(r.component, r.state, str(r.pid or "-"), r.address, str(r.log)) for r in rows]
    widths = [max(len(h), *(len(d[i]) for d in data)) for i, h in enumerate(headers)]
    line = "  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True))
    print(line)
    print("  ".join("-" * w for w in widths))
    for d in data:
        print("  ".join(v.ljust(w) for v, w in zip(d, widths, strict=True)))


def cmd_up(stack: Stack, detach: bool) -> int:
    print(f"Starting the Fjordbank stack (logs in {stack.s.log_dir})", flush=True)
    running_before = _running(stack)
    try:
        rows = stack.up()
    except NotInstalled as exc:  # said before anything started: nothing to stop
        print(f"\nERROR: {exc}", file=sys.stderr)
        return 1
    except StartError as exc:
        print(f"\nERROR: {exc}", file=sys.stderr)
        print("Stopping what was started. Fix the cause and run the up command again.", file=sys.stderr)
        # an up on a running stack stopped all of it when one component failed to start
        # (a service's broken edit took the emulators and their data down: found in
        # review, 2026-12-07): what ran before this up is left running
        if running_before:
            print(f"Left running as before: {', '.join(sorted(running_before))}.", file=sys.stderr)
        stack.down(keep=running_before)
        return 1
    print()
    print_table(rows)
    print("\nAll components are ready. Stop them with `make down`" + ("" if detach else " or Ctrl-C") + ".")
    print(web.walkthrough(stack.s))
    if detach:
        return 0
    stop = False

    def on_signal(signum, _frame):
        nonlocal stop
        stop = True

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    silent: dict[str, int] = {}  # passes in a row a component's `gone` said something stopped
    passes = 0
    while not stop:
        time.sleep(1)
        passes += 1
        components = stack.components()
        # died: its pid file there and its process gone. A pid file missing is a restart in
        # progress (`devstack restart NAME`, chaos runs): taken for a death, it stopped the
        # whole stack, and the restarted process outlived the stop (found in review, 2026-12-07)
        dead = [c.name for c in components if stack.sup.died(c.name)]
        bound_logs(stack, components)
        if dead:
            print(f"component(s) stopped: {', '.join(dead)}; see their logs in {stack.s.log_dir}", file=sys.stderr)
            for line in stack.deaths():
                print(line, file=sys.stderr)
            break
        if passes % GONE_EVERY == 0 and (lost := _gone(stack, components, silent)):
            for line in lost:
                print(line, file=sys.stderr)
            break
    print("\nStopping everything ...")
    for name in stack.down():
        print(f"  stopped {name}")
    return 0


# How often (passes of a second) the watch loop asks the components that can say so what
# of them stopped answering, and in how many asks in a row before it takes it for gone: a
# Java emulator killed under firebase-tools (the out-of-memory killer) left the leader
# running, the stack shown running, and every service failing on a database that was no
# longer there, its data lost (left as known in earlier reviews; mended 2026-12-07).
GONE_EVERY = 5
GONE_ASKS = 3


def _gone(stack: Stack, components: list[Component], silent: dict[str, int]) -> list[str]:
    """What to say of the components whose `gone` said something stopped ``GONE_ASKS`` times
    in a row (counted in ``silent``); empty while none."""
    said = []
    for comp in components:
        what = comp.gone() if comp.gone is not None and stack.sup.pid(comp.name) is not None else None
        silent[comp.name] = silent.get(comp.name, 0) + 1 if what else 0
        if what and silent[comp.name] >= GONE_ASKS:
            lost = (
                "; Firestore's and Auth's data since the last `make down` is lost with it"
                if comp.name == "emulators"
                else ""
            )
            said.append(f"{comp.name}: {what} though its process runs; see {stack.sup.log_file(comp.name)}{lost}")
    return said


def _running(stack: Stack) -> frozenset[str]:
    """The components running (their process the stack's) before an up."""
    try:
        return frozenset(c.name for c in stack.components() if stack.sup.pid(c.name) is not None)
    except NotInstalled:  # the up says it
        return frozenset()


def bound_logs(stack: Stack, components: list[Component] | None = None) -> None:
    """Keep each component's log under its size bound while it runs (Supervisor.bound_log):
    a log was cut back only when its component started, and a stack left running for
    days filled the disk and slowed the emulators' ready check down to seconds. A stat of
    each log when nothing is over the bound."""
    for comp in stack.components() if components is None else components:
        stack.sup.bound_log(comp.name)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devstack", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    up = sub.add_parser("up", help="install-free start of every component (idempotent)")
    up.add_argument("--detach", action="store_true", help="return once everything is ready")
    sub.add_parser("down", help="stop every component, with its children")
    sub.add_parser("status", help="show what runs")
    for name in ("restart", "kill"):
        p = sub.add_parser(name, help=f"{name} one component (kill = SIGKILL, for failure tests)")
        p.add_argument("component")
    args = parser.parse_args(argv)
    stack = Stack(stack_settings.load(), progress=lambda msg: print(msg, flush=True))
    if args.command == "up":
        return cmd_up(stack, args.detach)
    if args.command == "down":
        stopped = stack.down()
        print("stopped: " + (", ".join(stopped) if stopped else "nothing was running"))
        return 0
    if args.command == "status":
        bound_logs(stack)  # before the ready checks read them (a detached stack has no watch loop)
        rows = stack.status()
        print_table(rows)
        for line in stack.deaths():
            print(f"\n{line}", file=sys.stderr)
        return 0 if all(r.state == "ready" for r in rows) else 3
    if args.command == "restart":
        try:
            print_table([stack.restart(args.component)])
        except StartError as exc:  # e.g. prometheus not installed: say so, no traceback
            print(f"ERROR: {exc}", file=sys.stderr)
            return 1
        return 0
    if args.command == "kill":
        stack.sup.kill(args.component)
        print(f"killed {args.component}")
        return 0
    return 2


if __name__ == "__main__":
    sys.exit(main())
