"""The screening policy the production image ships (config/screening.json, the image's
FJB_SCREENING_POLICY) blocks no account the test suite or the local stack uses: a valid
MOD11 number written into a test could be a real customer's account somewhere, and a bank
must not refuse payments to it. The test suite's blocked account lives in the local stack's
policy (config/screening-local.json), which devstack gives the screening service."""

from __future__ import annotations

import json
import re
from pathlib import Path
from types import SimpleNamespace

from devstack import stack
from fjordbank.domain.screening import ScreeningPolicy
from tests.deploy.conftest import REPO
from tests.deploy.test_dockerfile import DOCKERFILE

SHIPPED = REPO / "config" / "screening.json"
LOCAL = REPO / "config" / stack.LOCAL_SCREENING_POLICY
# where test and development account numbers are written down
TEST_CODE = ("tests", "devstack", "bench", "simulators", "clientkit", "bankctl", "emulators", "web")
ACCOUNT_LITERAL = re.compile(r"""["'](\d{4}[ .]?\d{2}[ .]?\d{5})["']""")


def policy(path: Path) -> ScreeningPolicy:
    return ScreeningPolicy.from_dict(json.loads(path.read_text()))


def numbers_in_test_code() -> set[str]:
    """Every account number written as a literal in the test and development code."""
    found = set()
    for top in TEST_CODE:
        for path in (REPO / top).rglob("*"):
            if path.suffix in (".py", ".json", ".yaml", ".js", ".ts", ".html") and "node_modules" not in path.parts:
                found |= {re.sub(r"[ .]", "", m) for m in ACCOUNT_LITERAL.findall(path.read_text(errors="replace"))}
    return found | set(policy(LOCAL).blocked_accounts)


def blocked_test_numbers(shipped: ScreeningPolicy) -> set[str]:
    return set(shipped.blocked_accounts) & numbers_in_test_code()


def test_the_image_uses_the_shipped_policy():
    assert "FJB_SCREENING_POLICY=/app/config/screening.json" in DOCKERFILE.read_text()


def test_the_shipped_policy_blocks_no_test_number():
    assert "12345678903" in numbers_in_test_code()  # the scan finds the suite's numbers
    assert blocked_test_numbers(policy(SHIPPED)) == set()


def test_a_test_number_in_the_shipped_policy_is_reported():
    shipped = policy(SHIPPED)
    broken = ScreeningPolicy(**{**vars(shipped), "blocked_accounts": frozenset({"12345678903"})})
    assert blocked_test_numbers(broken) == {"12345678903"}


def test_the_local_stack_screens_with_the_test_policy():
    """tests/integration/test_payment_pipeline.py pays 12345678903 and expects it refused."""
    assert "12345678903" in policy(LOCAL).blocked_accounts
    fake = SimpleNamespace(s=SimpleNamespace(repo=REPO))
    env = stack.Stack.service_env(fake, "screening")  # type: ignore[arg-type]
    assert Path(env["FJB_SCREENING_POLICY"]) == LOCAL
    assert "FJB_SCREENING_POLICY" not in stack.Stack.service_env(fake, "ledger")  # type: ignore[arg-type]


def test_the_local_policy_has_productions_limits():
    shipped, local = policy(SHIPPED), policy(LOCAL)
    assert {**vars(local), "blocked_accounts": None} == {**vars(shipped), "blocked_accounts": None}
