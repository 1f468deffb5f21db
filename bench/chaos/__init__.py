"""Chaos: load through the app's surface while seeded faults hit the stack, then every
promise checked.

    make chaos                                  # CHAOS_ARGS="--seed 7 --minutes 10"
    python -m bench.chaos --seed 1 --minutes 2  # the scaled-down run `make test` makes

Modules: ``kinds`` (the fault-kind interface and registry; one module per family of
faults: ``process``), ``load`` (the workloads), ``checks`` (the findings), ``__main__``
(the run). A fault every few seconds, drawn from the seed (the same seed gives the same
faults at the same offsets), one at a time: never two NATS nodes at once.

Afterwards, with every process running again, it checks (each failed check is a finding):
every payment final, the ledger audit green, the dead-letter stream unchanged, every
consumer drained (nothing pending, nothing unacknowledged), every component ready, process
counts and memory bounded (bench.soak's verdict), and time to final p99 within
``--max-p99`` seconds (0: report only). Writes chaos.json and chaos.png (completions per
second with the faults over time) under ``--out``; exit 1 on any finding.
"""
