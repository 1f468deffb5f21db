"""A seeded 2-minute chaos run (bench/chaos.py): consumers and NATS nodes killed and hung
under load through the app's surface; afterwards every payment is final, the audit green,
the dead-letter stream unchanged, the consumers drained and every component ready.

Time to final is reported, not asserted (performance is the benchmarks' business:
`make chaos` holds it to p99 <= 10 s)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

# a 2-minute run, then the card and standing-order workloads wind down and the checks wait for
# late pushes: more than the suite's 300 s per test
pytestmark = [pytest.mark.stack, pytest.mark.timeout(1500)]


def test_a_short_seeded_chaos_run_keeps_every_promise(stack, tmp_path):
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench.chaos",
            "--seed",
            "3",
            "--minutes",
            "2",
            "--gap",
            "3",
            "8",
            "--payments",
            "60",
            "--customers",
            "6",
            "--max-p99",
            "0",
            "--out",
            str(tmp_path),
        ],
        cwd=stack.s.repo,
        capture_output=True,
        text=True,
        timeout=1500,
        check=False,
    )
    result = json.loads((tmp_path / "chaos.json").read_text())
    assert out.returncode == 0, (result["findings"], out.stdout[-3000:], out.stderr[-2000:])
    assert result["ok"] and result["payments_final"] > 0 and result["audit"]["ok"]
    assert len(result["faults"]) >= 4, result["faults"]
    assert result["dlq_after"] == result["dlq_before"]
    assert all(c == {"pending": 0, "ack_pending": 0} for c in result["consumers_after"].values())
    print(json.dumps({k: result[k] for k in ("fault_kinds", "payments_final", "time_to_final_s")}))
    assert (tmp_path / "chaos.png").stat().st_size > 0
