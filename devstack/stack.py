"""The components of the local stack and the order they start in."""

from __future__ import annotations

import asyncio
import atexit
import errno
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from google.api_core.exceptions import GoogleAPIError

from devstack import counterparty, emulators, natsconf, pki, prometheus, scheduler, vault_state, web
from devstack import settings as stack_settings
from devstack import state as bank_state
from devstack.settings import StackSettings, service_of
from devstack.supervisor import Component, StartError, Supervisor, http_ok, since_last_start, tail
from devstack.vendor import vendor_shared
from fjordbank import topology

EMULATORS = ("auth", "functions", "firestore", "pubsub")
# Lines after which the suite claims to be ready but is not usable.
# the emulators' own debug logs, written in the log folder (their working directory)
EMULATOR_DEBUG_LOGS = ("firebase-debug.log", "firestore-debug.log", "pubsub-debug.log")
FATAL_EMULATOR_LINES = (
    "Failed to load function definition",
    "could not be analyzed successfully",
    "has exited with code",
)
FUNCTIONS_LOADED = "Loaded functions definitions from source"
# the screening service's policy here (config/): production's limits and the test suite's
# blocked account, which the image's config/screening.json must never block
LOCAL_SCREENING_POLICY = "screening-local.json"


@dataclass
class Row:
    component: str
    address: str
    pid: int | None
    log: Path
    state: str


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


def port_refused(port: int, host: str = "127.0.0.1", timeout: float = 5.0) -> bool:
    """Whether nothing listens on ``port`` (the connection refused): not a listener too busy
    to accept in time (a long collector pause, starved cores under a soak), which a
    connect's timeout cannot tell from one gone."""
    with socket.socket() as sock:
        sock.settimeout(timeout)
        return sock.connect_ex((host, port)) == errno.ECONNREFUSED


