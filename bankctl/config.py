"""Where bankctl finds the stack: read once from the environment, defaults = the local stack.

| variable | default |
|---|---|
| FIRESTORE_EMULATOR_HOST | the Firestore emulator of `firebase.json` (127.0.0.1:8080) |
| FIREBASE_AUTH_EMULATOR_HOST | the Auth emulator of `firebase.json` (127.0.0.1:9099) |
| PUBSUB_EMULATOR_HOST | the Pub/Sub emulator of `firebase.json` (127.0.0.1:8085) |
| FJB_FUNCTIONS_HOST | the Functions emulator of `firebase.json` (127.0.0.1:5001) |
| FJB_FUNCTIONS_REGION | europe-west1 |
| FJB_CARD_API_PORT | 9110 (the card service's processor API) |
| FJB_STATE_DIR | `.stack/` (the App Check debug secret, card secrets, bankctl's device keys) |
| FJB_TRACE_DIR | `.stack/traces/` (the services' span files, what `bankctl trace` reads) |
| FJB_PROJECT_ID | demo-fjordbank |
| FJB_SCA_THRESHOLD | 500000 øre (above it a payment needs the device's signature) |
| FJB_BANK_REGS | 9710 (the bank's registration numbers: payees outside them are other banks) |
| FJB_HTTP_TIMEOUT | 60 (seconds bankctl waits for an answer over HTTP: the Auth and Functions emulators) |

NATS is reached as the stack's `admin` identity (ports from FJB_NATS_CLIENT_PORT).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from clientkit.endpoints import Endpoints
from devstack import settings as stack_settings
from devstack.settings import StackSettings
from devstack.stack import Stack
from fjordbank.domain.sca import DEFAULT_THRESHOLD


@dataclass(frozen=True)
class Config:
    stack_settings: StackSettings
    project_id: str
    firestore_host: str
    auth_host: str
    pubsub_host: str
    functions_host: str
    region: str
    card_api_url: str
    state_dir: Path
    sca_threshold: int
    bank_regs: tuple[str, ...]
    http_timeout: float = 60.0
    trace_dir: Path | None = None  # None: state_dir/traces

    @cached_property
    def stack(self) -> Stack:
        return Stack(self.stack_settings, progress=lambda _msg: None)

    @property
    def endpoints(self) -> Endpoints:
        """Where the bank's public surface is, for the client kit."""
        return Endpoints(
            project_id=self.project_id,
            auth_host=self.auth_host,
            functions_host=self.functions_host,
            firestore_host=self.firestore_host,
            region=self.region,
            http_timeout=self.http_timeout,
        )

    @property
    def devices_dir(self) -> Path:
        """bankctl's simulated phones: one device key per customer it created."""
        return self.state_dir / "bankctl" / "devices"

    def addresses(self) -> dict[str, str]:
        """Each part of the stack bankctl talks to, by the name its errors give it."""
        from bankctl import errors

        return {
            errors.FUNCTIONS: self.functions_host,
            errors.AUTH: self.auth_host,
            errors.FIRESTORE: self.firestore_host,
            errors.PUBSUB: self.pubsub_host,
            errors.NATS: self.stack_settings.nats_urls,
            errors.CARDS: self.card_api_url,
        }

    def emulator_environ(self) -> dict[str, str]:
        """What the Google clients read to talk to the emulators instead of production."""
        return {
            "FIRESTORE_EMULATOR_HOST": self.firestore_host,
            "FIREBASE_AUTH_EMULATOR_HOST": self.auth_host,
            "PUBSUB_EMULATOR_HOST": self.pubsub_host,
            "GCLOUD_PROJECT": self.project_id,
            "FJB_PROJECT_ID": self.project_id,
        }


def load(env: Mapping[str, str] | None = None) -> Config:
    env = os.environ if env is None else env
    s = stack_settings.load(env)
    ports = s.emulator_ports
    try:
        threshold = int(env.get("FJB_SCA_THRESHOLD", DEFAULT_THRESHOLD))
    except ValueError:
        raise SystemExit(f"FJB_SCA_THRESHOLD={env['FJB_SCA_THRESHOLD']!r} is not a number of øre") from None
    http_timeout = _seconds(env, "FJB_HTTP_TIMEOUT", 60.0)
    return Config(
        stack_settings=s,
        project_id=s.project_id,
        firestore_host=env.get("FIRESTORE_EMULATOR_HOST", f"127.0.0.1:{ports['firestore']}"),
        auth_host=env.get("FIREBASE_AUTH_EMULATOR_HOST", f"127.0.0.1:{ports['auth']}"),
        pubsub_host=env.get("PUBSUB_EMULATOR_HOST", f"127.0.0.1:{ports['pubsub']}"),
        functions_host=env.get("FJB_FUNCTIONS_HOST", f"127.0.0.1:{ports['functions']}"),
        region=env.get("FJB_FUNCTIONS_REGION", "europe-west1"),
        card_api_url=f"http://127.0.0.1:{s.card_api_port}",
        state_dir=s.state_dir,
        sca_threshold=threshold,
        bank_regs=tuple(r.strip() for r in env.get("FJB_BANK_REGS", "9710").split(",") if r.strip()),
        http_timeout=http_timeout,
        trace_dir=Path(env["FJB_TRACE_DIR"]) if env.get("FJB_TRACE_DIR") else s.state_dir / "traces",
    )


def _seconds(env: Mapping[str, str], name: str, default: float) -> float:
    text = env.get(name)
    if text is None:
        return default
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if not 0 < value < 3600:
        raise SystemExit(f"{name}={text!r} is not a number of seconds (more than 0, less than 3600)")
    return value


def apply_environ(config: Config) -> None:
    """Point the Google clients (Firestore, Pub/Sub, firebase_admin) at the configured emulators."""
    for key, value in config.emulator_environ().items():
        os.environ[key] = value
