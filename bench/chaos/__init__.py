"""Chaos: load through the app's surface while seeded faults hit the stack, then every
promise checked.

    make chaos                                  # CHAOS_ARGS="--seed 7 --minutes 10"
    python -m bench.chaos --seed 1 --minutes 2  # the scaled-down run `make test` makes

Modules: ``kinds`` (the fault-kind interface and registry), one module per family of
faults (``process``: consumer instances and NATS nodes killed or hung; ``partitions``: an
instance holding partitions killed; ``injected``: Firestore errors and publish timeouts
inside the services, through fjordbank/adapters/faults.py; ``clearing``: the clearing
channel down, the other bank answering twice and out of order; ``clock``: the scheduler's
clock across month ends and the Europe/Oslo daylight-saving changes), ``load`` (the
workloads: payments, card authorisations and captures, standing orders falling due),
``checks`` (the findings), ``broken`` (``--break``: a service broken on purpose, to show
the run catches it) and ``__main__`` (the run). A fault every few seconds, drawn from the
seed (the same seed gives the same faults at the same offsets), one at a time: never two
NATS nodes at once.

Afterwards, with every process running again, it checks (each failed check is a finding):
every request final and none lost, the ledger audit green, the dead-letter stream
unchanged, each push shown exactly once, every feed entry equal to its payment, each standing
order paid once, every card authorisation decided (and captured or reversed), every
consumer drained (nothing pending, nothing unacknowledged), every component ready, process
counts and memory bounded (bench.soak's verdict), and time to final p99 within
``--max-p99`` seconds (0: report only) over the payments no clearing outage held (an
external payment in flight while the other bank cannot be reached waits for it by design;
both figures are reported). Writes chaos.json and chaos.png (completions per second with
the faults over time) under ``--out``; exit 1 on any finding.
"""
