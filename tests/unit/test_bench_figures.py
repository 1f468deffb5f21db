"""The bench's arithmetic (bench/run.py, bench/docops.py): what each reported figure means."""

from __future__ import annotations

from bench import calibrate, docops
from bench.pipeline import Tracker
from bench.run import decay, figures, goals, series


def tracker(sent: list[float], done: list[float]) -> Tracker:
    t = Tracker(expected=len(sent))
    for i, at in enumerate(sent):
        t.sent[f"p{i}"] = at
    for i, at in enumerate(done):
        t.done[f"p{i}"] = (at, "completed", "acct")
    return t


def test_completions_per_second_and_what_is_pending_at_each():
    per_s, pending = series(tracker([0.0, 0.0, 0.0, 0.0], [0.5, 0.7, 2.2, 2.9]))
    assert per_s == [2, 0, 2]
    assert pending == [2, 2, 0]


def test_a_stall_while_work_waits_is_the_longest_run_of_empty_seconds():
    done = [0.5, 0.6, 4.5, 4.6, 4.7, 4.8, 4.9, 5.1, 5.2, 5.3]
    d = decay(tracker([0.0] * 10, done))
    assert d["longest_zero_completion_run_s"] == 3  # seconds 1, 2, 3: nothing finished, 8 pending
    assert d["completions_per_s"][1:4] == [0, 0, 0]


def test_the_last_tenth_is_compared_with_the_first():
    # 100 completions: the first ten 0.1 s apart (10/s), the last ten 0.2 s apart (5/s)
    done = [i * 0.1 for i in range(10)] + [1.0 + i * 0.05 for i in range(80)] + [5.0 + i * 0.2 for i in range(10)]
    d = decay(tracker([0.0] * 100, done))
    assert d["first_tenth_per_s"] == 10.0 and d["last_tenth_per_s"] == 5.0 and d["last_over_first"] == 0.5


def test_per_payment_documents_leave_out_what_a_service_does_when_idle():
    delta = {"clearing": {"calls": 30.0, "reads": 40.0, "writes": 20.0, "reads:clearingFiles": 40.0}}
    idle = {"clearing": {"calls": 1.0, "reads": 2.0, "writes": 0.0}}
    out = docops.per_payment(delta, idle, 10.0, 10)
    assert out["clearing"]["calls"] == 2.0 and out["clearing"]["reads"] == 2.0 and out["clearing"]["writes"] == 2.0
    assert docops.summarise(out) == {"documents": 4.0, "reads": 2.0, "writes": 2.0, "round_trips": 2.0}


def test_the_scrape_reads_documents_by_collection(monkeypatch):
    page = "\n".join(
        [
            'fjb_firestore_calls_total{method="Commit"} 3.0',
            'fjb_firestore_documents_total{method="Commit",op="write",collection="accounts"} 5.0',
            'fjb_firestore_documents_total{method="BatchGetDocuments",op="read",collection="users/economy"} 2.0',
        ]
    )

    class Response:
        text = page

    class Settings:
        def __init__(self) -> None:
            self.service_ports = {"ledger": 1, "ledger-2": 2}

    class Stack:
        s = Settings()

    monkeypatch.setattr(docops.requests, "get", lambda *_a, **_k: Response())
    counts = docops.scrape(Stack())
    assert counts["ledger"]["calls"] == 6.0 and counts["ledger"]["writes"] == 10.0
    assert counts["ledger"]["reads:users/economy"] == 4.0


def test_every_goal_is_reported_with_its_value_and_whether_it_was_met():
    kinds = {
        "internal": {"total": {"documents": 11.0}, "per_step": {"edge": {"calls": 3.0}}},
        "external": {"total": {"documents": 19.0}, "per_step": {}},
    }
    r = {
        "mix": {"external_share": 0.1},
        "calibration": {
            "noop_trigger": {"rate_per_s": 10.0, "created_to_seen_p50_ms": 100.0, "finished_in": {"p50_ms": 40.0}},
            "raw": {"documents_per_s": 1000},
        },
        "through_app": {
            "throughputPerSecond": 8.0,
            "edgeSeconds": {"p50": 0.15},
            "ownTimeMs": {"edge": {"p50_ms": 90.0}, "noopProbe": {"p50_ms": 50.0}},
        },
        "pipeline": {"sustained_per_s": 60.0, "decay": {"last_over_first": 0.9, "longest_zero_completion_run_s": 0}},
        "latency": {"p50_ms": 200.0, "p99_ms": 700.0},
        "single_payment": {"p50_ms": 150.0},
        "scaled": {
            1: {"sustained_per_s": 50.0},
            3: {"sustained_per_s": 55.0, "ledger_commits_retried_or_aborted": 0, "ownership_moved_s": 4.0},
        },
        "naive": {"throughput_per_s": 5.0},
        "hot_merchant": {"hot_account_credits_per_s": 31.0},
        "docops": {"kinds": kinds},
    }
    g = goals(r)
    assert all(v["met"] for v in g.values()), {k: v for k, v in g.items() if not v["met"]}
    r["through_app"]["throughputPerSecond"] = 6.0
    assert not goals(r)["app_rate_over_noop_trigger"]["met"]
    assert goals(r)["pipeline_documents_over_raw_capacity"]["value"] == round(60 * (11 * 0.9 + 19 * 0.1) / 1000, 2)
    # the edge's own time against the no-op's in the same phase; the other ways beside it
    assert goals(r)["edge_own_time_over_noop_own_time"] == {"value": 1.8, "goal": "<= 2", "met": True}
    r["through_app"]["ownTimeMs"]["edge"]["p50_ms"] = 101.0
    assert not goals(r)["edge_own_time_over_noop_own_time"]["met"]
    assert figures(r) == {
        "edge_created_to_requested_over_noop_created_to_seen": 1.5,
        "edge_own_time_over_calibration_noop_own_time": 2.52,
    }


