"""The NATS accounts (and the Knative services) are generated from fjordbank/topology.py, the
source the local stack uses: the checked-in files must equal what `python -m k8s.render`
makes now, the users' permissions must equal Identity.permissions(), and no password is
ever in the repository (only references to bcrypt hashes in a Secret)."""

from __future__ import annotations

import dataclasses
import json
import re
import subprocess

import yaml

from fjordbank import topology
from k8s import chart, render
from tests.deploy import k8s_support as ks

BCRYPT = re.compile(r'^"\$2[aby]\$(\d\d)\$[./A-Za-z0-9]{53}"$')


def test_generated_files_equal_the_topology():
    assert render.stale() == [], "run `python -m k8s.render` and commit the result"


def test_render_check_cli_agrees():
    proc = subprocess.run(
        [str(ks.REPO / ".venv/bin/python"), "-m", "k8s.render", "--check"], cwd=ks.REPO, capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr


def test_a_permission_that_differs_from_the_topology_is_drift(monkeypatch):
    """Screening may suddenly publish payments.completed: the checked-in accounts are stale."""
    screening = topology.identity("screening")
    widened = dataclasses.replace(screening, publishes=(*screening.publishes, topology.SUBJECT_PAYMENT_COMPLETED))
    monkeypatch.setattr(topology, "IDENTITIES", tuple(widened if i is screening else i for i in topology.IDENTITIES))
    assert "k8s/nats/accounts.generated.yaml" in render.stale()


def test_a_new_consumer_service_is_drift(monkeypatch):
    monkeypatch.setattr(topology, "SERVICES", (*topology.SERVICES, "fraud"))
    monkeypatch.setattr(topology, "IDENTITIES", (*topology.IDENTITIES, topology.Identity(name="fraud")))
    stale = render.stale()
    assert "k8s/knative/fraud.yaml" in stale and "k8s/knative/kustomization.yaml" in stale


def test_users_and_permissions_equal_the_topology():
    conf = chart.nats_conf_dict(ks.values("prod"))
    bank = conf["accounts"][render.BANK_ACCOUNT]
    assert bank["jetstream"] == "enabled"
    users = {u["user"]: u for u in bank["users"]}
    assert list(users) == [i.name for i in topology.IDENTITIES]
    for ident in topology.IDENTITIES:
        perms = ident.permissions()
        got = users[ident.name]["permissions"]
        assert got == {"publish": {"allow": perms["publish"]}, "subscribe": {"allow": perms["subscribe"]}}, ident.name
    assert conf["system_account"] == render.SYSTEM_ACCOUNT
    assert [u["user"] for u in conf["accounts"][render.SYSTEM_ACCOUNT]["users"]] == [render.SYSTEM_USER]


def test_passwords_are_references_to_bcrypt_hashes_in_a_secret():
    vals = ks.values("prod")
    conf = chart.nats_conf_dict(vals)
    users = [*conf["accounts"]["BANK"]["users"], *conf["accounts"]["SYS"]["users"]]
    env = vals["container"]["env"]
    for user in users:
        var = render.env_var(user["user"])
        assert user["password"] == f"<< ${var} >>", f"{user['user']}: the password must be the variable {var}"
        ref = env[var]["valueFrom"]["secretKeyRef"]
        assert ref == {"name": render.BCRYPT_SECRET, "key": user["user"]}
    # and it renders as a bare NATS variable, not a string
    assert f'"password": ${render.env_var("edge")},' in chart.nats_conf(vals)


def test_no_password_or_hash_is_in_any_k8s_file():
    for path in sorted(ks.K8S.rglob("*.yaml")):
        text = path.read_text()
        assert not re.search(r"\$2[aby]\$\d\d\$", text), (
            f"{path}: a bcrypt hash belongs in the Secret, not the repository"
        )
        for doc in yaml.safe_load_all(text):
            for key, value in _walk(doc):
                if "password" in key.lower() and isinstance(value, str) and value:
                    assert value.startswith("<< $"), f"{path}: {key} has a literal value"


def _walk(node, key=""):
    if isinstance(node, dict):
        for k, v in node.items():
            yield str(k), v
            yield from _walk(v, str(k))
    elif isinstance(node, list):
        for v in node:
            yield from _walk(v, key)


def test_bcrypt_secret_hashes_every_user_quoted(tmp_path):
    """`python -m k8s.render bcrypt-secret` (in the deploy tools' venv, which has bcrypt)."""
    ks.require_tools(ks.DEPLOY_PYTHON)
    passwords = {name: f"throwaway-{name}-password" for name in render.nats_users()}
    for name, pw in passwords.items():
        (tmp_path / name).write_text(pw + "\n")
    proc = subprocess.run(
        [str(ks.DEPLOY_PYTHON), "-m", "k8s.render", "bcrypt-secret", "--passwords-dir", str(tmp_path), "--cost", "11"],
        cwd=ks.REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    secret = yaml.safe_load(proc.stdout)
    assert secret["metadata"] == {"name": render.BCRYPT_SECRET, "namespace": chart.NAMESPACE}
    assert set(secret["stringData"]) == set(passwords)
    for name, value in secret["stringData"].items():
        match = BCRYPT.match(value)
        assert match and int(match.group(1)) >= render.MIN_BCRYPT_COST, f"{name}: {value!r}"
    check = (
        "import bcrypt, json, sys\n"
        "pairs = json.load(sys.stdin)\n"
        "print(json.dumps([n for n, (pw, h) in pairs.items() if not bcrypt.checkpw(pw.encode(), h.encode())]))\n"
    )
    # one user is enough here (each check costs as much as a hash): the live test in
    # test_nats_config.py logs in with such hashes
    pairs = {name: [passwords[name], secret["stringData"][name].strip('"')] for name in ("edge",)}
    verified = subprocess.run(
        [str(ks.DEPLOY_PYTHON), "-c", check], input=json.dumps(pairs), capture_output=True, text=True, timeout=60
    )
    assert json.loads(verified.stdout) == [], "hashes that do not match their password"


def test_bcrypt_secret_refuses_a_missing_password_and_a_weak_cost(tmp_path):
    ks.require_tools(ks.DEPLOY_PYTHON)
    (tmp_path / "edge").write_text("only-one")
    base = [str(ks.DEPLOY_PYTHON), "-m", "k8s.render", "bcrypt-secret", "--passwords-dir", str(tmp_path)]
    missing = subprocess.run(base, cwd=ks.REPO, capture_output=True, text=True, timeout=60)
    assert missing.returncode != 0 and "no password for" in missing.stderr
    weak = subprocess.run([*base, "--cost", "4"], cwd=ks.REPO, capture_output=True, text=True, timeout=60)
    assert weak.returncode != 0 and "below" in weak.stderr
