"""Configuration, read once at start from the environment into typed objects.

Defaults point at the local stack (`make up`), so a fresh checkout runs without any
variable set. Nothing else in the package reads ``os.environ``.

Production (FJB_ENV) gets no default that lies in the repository's dev folders: a setting
it must be given and was not is a start-up error naming it, never the local stack's file or
folder. The clearing channel (FJB_CLEARING_DIR, ``Settings.clearing_channel``), the
sanctions list (FJB_SANCTIONS_LIST) have no production default. The screening policy's default,
config/screening.json, is production's too: the services' image ships config/.

| variable | meaning | default |
|---|---|---|
| FJB_ENV | production or local (above); the services' image sets production | production if K_SERVICE is set |
| FJB_PROJECT_ID (or GCLOUD_PROJECT) | Firebase project | demo-fjordbank |
| FJB_NATS_URLS | comma-separated tls:// URLs of the cluster | the three local nodes |
| FJB_NATS_USER / FJB_NATS_PASSWORD | this component's NATS identity and secret | (none) |
| FJB_NATS_CA / FJB_NATS_CERT / FJB_NATS_KEY | CA bundle, client certificate and key (paths) | .stack/pki/... |
| FJB_HTTP_PORT | health/metrics port of a run_service | 0 (none) |
| FJB_HTTP_HOST | the address that port listens on (0.0.0.0 in a container, for probes and scrapes) | 127.0.0.1 |
| FJB_CRASH_POINT | test-only: kill -9 the process at this named point | (none) |
| FJB_LOG_LEVEL | log level | INFO |
| FJB_BANK_REGS | comma-separated bank registration numbers (first 4 digits) that are ours | 9710 |
| FJB_SCREENING_POLICY | JSON file with the screening limits and blocked accounts | config/screening.json |
| FJB_CLEARING_DIR | channel to the clearing house: pain.001 to outbox/, pain.002 from inbox/ | local: .stack/clearing |
| FJB_BIC | this bank's BIC in payment files | FJORNOKK |
| FJB_FCM_SINK_URL | FCM-compatible sink for local push (empty = real FCM) | (none) |
| FJB_SANCTIONS_LIST | sanctions list in EU FSF XML (see README; relative: to the package root) | local: the sample |
| FJB_ALLOW_SYNTHETIC_IDS | accept Skatteetaten's synthetic test identity numbers (local only) | false |
| FJB_CARD_BIN | the bank's card BIN (6-8 digits) | 499210 |
| FJB_CARD_API_PORT | the card service's port for the card processor (0: none) | 0 |
| FJB_CARD_PROCESSOR_SECRET | shared secret that signs the processor's requests | (none) |
| FJB_APP_CHECK_DEBUG_SECRET | the emulator's App Check debug path (see adapters/app_check) | (none) |
| FJB_SCA_THRESHOLD | øre above which a payment needs a device signature | 500000 |
| FJB_VAULT_DATABASE | the card vault's Firestore database (its own: never `(default)`) | card-vault |
| FJB_VAULT_KEY / FJB_CVV_KEY | keyrings: a base64 32-byte key, or id:key,... (domain/keyring.py) | (none) |
| FJB_TRACE_EXPORTER | spans to: file (FJB_TRACE_DIR), gcp (Cloud Trace) or none | gcp if K_SERVICE is set, else file |
| FJB_TRACE_DIR | the span files of the file exporter (what `bankctl trace` reads) | .stack/traces |
| FJB_TRACE_SAMPLE_RATIO | share of traces recorded, 0 to 1, decided per trace id | 1 |
| FJB_OPS_SWEEP_SECONDS | the notifier's ops sweep period (fjordbank/runtime/ops_sweep.py); 0: no sweep | 30 |
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from fjordbank.errors import ConfigError

DEFAULT_PROJECT_ID = "demo-fjordbank"
REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_STATE_DIR = REPO_ROOT / ".stack"
DEFAULT_NATS_URLS = ("tls://127.0.0.1:4222", "tls://127.0.0.1:4223", "tls://127.0.0.1:4224")
PRODUCTION, LOCAL = "production", "local"  # FJB_ENV


@dataclass(frozen=True)
class NatsSettings:
    urls: tuple[str, ...]
    user: str
    password: str
    ca_file: str
    cert_file: str
    key_file: str

    @property
    def inbox_prefix(self) -> str:
        return f"_INBOX_{self.user}"


@dataclass(frozen=True)
class Settings:
    production: bool  # FJB_ENV: no defaults in the repository's dev folders
    project_id: str
    nats: NatsSettings
    http_port: int
    http_host: str
    crash_point: str | None
    log_level: str
    bank_regs: tuple[str, ...]
    screening_policy: str
    clearing_dir: str  # "" in production when FJB_CLEARING_DIR is not set
    bic: str
    fcm_sink_url: str | None
    sanctions_list: str  # "" in production when FJB_SANCTIONS_LIST is not set
    sanctions_list_configured: bool  # False: the fictional sample (locally) or nothing (production)
    allow_synthetic_ids: bool
    card_bin: str
    card_api_port: int
    card_processor_secret: str
    vault_database: str
    vault_key: str
    cvv_key: str
    app_check_debug_secret: str
    functions_emulator: bool
    sca_threshold: int
    trace_exporter: str  # file | gcp | none (fjordbank.runtime.tracing)
    trace_dir: str
    trace_sample_ratio: float
    ops_sweep_seconds: int

    def clearing_channel(self) -> str:
        """The folder of the file exchange with the clearing house (pain.001 out to its
        outbox/, pain.002 in from its inbox/). Production has no default: without it the
        clearing service would write payments where no clearing house reads them, so it
        refuses to start instead (ConfigError)."""
        if not self.clearing_dir:
            raise ConfigError(
                "FJB_CLEARING_DIR is not set: in production (FJB_ENV=production) the clearing service needs "
                "the folder of its channel to the clearing house (pain.001 files out to its outbox/, pain.002 "
                "answers in from its inbox/, exchanged by the transfer service); it has no default there"
            )
        return self.clearing_dir

    def screening_list(self) -> str:
        """The sanctions list a service screens payments against. Production has no
        default (the repository's is a fictional sample that matches no real name): a
        service that screens refuses to start without the real list (ConfigError)."""
        if not self.sanctions_list_configured and self.production:
            raise ConfigError(
                "FJB_SANCTIONS_LIST is not set: in production (FJB_ENV=production) payments are screened "
                "against the EU consolidated sanctions list, and the clearing and screening services do not start "
                "without it"
            )
        return self.sanctions_list


def is_production(env: Mapping[str, str]) -> bool:
    """FJB_ENV, else production wherever the platform runs us (K_SERVICE: Cloud Run,
    Knative, Cloud Functions gen 2) outside the Functions emulator. Raises ConfigError for
    any other FJB_ENV."""
    name = env.get("FJB_ENV", "").strip().lower()
    if not name:
        return bool(env.get("K_SERVICE")) and env.get("FUNCTIONS_EMULATOR") != "true"
    if name not in (PRODUCTION, LOCAL):
        raise ConfigError(f"FJB_ENV must be {PRODUCTION} or {LOCAL}, not {name!r}")
    return name == PRODUCTION


def _local_default(production: bool, path: Path) -> str:
    """A default in the repository or the local stack's state: "" (none) in production."""
    return "" if production else str(path)


def _pki_default(name: str, env: Mapping[str, str]) -> str:
    state = Path(env.get("FJB_STATE_DIR", str(DEFAULT_STATE_DIR)))
    return str(state / "pki" / name)


def load_settings(env: Mapping[str, str] | None = None, *, identity: str | None = None) -> Settings:
    """Build the settings of one component. ``identity`` names its NATS user when the
    environment does not (FJB_NATS_USER wins)."""
    env = os.environ if env is None else env
    user = env.get("FJB_NATS_USER") or identity or ""
    urls = tuple(u.strip() for u in env.get("FJB_NATS_URLS", ",".join(DEFAULT_NATS_URLS)).split(",") if u.strip())
    if not urls:
        raise ConfigError("FJB_NATS_URLS names no server")
    try:
        http_port = int(env.get("FJB_HTTP_PORT", "0"))
    except ValueError as exc:
        raise ConfigError(f"FJB_HTTP_PORT is not a port number: {env.get('FJB_HTTP_PORT')!r}") from exc
    state_dir = Path(env.get("FJB_STATE_DIR", str(DEFAULT_STATE_DIR)))
    production = is_production(env)
    nats = NatsSettings(
        urls=urls,
        user=user,
        password=env.get("FJB_NATS_PASSWORD", ""),
        ca_file=env.get("FJB_NATS_CA") or _pki_default("ca.pem", env),
        cert_file=env.get("FJB_NATS_CERT") or _pki_default(f"client-{user}.pem", env),
        key_file=env.get("FJB_NATS_KEY") or _pki_default(f"client-{user}-key.pem", env),
    )
    return Settings(
        production=production,
        project_id=env.get("FJB_PROJECT_ID") or env.get("GCLOUD_PROJECT") or DEFAULT_PROJECT_ID,
        nats=nats,
        http_port=http_port,
        http_host=env.get("FJB_HTTP_HOST", "127.0.0.1"),
        crash_point=env.get("FJB_CRASH_POINT") or None,
        log_level=env.get("FJB_LOG_LEVEL", "INFO").upper(),
        bank_regs=tuple(r.strip() for r in env.get("FJB_BANK_REGS", "9710").split(",") if r.strip()),
        screening_policy=env.get("FJB_SCREENING_POLICY", str(REPO_ROOT / "config" / "screening.json")),
        clearing_dir=env.get("FJB_CLEARING_DIR") or _local_default(production, state_dir / "clearing"),
        bic=env.get("FJB_BIC", "FJORNOKK"),
        fcm_sink_url=env.get("FJB_FCM_SINK_URL") or None,
        sanctions_list=str(REPO_ROOT / env["FJB_SANCTIONS_LIST"])  # a relative path: the package's root
        if env.get("FJB_SANCTIONS_LIST")
        else _local_default(production, REPO_ROOT / "emulators" / "sanctions" / "eu-fsf-sample.xml"),
        sanctions_list_configured=bool(env.get("FJB_SANCTIONS_LIST")),
        allow_synthetic_ids=_synthetic_ids(env, production),
        card_bin=env.get("FJB_CARD_BIN", "499210"),
        card_api_port=_int(env, "FJB_CARD_API_PORT", 0),
        card_processor_secret=env.get("FJB_CARD_PROCESSOR_SECRET", ""),
        vault_database=_vault_database(env),
        vault_key=env.get("FJB_VAULT_KEY", ""),
        cvv_key=env.get("FJB_CVV_KEY", ""),
        app_check_debug_secret=env.get("FJB_APP_CHECK_DEBUG_SECRET", ""),
        functions_emulator=env.get("FUNCTIONS_EMULATOR") == "true",
        sca_threshold=_int(env, "FJB_SCA_THRESHOLD", 500_000),
        trace_exporter=_trace_exporter(env),
        trace_dir=env.get("FJB_TRACE_DIR") or str(state_dir / "traces"),
        trace_sample_ratio=_ratio(env, "FJB_TRACE_SAMPLE_RATIO", 1.0),
        ops_sweep_seconds=_int(env, "FJB_OPS_SWEEP_SECONDS", 30),
    )


def _synthetic_ids(env: Mapping[str, str], production: bool) -> bool:
    """Whether onboarding takes Skatteetaten's synthetic test numbers (month + 80): the
    local stack's. They name no one, so in production an applicant could open an account
    as nobody the population register knows; a start-up error there (found in review),
    as a missing sanctions list is, never a bank quietly taking them."""
    allowed = env.get("FJB_ALLOW_SYNTHETIC_IDS", "").strip().lower() in ("1", "true", "yes")
    if allowed and production:
        raise ConfigError(
            "FJB_ALLOW_SYNTHETIC_IDS is set: in production (FJB_ENV=production) onboarding takes real identity "
            "numbers only; synthetic test numbers are for the local stack"
        )
    return allowed


def _int(env: Mapping[str, str], name: str, default: int) -> int:
    try:
        return int(env.get(name, str(default)))
    except ValueError as exc:
        raise ConfigError(f"{name} is not a number: {env.get(name)!r}") from exc


# A Firestore database id: 4 to 63 lowercase letters, digits and hyphens, starting with a
# letter and not ending with a hyphen.
_DATABASE_ID = re.compile(r"[a-z][a-z0-9-]{2,61}[a-z0-9]")


def _vault_database(env: Mapping[str, str]) -> str:
    """The card vault's database: a database of its own, which only the card service's
    identity reaches (terraform/modules/card_vault). ``(default)`` is refused: every
    service's identity reads that one, and the sealed card numbers would sit beside
    everything else."""
    name = env.get("FJB_VAULT_DATABASE", "").strip() or "card-vault"
    if not _DATABASE_ID.fullmatch(name):
        raise ConfigError(
            f"FJB_VAULT_DATABASE must be the id of a Firestore database of the vault's own "
            f"(4-63 lowercase letters, digits and hyphens), not {name!r}"
        )
    return name


def _trace_exporter(env: Mapping[str, str]) -> str:
    kind = env.get("FJB_TRACE_EXPORTER", "").strip().lower()
    if not kind:  # K_SERVICE: set by Cloud Run, Knative and Cloud Functions (gen 2)
        in_cloud = bool(env.get("K_SERVICE")) and env.get("FUNCTIONS_EMULATOR") != "true"
        return "gcp" if in_cloud else "file"
    if kind not in ("file", "gcp", "none"):
        raise ConfigError(f"FJB_TRACE_EXPORTER must be file, gcp or none, not {kind!r}")
    return kind


def _ratio(env: Mapping[str, str], name: str, default: float) -> float:
    text = env.get(name)
    if text is None or not text.strip():
        return default
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0.0 <= value <= 1.0:
        raise ConfigError(f"{name} is not a number from 0 to 1: {text!r}")
    return value


VPC_EGRESS = ("PRIVATE_RANGES_ONLY", "ALL_TRAFFIC")


@dataclass(frozen=True)
class FunctionsDeploy:
    """The Firebase functions' runtime identity and network path (None: the emulator's)."""

    service_account: str | None = None
    vpc_connector: str | None = None
    vpc_egress: str | None = None


def functions_deploy_options(env: Mapping[str, str] | None = None) -> FunctionsDeploy:
    """For set_global_options, from functions/.env.PROJECT, which scripts/functions_env.py
    writes from Terraform's outputs before `firebase deploy` (the CLI loads it while it reads
    main.py). In the emulator there is neither: all None. Outside it a missing value is a
    start-up error, never a silent default: without the connector the functions cannot
    reach NATS, and the default service account holds none of the edge's secrets."""
    env = os.environ if env is None else env
    if env.get("FUNCTIONS_EMULATOR") == "true":
        return FunctionsDeploy()
    missing = [v for v in ("FJB_FUNCTIONS_SERVICE_ACCOUNT", "FJB_VPC_CONNECTOR") if not env.get(v)]
    if missing:
        raise ConfigError(
            f"{', '.join(missing)} not set: write functions/.env.PROJECT with scripts/functions_env.py "
            "from `terraform output -json` before deploying"
        )
    egress = env.get("FJB_VPC_EGRESS", VPC_EGRESS[0])
    if egress not in VPC_EGRESS:
        raise ConfigError(f"FJB_VPC_EGRESS must be one of {', '.join(VPC_EGRESS)}, not {egress!r}")
    return FunctionsDeploy(env["FJB_FUNCTIONS_SERVICE_ACCOUNT"], env["FJB_VPC_CONNECTOR"], egress)
