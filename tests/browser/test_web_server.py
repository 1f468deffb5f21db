"""The web app's local server (devstack/web.py): what it gives the browser, and what not."""

from __future__ import annotations

import pytest
import requests

from fjordbank.adapters.app_check import verify_debug_token
from tests.support.clients import new_account_number

pytestmark = pytest.mark.stack


def test_the_token_endpoint_gives_app_check_tokens_but_never_the_secret(stack, app_url):
    resp = requests.post(f"{app_url}/dev/app-check-token", timeout=10)
    assert resp.status_code == 200
    token = resp.json()["token"]
    secret = stack.app_check_debug_secret()
    assert verify_debug_token(token, secret=secret, project_id=stack.s.project_id) is not None
    served = [requests.get(f"{app_url}/{name}", timeout=10).text for name in ("", "app.js", "config.json")]
    assert all(secret not in text for text in served)
    config = requests.get(f"{app_url}/config.json", timeout=10).json()
    assert config["projectId"] == stack.s.project_id
    assert config["emulators"]["functions"] == stack.s.emulator_ports["functions"]


def test_another_site_gets_no_token_and_no_salary(app_url):
    for path in ("/dev/app-check-token", "/dev/salary"):
        resp = requests.post(f"{app_url}{path}", headers={"Origin": "http://evil.example"}, json={}, timeout=10)
        assert resp.status_code == 403, path


def test_only_the_built_app_is_served(app_url):
    for path in ("/../README.md", "/%2e%2e/README.md", "/.source-sha256", "/nothing-here.js"):
        assert requests.get(f"{app_url}{path}", timeout=10).status_code == 404, path
    index = requests.get(f"{app_url}/", timeout=10)
    assert index.status_code == 200 and 'src="/app.js"' in index.text


def test_the_app_is_never_shown_in_a_frame(app_url):
    """The pay form fills itself from its link: another local page must not frame it."""
    for path in ("/", "/app.js"):
        headers = requests.get(f"{app_url}{path}", timeout=10).headers
        assert headers["X-Frame-Options"] == "DENY", path
        assert headers["Content-Security-Policy"] == "frame-ancestors 'none'", path


def test_the_demo_salary_goes_only_to_the_signed_in_users_own_account(auth, ledger_admin, app_url):
    owner = auth.sign_up()
    other = auth.sign_up()
    account = ledger_admin.open_funded_account(owner["uid"], new_account_number(), 0)
    url = f"{app_url}/dev/salary"
    assert requests.post(url, json={"accountId": account}, timeout=10).status_code == 400  # not signed in
    as_other = {"Authorization": f"Bearer {other['id_token']}"}
    assert requests.post(url, json={"accountId": account}, headers=as_other, timeout=10).status_code == 403
    assert requests.post(url, data=b"[", headers=as_other, timeout=10).status_code == 400
