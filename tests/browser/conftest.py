"""Browser tests: the reference web app in headless Chromium, against the real stack.

Why Python's `playwright` (PyPI) rather than playwright-core run from npm: it runs inside
this pytest session, so the session fixtures that start the stack (tests/conftest.py), the
stack's own helpers (the card processor simulator, the vault for a card's number) and the
unique-id conventions apply to the browser tests as to every other test. It drives Debian's
chromium through `executable_path`; no test tool downloads a browser (`playwright install`
is never run). Playwright gives every browser a fresh, empty --user-data-dir of its own.

Screenshots of the main screens are kept in artifacts/screenshots/ (git ignores artifacts/),
and a failing test's last screen in artifacts/screenshots/failures/.
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import pytest

from devstack import web
from tests.support.bank import random_birth_date
from tests.support.clients import unique

REPO = Path(__file__).resolve().parents[2]
SHOTS = REPO / "artifacts" / "screenshots"
CHROMIUM = os.environ.get("FJB_CHROMIUM", "/usr/bin/chromium")
# Debian's chromium as root needs --no-sandbox; a machine without internet access needs the
# background services off, or Chromium keeps trying to reach Google's hosts.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-gpu",
    "--disable-dev-shm-usage",
]
TIMEOUT_MS = 20_000  # one step of the UI (a click, a screen)
PIPELINE_MS = 120_000  # a payment through the whole pipeline (clearing runs in cycles)
PASSWORD = "correct horse battery"  # every test user's (tests.support.clients.PASSWORD)


def pytest_collection_modifyitems(session, config, items):
    """The personal-data sweep (tests/e2e/test_z_personal_data_sweep.py) searches all that
    every other test stored and logged: it stays last, after the browser tests too."""
    items.sort(key=lambda item: item.path.name.startswith("test_z_"))


_REPORT = pytest.StashKey()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    """Remember the test's outcome, so the page fixture keeps the last screen of a failure."""
    report = yield
    if report.when == "call":
        item.stash[_REPORT] = report
    return report


@pytest.fixture(scope="session", autouse=True)
def _fresh_failures():
    """The failures folder shows this run's failures only."""
    shutil.rmtree(SHOTS / "failures", ignore_errors=True)


@pytest.fixture(scope="module")
def chromium():
    """One headless Chromium per test module. Not per session: Playwright's sync API keeps
    an event loop running in this thread while it is open, and the tests after the browser
    tests (the personal-data sweep) run asyncio code of their own."""
    if not (shutil.which(CHROMIUM) or os.access(CHROMIUM, os.X_OK)):
        message = f"no Chromium at {CHROMIUM}: `make bootstrap` installs Debian's chromium (or set FJB_CHROMIUM)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture(scope="session")
def app_url(stack) -> str:
    return web.url(stack.s)


@pytest.fixture
def page(chromium, app_url, request):
    """A new browser profile (its own IndexedDB: its own device key) on the app."""
    from playwright.sync_api import expect

    expect.set_options(timeout=TIMEOUT_MS)
    context = chromium.new_context(
        viewport={"width": 1000, "height": 900}, base_url=app_url, locale="nb-NO", timezone_id="Europe/Oslo"
    )
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    problems: list[str] = []
    page.on("pageerror", lambda exc: problems.append(f"page error: {exc}"))
    page.on("console", lambda msg: problems.append(f"console {msg.type}: {msg.text}"))
    page.goto("/")
    try:
        yield page
    finally:
        report = request.node.stash.get(_REPORT, None)
        if report is not None and report.failed:
            (SHOTS / "failures").mkdir(parents=True, exist_ok=True)
            try:
                page.screenshot(path=SHOTS / "failures" / f"{request.node.name}.png", full_page=True)
                print("the screen:", page.locator("main").inner_text(timeout=2_000), sep="\n")
            except Exception as exc:  # a crashed page: what the console said is still worth seeing
                print(f"no screenshot: {exc}")
            print("the browser's console and errors:", *problems[-30:], sep="\n  ")
        context.close()


def shot(page, name: str) -> Path:
    """Keep a screenshot of the screen as a test artifact."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    path = SHOTS / f"{name}.png"
    page.screenshot(path=path, full_page=True)
    return path


def nok(text: str) -> str:
    """The app's way of showing an amount: '25 000,00 kr' with no-break spaces."""
    return text.replace(" ", "\u00a0")


def sign_up(page) -> str:
    email = f"{unique('web')}@example.test"
    page.get_by_test_id("email").fill(email)
    page.get_by_test_id("password").fill(PASSWORD)
    page.get_by_test_id("sign-up").click()
    return email


def apply(page, name: str = "Ingrid Fjeldstad", screenshot: str | None = None) -> None:
    """Fill in the application (a synthetic test identity the app makes) and send it."""
    form = page.get_by_test_id("onboarding")
    form.wait_for()
    page.get_by_test_id("apply-name").fill(name)
    page.get_by_test_id("apply-dateOfBirth").fill(random_birth_date().isoformat())
    page.get_by_test_id("synthetic-id").click()
    page.get_by_test_id("apply-street").fill("Storgata 1")
    page.get_by_test_id("apply-postalCode").fill("0155")
    page.get_by_test_id("apply-city").fill("Oslo")
    page.get_by_test_id("apply-phone").fill("912 34 567")
    if screenshot:
        shot(page, screenshot)
    page.get_by_test_id("apply-submit").click()


def become_customer(page) -> str:
    """Sign up, apply, and receive the demo salary (25 000 kr); returns the account number."""
    from playwright.sync_api import expect

    sign_up(page)
    apply(page)
    account = page.get_by_test_id("account").first
    expect(account).to_be_visible()
    account.get_by_test_id("demo-salary").click()
    expect(account.get_by_test_id("available")).to_have_text(nok("25 000,00 kr"), timeout=PIPELINE_MS)
    return account.get_attribute("data-account")


def pay(page, to: str, amount: str, *, message: str | None = None, kid: str | None = None) -> str:
    """Fill in and confirm a payment; returns the request id from the status screen's URL."""
    page.get_by_test_id("nav-pay").click()
    page.get_by_test_id("pay-to").fill(to)
    page.get_by_test_id("pay-amount").fill(amount)
    if message:
        page.get_by_test_id("pay-message").fill(message)
    if kid:
        page.get_by_test_id("pay-kid").fill(kid)
    page.get_by_test_id("pay-review-button").click()
    page.get_by_test_id("pay-confirm").click()
    page.wait_for_url(re.compile(r"#/payment/"))
    return page.url.rsplit("/", 1)[-1]
