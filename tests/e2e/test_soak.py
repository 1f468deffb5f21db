"""A scaled-down soak (bench/soak.py): load through the app's surface while every
component's processes and memory are sampled; they stay flat, and the Functions
emulator's Python workers stay within their bound (the firebase-tools patch)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

pytestmark = pytest.mark.stack


def test_a_short_soak_stays_flat(stack, tmp_path):
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench.soak",
            "--minutes",
            "2",
            "--interval",
            "10",
            "--batch",
            "-n 80 -m 6 -c 8 --external 30",
            "--out",
            str(tmp_path),
        ],
        cwd=stack.s.repo,
        capture_output=True,
        text=True,
        timeout=1200,
        check=False,
    )
    result = json.loads((tmp_path / "soak.json").read_text())
    assert out.returncode == 0, (result["findings"], out.stdout[-2000:], out.stderr[-2000:])
    assert result["flat"] and result["batches"] and len(result["samples"]) >= 12
    workers = [s["components"]["emulators"]["runtime_workers"] for s in result["samples"]]
    assert result["functions"] >= 20  # every function the app has (a new one raises the bound with it)
    assert max(workers) <= result["functions_max_workers"] * result["functions"] * 2
    assert (tmp_path / "soak.png").stat().st_size > 0