class Stack:
    def __init__(self, settings: StackSettings, progress=print) -> None:
        self.s = settings
        self.sup = Supervisor(settings.run_dir, settings.log_dir)
        self.progress = progress
        self.state = bank_state.Paths(settings.state_dir)
        self.import_state = False  # the emulators start from the last export (settle_state)

    # ---- environment shared by the processes -------------------------------------------
    def emulator_hosts(self) -> dict[str, str]:
        ports = self.s.emulator_ports
        return {
            "FIRESTORE_EMULATOR_HOST": f"127.0.0.1:{ports['firestore']}",
            "FIREBASE_AUTH_EMULATOR_HOST": f"127.0.0.1:{ports['auth']}",
            "PUBSUB_EMULATOR_HOST": f"127.0.0.1:{ports['pubsub']}",
            "GCLOUD_PROJECT": self.s.project_id,
            "FJB_PROJECT_ID": self.s.project_id,
        }

    @property
    def faults_file(self) -> Path:
        """Where a chaos run asks the services (and the `counterparty` component) for
        injected faults (emulator only)."""
        return self.s.state_dir / "chaos" / "faults.json"

    def nats_env(self, identity: str) -> dict[str, str]:
        secret = natsconf.ensure_user_secrets(self.s.secrets_file)[identity]
        pki_dir = self.s.pki_dir
        return {
            "FJB_NATS_URLS": self.s.nats_urls,
            "FJB_NATS_USER": identity,
            "FJB_NATS_PASSWORD": secret,
            "FJB_NATS_CA": str(pki_dir / "ca.pem"),
            "FJB_NATS_CERT": str(pki_dir / f"client-{identity}.pem"),
            "FJB_NATS_KEY": str(pki_dir / f"client-{identity}-key.pem"),
            "FJB_STATE_DIR": str(self.s.state_dir),
        }

    def card_env(self) -> dict[str, str]:
        """The card service's vault and CVV keys and the processor's shared secret."""
        from fjordbank.adapters.vault import new_key

        keys = natsconf.ensure_secrets(
            self.s.card_secrets_file,
            {"vaultKey": new_key, "cvvKey": new_key, "processorSecret": lambda: secrets.token_urlsafe(32)},
        )
        return {
            "FJB_VAULT_KEY": keys["vaultKey"],
            "FJB_CVV_KEY": keys["cvvKey"],
            "FJB_CARD_PROCESSOR_SECRET": keys["processorSecret"],
            "FJB_CARD_API_PORT": str(self.s.card_api_port),
        }

    def app_check_debug_secret(self) -> str:
        """The secret the emulator's App Check debug path verifies tokens with."""
        keys = natsconf.ensure_secrets(
            self.s.state_dir / "app-check-debug.json", {"secret": lambda: secrets.token_urlsafe(32)}
        )
        return keys["secret"]

    @property
    def card_api_url(self) -> str:
        return f"http://127.0.0.1:{self.s.card_api_port}"

    # ---- components ---------------------------------------------------------------------
    def nats_components(self) -> list[Component]:
        return [
            Component(
                name=node.name,
                address=f"{node.url} (monitor http://127.0.0.1:{node.monitor_port})",
                argv=[self.s.nats_server_bin(), "-c", str(self.s.state_dir / "nats" / f"{node.name}.conf")],
                ready=lambda node=node: http_ok(f"http://127.0.0.1:{node.monitor_port}/varz"),
                start_timeout=30,
            )
            for node in self.s.nats_nodes
        ]

    @property
    def fcm_sink_url(self) -> str:
        return f"http://127.0.0.1:{self.s.fcm_sink_port}"

    def fcm_sink_component(self) -> Component:
        return Component(
            name="fcm-sink",
            address=f"{self.fcm_sink_url} (FCM v1 send API; messages at /sink/messages)",
            argv=[
                str(self.s.venv_python),
                "-m",
                "devstack.fcm_sink",
                "--port",
                str(self.s.fcm_sink_port),
                "--store",
                str(self.s.state_dir / "fcm-sink.jsonl"),
            ],
            cwd=self.s.repo,
            ready=lambda: http_ok(f"{self.fcm_sink_url}/healthz"),
            start_timeout=20,
        )

    def emulator_component(self) -> Component:
        ports = self.s.emulator_ports
        env = emulators.emulator_env(self.s.venv_python, self.s.state_dir, os.environ.get("PATH", ""))
        log = self.sup.log_file("emulators")

        def ready() -> bool:
            if not all(port_open(ports[name]) for name in EMULATORS):
                return False
            text = since_last_start(log)
            # a broken edit of functions/ is fatal until the emulator has loaded them again
            current = text[text.rfind(FUNCTIONS_LOADED) :] if FUNCTIONS_LOADED in text else text
            for fatal in FATAL_EMULATOR_LINES:
                if fatal in current:
                    raise StartError(f"emulators: {fatal}; see {log}:\n{tail(log, 30)}")
            return "All emulators ready" in text

        def gone() -> str | None:
            closed = [name for name in EMULATORS if port_refused(ports[name])]
            return f"the {', '.join(closed)} emulator(s) stopped answering on their port(s)" if closed else None

        return Component(
            name="emulators",
            address=", ".join(f"{name} 127.0.0.1:{ports[name]}" for name in EMULATORS),
            argv=[
                str(self.s.firebase_bin),
                "emulators:start",
                "--config",
                str(self.s.repo / "firebase.json"),
                "--project",
                self.s.project_id,
                "--only",
                ",".join(EMULATORS),
                # Firestore and Auth are kept across a stop (devstack/state.py)
                "--export-on-exit",
                str(self.state.export_dir),
                *(["--import", str(self.state.export_dir)] if self.import_state else []),
            ],
            env={
                **env,
                **self.emulator_hosts(),
                "FIREBASE_CLI_EXPERIMENTS": "",
                "CI": "true",
                # firebase-tools' own debug log (about 30 lines per function call, 250 MB an
                # hour under load, and nothing the emulators' log lacks for a tester) only
                # when asked for: FJB_FIREBASE_DEBUG_LOG=1
                **({} if os.environ.get("FJB_FIREBASE_DEBUG_LOG") == "1" else {"FIREBASE_DEBUG_PATH": os.devnull}),
                # at most this many Python workers per function (scripts/patch_firebase_tools.py)
                "FUNCTIONS_EMULATOR_MAX_WORKERS": str(self.s.functions_max_workers),
            },
            cwd=self.s.log_dir,  # where firebase-tools and the emulators put their debug logs
            own_logs=EMULATOR_DEBUG_LOGS,
            ready=ready,
            gone=gone,
            start_timeout=240,
            stop_timeout=120,  # the export on exit takes a while with much data
            before_start=self.prepare_functions,
            leader_signal=signal.SIGINT,  # firebase-tools exports, then stops its emulators
        )

    def service_env(self, service: str) -> dict[str, str]:
        """What one service needs beyond the shared environment: the card service its keys,
        the clearing service its channel (which the `counterparty` component answers), the
        screening service the local policy (the test suite's blocked account; the image's,
        config/screening.json, blocks no test number)."""
        if service == "cards":
            return self.card_env()
        if service == "clearing":
            return {"FJB_CLEARING_DIR": str(self.s.clearing_dir)}
        if service == "screening":
            return {"FJB_SCREENING_POLICY": str(self.s.repo / "config" / LOCAL_SCREENING_POLICY)}
        return {}

    def service_components(self) -> list[Component]:
        comps = []
        for name, port in self.s.service_ports.items():
            service = service_of(name)  # an instance: ledger, ledger-2 ...
            extra = self.service_env(service)
            address = f"http://127.0.0.1:{port} (/healthz /readyz /metrics)"
            if name == "cards":
                address += f"; card processor API {self.card_api_url}/v1/authorizations"
            comps.append(
                Component(
                    name=name,
                    address=address,
                    argv=[str(self.s.venv_python), "-m", f"run_services.{service}"],
                    env={
                        **self.emulator_hosts(),
                        **self.nats_env(service),
                        **extra,
                        "FJB_HTTP_PORT": str(port),
                        # chaos runs ask for faults here (fjordbank/adapters/faults.py)
                        "FJB_FAULTS_FILE": str(self.faults_file),
                        # stable: a restarted instance takes back its partitions at once
                        "FJB_INSTANCE_ID": name,
                        "PYTHONUNBUFFERED": "1",
                    },
                    cwd=self.s.repo,
                    ready=lambda port=port: http_ok(f"http://127.0.0.1:{port}/readyz"),
                    start_timeout=60,
                )
            )
        return comps

    def components(self) -> list[Component]:
        return [
            *self.nats_components(),
            self.fcm_sink_component(),
            counterparty.component(self),  # the other banks, on the clearing channel's far side
            self.emulator_component(),
            *self.service_components(),
            *([scheduler.component(self)] if self.s.scheduler else []),  # runs jobs: after what they use
            web.component(self),
            prometheus.component(self),  # last: it scrapes the services
        ]

    # ---- preparation --------------------------------------------------------------------
    def prepare_nats(self) -> None:
        identities = [ident.name for ident in topology.IDENTITIES]
        pki.ensure_pki(self.s.pki_dir, identities)
        secrets = natsconf.ensure_user_secrets(self.s.secrets_file)
        natsconf.write_configs(self.s, secrets)

    def prepare_functions(self) -> None:
        """Copy the shared package into functions/ and give the edge its NATS identity."""
        vendor_shared(self.s.repo)
        env = {
            **self.nats_env("edge"),
            "FJB_FCM_SINK_URL": self.fcm_sink_url,
            "FJB_ALLOW_SYNTHETIC_IDS": "true",
            # .env.local is read by the emulator only: the debug path never reaches a deploy
            "FJB_APP_CHECK_DEBUG_SECRET": self.app_check_debug_secret(),
        }
        # what the functions declare as secrets (functions/main.py NATS_SECRETS) goes into
        # .secret.local, where the emulator looks for a declared secret; the certificates
        # as paths (production hands their PEM text; fjordbank.adapters.nats_conn takes both)
        secrets = {k: env.pop(k) for k in ("FJB_NATS_PASSWORD", "FJB_NATS_CERT", "FJB_NATS_KEY", "FJB_NATS_CA")}
        functions = self.s.repo / "functions"
        # private: it holds the App Check debug secret (written 0644 by umask, any local user
        # could mint App Check tokens; found in review, 2026-12-07)
        _write_private(functions / ".env.local", "".join(f"{k}={v}\n" for k, v in sorted(env.items())))
        _write_private(functions / ".secret.local", "".join(f"{k}={v}\n" for k, v in secrets.items()))

    def wait_jetstream(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        urls = [f"http://127.0.0.1:{n.monitor_port}/healthz" for n in self.s.nats_nodes]
        while time.monotonic() < deadline:
            if all(http_ok(u) for u in urls):
                return
            time.sleep(0.5)
        raise StartError(
            f"the NATS cluster did not elect a JetStream leader within {timeout:.0f}s; see {self.s.log_dir}/nats-*.log"
        )

    def ensure_topology(self) -> None:
        from fjordbank.adapters import jetstream, nats_conn
        from fjordbank.config import load_settings

        settings = load_settings({**os.environ, **self.nats_env("admin")})

        async def run() -> None:
            nc = await nats_conn.connect(settings.nats, name="devstack-admin", max_reconnect_attempts=3)
            try:
                await jetstream.ensure_topology(nc.jetstream())
            finally:
                await nc.close()

        asyncio.run(run())

    # ---- commands -----------------------------------------------------------------------
    def settle_state(self) -> None:
        """Before the emulators start: bring the bank's last state back whole (Firestore
        and Auth from their export, NATS's streams as they are), or start it empty whole."""
        action = bank_state.plan(self.state)
        if action == bank_state.RESET:
            self.progress(f"  the bank starts empty: {bank_state.lost_message(self.state)}")
            for name in self.down():  # nothing may hold the streams while they are emptied
                self.progress(f"  stopped {name}")
            bank_state.reset(self.state)
        elif action == bank_state.RESUME:
            self.progress(f"  the bank's state comes back from {self.state.export_dir} and NATS's streams")
        self.import_state = action == bank_state.RESUME

    def up(self) -> list[Row]:
        # a missing tool is said before anything starts (prometheus.NotInstalled)
        prometheus.check_installed(self.s)
        starting_emulators = self.sup.pid("emulators") is None
        if starting_emulators:
            self.settle_state()
        self.prepare_nats()
        rows: list[Row] = []
        nats = self.nats_components()
        for comp in nats:
            rows.append(self._start(comp))
        self.progress("  waiting for the NATS cluster to elect a JetStream leader ...")
        self.wait_jetstream()
        self.progress("  creating streams and consumers from fjordbank/topology.py ...")
        self.ensure_topology()
        rows.append(self._start(self.fcm_sink_component()))
        rows.append(self._start(counterparty.component(self)))
        rows.append(self._start(self.emulator_component()))
        if starting_emulators:
            if self.import_state:
                kept = vault_state.restore(
                    self.emulator_hosts(), self.s.project_id, vault_state.export_file(self.s.state_dir)
                )
                self.progress(f"  the card vault comes back: {kept} documents")
            bank_state.record(self.state, bank_state.RUNNING)
        self.migrate()
        for comp in self.service_components():
            rows.append(self._start(comp))
        for name in self.stray_instances():  # scaled down since the last up
            self.progress(f"  stopping {name} (no longer configured) ...")
            self.sup.stop(name)
        stack_settings.record_replicas(self.s)
        stack_settings.record_scheduler(self.s)
        if self.s.scheduler:
            rows.append(self._start(scheduler.component(self)))
        rows.append(self._start(web.component(self)))
        rows.append(self._start(prometheus.component(self)))
        if rows[-1].state == "reused":
            # a running Prometheus loads the rule files as they are now (added or edited since)
            try:
                prometheus.reload(self.s)
                rows[-1].state = "reused, rules reloaded"
            except StartError as exc:
                self.progress(f"  warning: {exc}")
                rows[-1].state = "reused, rules NOT reloaded"
        return rows

    def migrate(self) -> None:
        """Bring documents written by earlier versions (a state brought back from its
        export) up to this one before the services start: ``bankctl migrate``
        (fjordbank/service_layer/migrations.py), idempotent, quick on a bank with no such
        documents."""
        self.progress("  migrating documents of earlier versions (bankctl migrate) ...")
        done = subprocess.run(
            [sys.executable, "-m", "bankctl", "migrate"],
            cwd=self.s.repo,
            env={**os.environ, **self.emulator_hosts()},
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
        if done.returncode != 0:
            raise StartError(
                f"bankctl migrate failed ({done.returncode}): {(done.stderr or done.stdout).strip()[-2000:]}"
            )
        self.progress(f"  {done.stdout.strip()}")

    def _start(self, comp: Component) -> Row:
        self.progress(f"  starting {comp.name} ...")
        pid, reused = self.sup.start(comp, dict(os.environ))
        return Row(comp.name, comp.address, pid, self.sup.log_file(comp.name), "reused" if reused else "started")

    def stray_instances(self) -> list[str]:
        """Service instances running from an earlier `up` with more replicas than now, and
        the scheduler when this stack's setting has it off (FJB_SCHEDULER=off)."""
        known = {c.name for c in self.components()}
        names = [p.stem for p in self.s.run_dir.glob("*.pid")]
        return sorted(
            n
            for n in names
            if n not in known and (service_of(n) != n or n == scheduler.NAME) and self.sup.pid(n) is not None
        )

    def jobs_by_hand(self) -> None:
        """Hold the scheduler's pause while this process runs (released at its exit; a
        process killed holds nothing): a bench measures the stack without the jobs (the
        hourly audit reads the whole ledger), a chaos run and the tests run them at their
        own instants. The scheduler keeps running, so the stack stays ready."""
        pauses = self.s.run_dir / scheduler.PAUSE_FILE
        scheduler.hold_pause(pauses)
        atexit.register(scheduler.release_pause, pauses, os.getpid())

    def down(self, keep: frozenset[str] = frozenset()) -> list[str]:
        """Stop every component but those in ``keep`` (an up that failed keeps what ran
        before it), and the instances of a service no longer asked for."""
        stopped = [n for n in self.stray_instances() if n not in keep and self.sup.stop(n)]
        for comp in reversed(self.components()):
            if comp.name in keep:
                continue
            began = time.time()
            vault_kept = comp.name != "emulators" or self.export_vault()
            if self.sup.stop(comp.name, comp.stop_timeout, comp.leader_signal):
                stopped.append(comp.name)
                if comp.name == "emulators":
                    bank_state.after_stop(self.state, began, vault_kept=vault_kept)
        return stopped

    def export_vault(self) -> bool:
        """Keep the card vault before the emulators stop (devstack/vault_state.py: their own
        export has the ``(default)`` database only); False when it could not be kept."""
        if self.sup.pid("emulators") is None:
            return True  # nothing running: after_stop finds no fresh export anyway
        try:
            kept = vault_state.export(
                self.emulator_hosts(), self.s.project_id, vault_state.export_file(self.s.state_dir)
            )
        except (OSError, GoogleAPIError) as exc:  # the stop goes on; the next start empties the bank whole
            self.progress(f"  warning: the card vault could not be kept ({type(exc).__name__}: {exc})")
            return False
        self.progress(f"  kept the card vault: {kept} documents")
        return True

    def status(self) -> list[Row]:
        rows = []
        for comp in self.components():
            pid = self.sup.pid(comp.name)
            if pid is not None:  # a running component's log stays bounded (Supervisor.bound_log)
                self.sup.bound_log(comp.name)
            if self.sup.died(comp.name):
                state = "died"
            else:
                state = "down" if pid is None else ("ready" if comp.ready() else "not ready")
            rows.append(Row(comp.name, comp.address, pid, self.sup.log_file(comp.name), state))
        return rows

    def deaths(self) -> list[str]:
        """What died without the stack stopping it, and what that lost; each noted in its log."""
        said = []
        for comp in self.components():
            if not self.sup.died(comp.name):
                continue
            self.sup.note_death(comp.name)
            lost = (
                "Firestore's and Auth's data since the last `make down` is lost (it lived in the "
                "emulators' memory); the next `make up` starts the whole bank empty, NATS included"
                if comp.name == "emulators"
                else "nothing of the bank's state is lost (it is in Firestore and NATS); `make up` starts it again"
            )
            said.append(f"{comp.name} died: it was not stopped by the stack (killed?). {lost}")
        return said

    def component(self, name: str) -> Component:
        for comp in self.components():
            if comp.name == name:
                return comp
        raise KeyError(name)

    def restart(self, name: str, env: dict[str, str] | None = None) -> Row:
        """Restart one component; ``env`` adds variables (e.g. a crash point in tests). It
        is stopped as `down` stops it (its own signal and time to stop). Not the emulators:
        they come back empty (the bank's state is exported and imported by `down` and `up`,
        with the vault and NATS's streams kept in step), and a restart of them alone started
        an empty Firestore against full streams (found in review, 2026-12-07)."""
        comp = self.component(name)
        if name == "emulators":
            raise StartError("the emulators restart with the whole stack: run down, then up (the bank's state is kept)")
        self.sup.stop(name, comp.stop_timeout, comp.leader_signal)
        comp.env.update(env or {})
        return self._start(comp)


def _write_private(path: Path, text: str) -> None:
    """``text`` in a file only its owner reads (fchmod: a file there already keeps its
    mode through O_CREAT)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
