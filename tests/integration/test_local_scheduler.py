"""The local stack's Cloud Scheduler (devstack/scheduler.py) against the real emulators: at
a job's minute it publishes {"job": NAME} on the Pub/Sub emulator's scheduled-jobs topic,
the Functions emulator's on_scheduled_job runs it (its "scheduled job done" line names the
message the scheduler published), and SIGTERM stops it cleanly.

The session's own scheduler is paused (tests/conftest.py); this one runs relay-outbox
alone, every minute (the job has nothing to relay from other tests' unless their publish
failed, and then relaying it is what the job is for). Up to a minute passes before its
first minute comes."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from bench.chaos.clock import RunLog

pytestmark = pytest.mark.stack
REPO = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def health(port: int) -> dict:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as answer:
            return json.loads(answer.read())
    except (urllib.error.URLError, OSError, ValueError):
        return {}


def test_a_job_is_queued_at_its_minute_and_the_scheduled_jobs_function_runs_it(stack, tmp_path):
    port = free_port()
    runs = RunLog(stack.sup.log_file("emulators"))
    out = tmp_path / "scheduler.log"
    argv = [sys.executable, "-m", "devstack.scheduler", "--project", stack.s.project_id, "--port", str(port)]
    argv += ["--only", "relay-outbox", "--job", "relay-outbox=* * * * *"]
    with out.open("wb") as log:
        proc = subprocess.Popen(
            argv, cwd=REPO, env={**os.environ, **stack.emulator_hosts()}, stdout=log, stderr=subprocess.STDOUT
        )
    try:
        deadline = time.monotonic() + 100  # its first minute, and the publish
        message = None
        while message is None and time.monotonic() < deadline and proc.poll() is None:
            job = health(port).get("jobs", {}).get("relay-outbox", {})
            message = job.get("lastMessage")
            time.sleep(0.5)
        assert message, (health(port), out.read_text())
        deadline = time.monotonic() + 120
        while runs.poll().get(message) is None and time.monotonic() < deadline:
            time.sleep(0.5)
        assert runs.ended.get(message) == "done", f"run {message}: {runs.ended.get(message)}"
    finally:
        proc.terminate()
        proc.wait(20)
    said = out.read_text()
    assert proc.returncode == 0, said
    assert "job relay-outbox runs at '* * * * *' (Europe/Oslo)" in said
    assert f"queued job relay-outbox (message {message})" in said
