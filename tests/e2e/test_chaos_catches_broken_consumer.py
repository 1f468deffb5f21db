"""The chaos run catches what it is there to catch, shown once on purpose: the ledger is
broken into a consumer that acks each message before its handler commits (`--break
ack-before-commit:ledger`, fjordbank/runtime/consumer.py ``_ack_before_commit``) and killed
over and over under load. Messages acked and never committed are gone, their payments are
never final, and the run must say so and exit 1.

The same seed and kinds without the break must pass: that is tests/e2e/test_chaos.py's
promise (a run of every kind), not repeated here. The payments this run loses stay lost on
the stack; later runs check only their own."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from devstack.settings import service_of

pytestmark = [pytest.mark.stack, pytest.mark.timeout(700)]  # the run, its wind-down and checks


def test_a_consumer_that_acks_before_its_commit_is_caught(stack, tmp_path):
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench.chaos",
            "--seed",
            "7",
            "--minutes",
            "0.75",
            "--kinds",
            "kill",
            "--targets",
            "ledger",  # every kill hits the broken service (any of its instances)
            "--break",
            "ack-before-commit:ledger",
            "--gap",
            "1",
            "3",
            "--payments",
            "60",
            "--customers",
            "6",
            "--workloads",
            "payments",
            "--final-timeout",
            "15",  # a lost payment is never final: do not wait long for it
            "--max-p99",
            "0",
            "--out",
            str(tmp_path),
        ],
        cwd=stack.s.repo,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    result = json.loads((tmp_path / "chaos.json").read_text())
    assert out.returncode == 1, (result["findings"], out.stdout[-3000:], out.stderr[-2000:])
    assert result["broken"] == "ack-before-commit:ledger" and not result["ok"]
    assert {f["kind"] for f in result["faults"]} == {"kill"}
    assert {service_of(t) for f in result["faults"] for t in f["targets"]} == {"ledger"}, result["faults"]
    lost = [f for f in result["findings"] if "never final" in f or "not final" in f]
    assert lost, result["findings"]
    print(json.dumps({"findings": result["findings"], "faults": len(result["faults"])}, indent=1))
    # the break is off again: the faults file no longer has it
    faults = stack.faults_file
    assert not faults.exists() or "ack_before_commit" not in json.loads(faults.read_text() or "{}")
