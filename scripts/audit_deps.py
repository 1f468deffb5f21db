"""Vulnerability audit of the pinned Python dependencies (both locks), run by `make test`.

pip-audit looks every pinned release up in a vulnerability database (PyPI's advisories,
or OSV with FJB_VULN_SERVICE=osv) and this script fails on any known vulnerability that
is not accepted in config/accepted-vulnerabilities.txt (one id per line, with the reason
as a comment). Where no database can be reached (a closed network), the audit cannot
run: it says so loudly and passes, unless FJB_REQUIRE_VULN_AUDIT=1 makes that a failure
(set it in a CI that has the network).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
LOCKS = [REPO / "requirements.lock", REPO / "functions" / "requirements.lock"]
ACCEPTED = REPO / "config" / "accepted-vulnerabilities.txt"
UNREACHABLE = ("ConnectionError", "Max retries exceeded", "Failed to resolve", "404 Client Error", "NameResolution")


def accepted() -> set[str]:
    if not ACCEPTED.exists():
        return set()
    lines = (line.split("#", 1)[0].strip() for line in ACCEPTED.read_text().splitlines())
    return {line for line in lines if line}


def main() -> int:
    service = os.environ.get("FJB_VULN_SERVICE", "pypi")
    cmd = [sys.executable, "-m", "pip_audit", "--format", "json", "--progress-spinner", "off"]
    cmd += ["--vulnerability-service", service, "--disable-pip", "--require-hashes"]
    for lock in LOCKS:
        cmd += ["-r", str(lock)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)  # noqa: S603 - fixed argv, no shell
    if proc.returncode not in (0, 1) or not proc.stdout.strip():
        if any(marker in proc.stderr for marker in UNREACHABLE):
            print(f"dependency audit: the vulnerability database ({service}) cannot be reached; NOT audited")
            return 1 if os.environ.get("FJB_REQUIRE_VULN_AUDIT") == "1" else 0
        print(f"dependency audit failed to run:\n{proc.stderr[-2000:]}")
        return 2
    report = json.loads(proc.stdout)
    deps = report.get("dependencies", [])
    skipped = [dep["name"] for dep in deps if dep.get("skip_reason")]
    if skipped:
        # e.g. a registry mirror without PyPI's JSON API answers 404 for every release
        print(
            f"dependency audit: {len(skipped)} of {len(deps)} pinned releases could not be looked up in {service} "
            f"({', '.join(skipped[:5])}{', ...' if len(skipped) > 5 else ''}); NOT audited"
        )
        if os.environ.get("FJB_REQUIRE_VULN_AUDIT") == "1":
            return 1
    ok = accepted()
    findings = [
        (dep["name"], dep["version"], vuln["id"], vuln.get("fix_versions", []))
        for dep in report.get("dependencies", [])
        for vuln in dep.get("vulns", [])
        if vuln["id"] not in ok and not set(vuln.get("aliases", [])) & ok
    ]
    for name, version, vuln_id, fixes in findings:
        print(f"dependency audit: {name}=={version} has {vuln_id} (fixed in {', '.join(fixes) or 'no release yet'})")
    audited = len(deps) - len(skipped)
    print(f"dependency audit: {audited} pinned releases checked against {service}, {len(findings)} vulnerable")
    return 1 if findings else 0


if __name__ == "__main__":
    sys.exit(main())