def test_the_emulators_finished_lines_give_each_functions_own_time_within_the_block(tmp_path):
    log = tmp_path / "emulators.log"
    log.write_text('i  functions: Finished "europe-west1-on_payment_request" in 500ms\n')
    with calibrate.FunctionTimes(log) as times:
        with log.open("a") as f:
            for ms in (30.5, 10.0, 20.25):
                f.write(f'i  functions: Finished "europe-west1-on_payment_request" in {ms}ms\n')
            f.write('i  functions: Finished "europe-west1-on_calibration_document" in 7.5ms\n')
            f.write('i  functions: Beginning execution of "europe-west1-on_payment_request"\n')
    assert times.of("on_payment_request") == {"invocations": 3, "p50_ms": 20.2, "p90_ms": 30.5}
    assert times.of("on_calibration_document")["invocations"] == 1
    assert times.of("on_push") == {"invocations": 0, "p50_ms": 0.0, "p90_ms": 0.0}


def test_the_documents_plot_stacks_each_kind_by_step(tmp_path):
    step = {"reads": 1.0, "writes": 2.0}
    kinds = {"internal": {"per_step": {"edge": step, "ledger": step}}, "card": {"per_step": {"cards": step}}}
    result = {"kinds": kinds}
    docops.plot(tmp_path / "docops.png", result)
    assert (tmp_path / "docops.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_the_app_path_is_warmed_up_untimed_before_its_measured_run(monkeypatch, tmp_path):
    """The first `bankctl load` after `make up` pays for starting the functions' workers:
    ``--warmup`` payments go first, untimed and reported beside the measured run."""
    import argparse
    import contextlib
    import json
    import subprocess

    from bench import run

    runs: list[list[str]] = []
    timed: list[bool] = []
    in_block = [False]

    def fake_run(cmd, **_kwargs):
        runs.append(cmd)
        timed.append(in_block[0])
        n = int(cmd[cmd.index("-n") + 1])
        out = {"payments": n, "final": n, "seconds": n / 4, "throughputPerSecond": 4.0 if n < 100 else 6.0}
        return subprocess.CompletedProcess(cmd, 0, json.dumps(out), "")

    class Times:
        def __enter__(self):
            in_block[0] = True
            return self

        def __exit__(self, *_exc):
            in_block[0] = False

        def of(self, _function):
            return {"invocations": 1, "p50_ms": 1.0, "p90_ms": 1.0}

    monkeypatch.setattr(run.subprocess, "run", fake_run)
    monkeypatch.setattr(run.calibrate, "FunctionTimes", lambda _log: Times())
    monkeypatch.setattr(run.calibrate, "emulator_log", lambda _stack: tmp_path / "log")
    monkeypatch.setattr(run.calibrate, "noop_probe", lambda _project: contextlib.nullcontext())
    stack = argparse.Namespace(s=argparse.Namespace(project_id="demo"))
    args = argparse.Namespace(app_payments=300, app_customers=20, concurrency=16, warmup=32)
    result = run.through_app(args, stack)
    assert [int(c[c.index("-n") + 1]) for c in runs] == [32, 300]
    assert timed == [False, True]  # the warm-up outside the timed block
    assert result["throughputPerSecond"] == 6.0  # the measured run's
    assert result["warmup"] == {"payments": 32, "final": 32, "seconds": 8.0, "throughputPerSecond": 4.0}
    runs.clear()
    args.warmup = 0
    assert run.through_app(args, stack)["warmup"] is None and len(runs) == 1
