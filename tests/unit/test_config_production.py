"""Production against local settings (fjordbank/config.py): production has no default in the
repository's dev folders, and the clearing service refuses to start there without its
channel to the clearing house, naming the setting; the local defaults still work."""

from __future__ import annotations

import dataclasses

import pytest

from fjordbank import config
from fjordbank.config import REPO_ROOT, load_settings
from fjordbank.errors import ConfigError

PRODUCTION = {"FJB_ENV": "production"}


@pytest.mark.parametrize(
    ("env", "production"),
    [
        ({}, False),
        ({"FJB_ENV": "local"}, False),
        ({"FJB_ENV": "production"}, True),
        ({"FJB_ENV": " Production "}, True),
        ({"K_SERVICE": "clearing"}, True),  # Cloud Run, Knative, Cloud Functions gen 2
        ({"K_SERVICE": "edge", "FUNCTIONS_EMULATOR": "true"}, False),
        ({"K_SERVICE": "clearing", "FJB_ENV": "local"}, False),  # said outright wins
    ],
)
def test_production_is_fjb_env_else_where_the_platform_runs_us(env, production):
    assert config.is_production(env) is production
    assert load_settings(env).production is production


def test_an_unknown_environment_is_a_start_up_error_naming_fjb_env():
    with pytest.raises(ConfigError, match="FJB_ENV must be production or local, not 'prod'"):
        load_settings({"FJB_ENV": "prod"})


def test_locally_the_clearing_channel_and_the_sanctions_list_have_their_defaults(tmp_path):
    s = load_settings({})
    assert s.clearing_channel() == str(REPO_ROOT / ".stack" / "clearing")
    assert s.sanctions_list == str(REPO_ROOT / "emulators" / "sanctions" / "eu-fsf-sample.xml")
    assert not s.sanctions_list_configured
    assert load_settings({"FJB_STATE_DIR": str(tmp_path)}).clearing_channel() == str(tmp_path / "clearing")


def test_production_without_the_clearing_channel_is_a_start_up_error_naming_the_setting():
    s = load_settings(PRODUCTION)
    assert s.clearing_dir == ""
    with pytest.raises(ConfigError, match=r"^FJB_CLEARING_DIR is not set: in production"):
        s.clearing_channel()


@pytest.mark.parametrize("value", ["true", "1", "yes", " TRUE "])
def test_synthetic_identity_numbers_in_production_are_a_start_up_error_naming_the_setting(value):
    """They name no one: production took them when told to (found in review)."""
    for env in (PRODUCTION, {"K_SERVICE": "edge"}):
        with pytest.raises(ConfigError, match=r"^FJB_ALLOW_SYNTHETIC_IDS is set: in production"):
            load_settings({**env, "FJB_ALLOW_SYNTHETIC_IDS": value})
    assert load_settings({"FJB_ALLOW_SYNTHETIC_IDS": value}).allow_synthetic_ids is True
    assert load_settings({**PRODUCTION, "FJB_ALLOW_SYNTHETIC_IDS": "false"}).allow_synthetic_ids is False


def test_production_takes_the_clearing_channel_it_is_given():
    assert load_settings({**PRODUCTION, "FJB_CLEARING_DIR": "/mnt/clearing"}).clearing_channel() == "/mnt/clearing"


def test_the_card_vault_is_a_database_of_its_own_in_production_and_locally():
    """The vault is the Firestore database only the card service reaches: the same default
    everywhere (terraform creates it; the emulator makes it on first use), never the
    database every service reads."""
    assert load_settings(PRODUCTION).vault_database == "card-vault"
    assert load_settings({}).vault_database == "card-vault"
    assert load_settings({**PRODUCTION, "FJB_VAULT_DATABASE": "vault-eu"}).vault_database == "vault-eu"


@pytest.mark.parametrize("name", ["(default)", "Card-Vault", "v", "card_vault", "-vault", "vault-", "x" * 64])
def test_a_vault_database_that_is_not_a_database_of_its_own_is_a_start_up_error(name):
    with pytest.raises(ConfigError, match=r"^FJB_VAULT_DATABASE must be the id of a Firestore database"):
        load_settings({**PRODUCTION, "FJB_VAULT_DATABASE": name})


def test_no_production_setting_defaults_into_the_repositorys_dev_folders():
    s = load_settings({**PRODUCTION, "FJB_STATE_DIR": "/tmp/fjordbank"})
    dev = (REPO_ROOT / "emulators", REPO_ROOT / ".stack")
    paths = {f.name: getattr(s, f.name) for f in dataclasses.fields(s) if isinstance(getattr(s, f.name), str)}
    assert not {name: v for name, v in paths.items() if v and any(v.startswith(str(d)) for d in dev)}
    assert s.sanctions_list == "" and not s.sanctions_list_configured
    # the screening policy's default is config/, which the services' image ships (run_services/Dockerfile)
    assert s.screening_policy == str(REPO_ROOT / "config" / "screening.json")


def test_the_clearing_service_refuses_to_start_in_production_without_its_channel_or_list(monkeypatch, tmp_path):
    import run_services.clearing as clearing

    for name in ("FJB_CLEARING_DIR", "FJB_SANCTIONS_LIST", "FJB_FAULTS_FILE", "FIRESTORE_EMULATOR_HOST"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("FJB_ENV", "production")
    started = []
    monkeypatch.setattr(clearing, "ConsumerService", lambda **kw: started.append(kw))
    with pytest.raises(ConfigError, match="FJB_CLEARING_DIR"):
        clearing.main()
    assert started == []  # refused before anything connects
    monkeypatch.setenv("FJB_CLEARING_DIR", str(tmp_path / "clearing"))
    with pytest.raises(ConfigError, match="FJB_SANCTIONS_LIST"):
        clearing.main()  # and without the real sanctions list
    assert started == []


def test_the_clearing_service_runs_locally_with_no_simulator_in_it(tmp_path, monkeypatch):
    import run_services.clearing as clearing

    monkeypatch.setenv("FIRESTORE_EMULATOR_HOST", "127.0.0.1:9")  # a client that is never called
    monkeypatch.delenv("FJB_FAULTS_FILE", raising=False)
    clearing.faults.for_service.cache_clear()
    try:
        handler, background = clearing.build(load_settings({"FJB_STATE_DIR": str(tmp_path)}))
    finally:
        clearing.faults.for_service.cache_clear()
    assert handler.dirs.outbox == tmp_path / "clearing" / "outbox" and handler.dirs.inbox.is_dir()
    assert background == [
        handler.read_answers,
        handler.release_held,
        handler.clearing.deliver_pending,
        handler.incoming.deliver_pending,
    ]
    # the payers are screened against the repository's sample list locally, persons and enterprises
    assert handler.incoming.sanctions().screen_counterparty("Nordkapp Phantom Trading AS").outcome == "review"
    assert handler.dirs.incoming_dir.is_dir()  # where the clearing house delivers payments from other banks
