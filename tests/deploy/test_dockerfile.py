"""run_services/Dockerfile checked offline: hadolint (failure threshold: warning) and what
production needs of the image (non-root, base by digest, a healthcheck, config/ in, the
emulators and the simulators out, production mode on, and no code in it that imports what
it leaves out). Each check has a companion fed a broken Dockerfile.
"""

from __future__ import annotations

import ast
import re
import subprocess
from pathlib import Path

from tests.deploy.conftest import REPO, TOOLS, require_tools

DOCKERFILE = REPO / "run_services" / "Dockerfile"
HADOLINT = TOOLS / "venv" / "bin" / "hadolint"
SHIPPED = ("fjordbank", "run_services")  # the project's code in the image
LEFT_OUT = ("simulators", "clientkit", "devstack", "bankctl", "bench", "tests", "scripts", "emulators", "functions")


def hadolint(path: Path) -> subprocess.CompletedProcess:
    require_tools(HADOLINT)
    return subprocess.run(
        [str(HADOLINT), "--no-color", "--failure-threshold", "warning", str(path)],
        cwd=path.parent,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    joined = re.sub(r"\\\n", " ", "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#")))
    out = []
    for line in joined.splitlines():
        if line.strip():
            word, _, rest = line.strip().partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def problems(text: str) -> list[str]:
    """What the production image must be, beyond hadolint's rules."""
    steps = instructions(text)
    found = []
    bases = [args.split()[0] for word, args in steps if word == "FROM"]
    stage_names = {args.split()[-1] for word, args in steps if word == "FROM" and " AS " in f" {args.upper()} "}
    for base in bases:
        if base not in stage_names and not re.search(r"@sha256:[0-9a-f]{64}$", base):
            found.append(f"base image not pinned by digest: {base}")
    users = [args for word, args in steps if word == "USER"]
    if not users or users[-1].split(":")[0] in ("root", "0"):
        found.append("the image runs as root")
    if not any(word == "HEALTHCHECK" for word, _ in steps):
        found.append("no HEALTHCHECK")
    sources = [  # what COPY/ADD take from the build context (not from another stage)
        source.removeprefix("./").rstrip("/") or "."
        for word, args in steps
        if word in ("COPY", "ADD") and "--from=" not in args
        for source in [t for t in args.split() if not t.startswith("--")][:-1]
    ]
    if "config" not in sources:
        found.append("config/ is not copied (screening's default policy config/screening.json)")
    if "." in sources or any(s.split("/")[0] == "emulators" for s in sources):
        found.append("the emulators are copied (or the whole context)")
    if any(s.split("/")[0] == "simulators" for s in sources):
        found.append("the simulators are copied")
    envs = " ".join(args for word, args in steps if word == "ENV")
    if not re.search(r"(^|\s)FJB_ENV=production(\s|$)", envs):
        found.append("FJB_ENV=production is not set: missing settings would default into the dev folders")
    return found


def imports_left_out(paths: list[Path], root: Path = REPO) -> list[str]:
    """``file: module`` for each import of the project's code the image leaves out."""
    found = []
    for path in paths:
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            found += [f"{path.relative_to(root)}: {n}" for n in names if n.split(".")[0] in LEFT_OUT]
    return found


def test_hadolint_accepts_the_dockerfile() -> None:
    proc = hadolint(DOCKERFILE)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_hadolint_rejects_latest_and_unpinned_apt(tmp_path: Path) -> None:
    broken = tmp_path / "Dockerfile"
    broken.write_text(
        "FROM python:latest\nRUN apt-get update && apt-get install -y curl\nCOPY . /app\nCMD python /app/main.py\n"
    )
    proc = hadolint(broken)
    assert proc.returncode != 0, proc.stdout
    for rule in ("DL3007", "DL3008"):  # `latest`; apt-get install without versions
        assert rule in proc.stdout, proc.stdout


def test_the_image_is_what_production_runs() -> None:
    assert problems(DOCKERFILE.read_text()) == []


def test_the_production_check_rejects_a_careless_image() -> None:
    careless = (
        "FROM python:3.11-slim AS build\nRUN pip install nats-py\n"
        "FROM python:3.11-slim\nCOPY fjordbank/ fjordbank/\nCOPY ./emulators/ emulators/\n"
        "COPY simulators/ simulators/\nENV FJB_ENV=local\n"
        'CMD ["python", "-m", "run_services.ledger"]\n'
    )
    found = problems(careless)
    assert len([p for p in found if p.startswith("base image not pinned")]) == 2, found
    for expected in (
        "runs as root",
        "no HEALTHCHECK",
        "config/ is not copied",
        "emulators are copied",
        "simulators are copied",
        "FJB_ENV=production is not set",
    ):
        assert any(expected in p for p in found), (expected, found)
    assert any("whole context" in p for p in problems("FROM scratch AS x\nCOPY . /app\n"))


def test_the_code_in_the_image_imports_nothing_the_image_leaves_out() -> None:
    """The simulators, the dev stack, the tools and the tests are not in the image: the
    services' code must not need them (the clearing service once started the simulated
    counterparty bank itself)."""
    shipped = sorted(p for folder in SHIPPED for p in (REPO / folder).rglob("*.py"))
    assert shipped and imports_left_out(shipped) == []


def test_the_import_check_finds_an_import_of_the_simulators(tmp_path: Path) -> None:
    module = tmp_path / "clearing.py"
    module.write_text(
        "import json\nfrom simulators.counterparty import answer\nimport devstack.stack\nfrom . import x\n"
    )
    assert imports_left_out([module], root=tmp_path) == [
        "clearing.py: simulators.counterparty",
        "clearing.py: devstack.stack",
    ]


def test_screening_policy_default_is_in_the_image() -> None:
    """The default policy the image points at exists in config/, which the image copies."""
    assert (REPO / "config" / "screening.json").is_file()
    assert "FJB_SCREENING_POLICY=/app/config/screening.json" in DOCKERFILE.read_text()
