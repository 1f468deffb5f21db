"""Parse HCL files with python-hcl2 and print them as one JSON object {path: document}.

Runs under .deploy-tools/venv/bin/python (scripts/deploy_tools.sh), not the project's venv:
python-hcl2 lives apart because checkov's bc-python-hcl2 installs the same module `hcl2`.
A file that does not parse maps to {"__error__": message}. Standard library + hcl2 only.

    .deploy-tools/venv/bin/python tests/deploy/hcl_dump.py FILE...
"""

from __future__ import annotations

import json
import sys

import hcl2


def main(paths: list[str]) -> int:
    out: dict[str, object] = {}
    for path in paths:
        try:
            with open(path, encoding="utf-8") as fh:
                out[path] = hcl2.load(fh)
        except Exception as exc:  # every parse error is reported, not raised
            out[path] = {"__error__": f"{type(exc).__name__}: {exc}"}
    json.dump(out, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
