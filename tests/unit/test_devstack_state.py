"""The bank's state across a stop and a start: both halves back, or both empty (no I/O
beyond a temporary folder)."""

from __future__ import annotations

import time

import pytest

from devstack import state


@pytest.mark.parametrize(
    ("recorded", "export", "nats", "action"),
    [
        (state.EXPORTED, True, True, state.RESUME),  # a clean stop: everything comes back
        (None, False, False, state.FRESH),  # a new machine
        (state.RUNNING, False, True, state.RESET),  # the emulators were killed: their data is gone
        (state.LOST, True, True, state.RESET),  # an old export: older than what NATS holds
        (state.RUNNING, True, True, state.RESET),  # killed after an earlier clean stop
        (state.EXPORTED, True, False, state.RESET),  # NATS's streams were deleted by hand
        (state.EXPORTED, False, True, state.RESET),  # the export was deleted by hand
    ],
)
def test_never_one_without_the_other(recorded, export, nats, action):
    assert state.decide(recorded, export, nats) == action


def _bank(tmp_path, *, exported: bool, vault_kept: bool = True) -> state.Paths:
    paths = state.Paths(tmp_path)
    (tmp_path / "nats" / "nats-1" / "jetstream").mkdir(parents=True)
    (tmp_path / "nats" / "nats-1" / "jetstream" / "msgs.blk").write_bytes(b"x")
    (tmp_path / "nats" / "nats-1.conf").write_text("conf")
    for name in ("clearing/outbox", "vault", "bankctl/devices", "pki"):
        (tmp_path / name).mkdir(parents=True)
    began = time.time()
    if exported:
        paths.export_dir.mkdir()
        (paths.export_dir / state.EXPORT_METADATA).write_text("{}")
    state.after_stop(paths, began, vault_kept=vault_kept)
    return paths


def test_a_clean_stop_is_recorded_and_resumed(tmp_path):
    paths = _bank(tmp_path, exported=True)
    assert state.recorded(paths)["status"] == state.EXPORTED
    assert state.plan(paths) == state.RESUME


def test_a_stop_that_could_not_keep_the_card_vault_is_lost_as_a_whole(tmp_path):
    """The emulators' export has the (default) database only; without the vault's own
    export the cards would come back without their numbers (devstack/vault_state.py)."""
    paths = _bank(tmp_path, exported=True, vault_kept=False)
    assert state.recorded(paths)["status"] == state.LOST and state.plan(paths) == state.RESET


def test_a_stop_without_export_empties_the_whole_bank_but_keeps_the_keys(tmp_path):
    paths = _bank(tmp_path, exported=False)
    assert state.recorded(paths)["status"] == state.LOST and state.plan(paths) == state.RESET
    assert "lost" in state.lost_message(paths)
    state.reset(paths)
    assert not state.nats_has_data(paths) and state.plan(paths) == state.FRESH
    assert not (tmp_path / "clearing").exists() and not (tmp_path / "vault").exists()
    assert (tmp_path / "nats" / "nats-1.conf").exists() and (tmp_path / "pki").exists()


# ---- the logs --------------------------------------------------------------------------------
def test_a_log_over_its_limit_is_moved_aside_when_its_component_starts(tmp_path):
    """The logs were only appended to, across every start: a stack used for days filled the
    disk and each start read gigabytes for its ready line."""
    from devstack.supervisor import rotate

    log = tmp_path / "emulators.log"
    log.write_bytes(b"x" * 100)
    assert not rotate(log, limit=100) and log.stat().st_size == 100
    (tmp_path / "emulators.log.1").write_bytes(b"older")
    log.write_bytes(b"y" * 101)
    assert rotate(log, limit=100)
    assert not log.exists() and (tmp_path / "emulators.log.1").read_bytes() == b"y" * 101
    assert not rotate(tmp_path / "missing.log")


def test_a_log_is_read_from_its_last_start_only(tmp_path):
    from devstack.supervisor import since_last_start

    log = tmp_path / "emulators.log"
    log.write_text("=== one\nold\n" + "z" * 5000 + "\n=== two\nAll emulators ready\n")
    assert since_last_start(log, chunk=64) == "=== two\nAll emulators ready\n"
    log.write_text("no marker at all\n")
    assert since_last_start(log, chunk=4) == "no marker at all\n"
    assert since_last_start(tmp_path / "missing.log") == ""
