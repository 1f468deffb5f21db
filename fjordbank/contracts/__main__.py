"""``python -m fjordbank.contracts [--check]``: write the contract files, or (``--check``)
only say whether the committed ones are those of the code (exit status 1 if not)."""

from __future__ import annotations

import argparse
import sys

from fjordbank import contracts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m fjordbank.contracts", description=__doc__)
    parser.add_argument("--check", action="store_true", help="change nothing; exit 1 when a file is stale")
    args = parser.parse_args(argv)
    if args.check:
        stale = contracts.stale()
        for path in stale:
            print(f"stale: contracts/{path}")
        if stale:
            print(f"run `{contracts.REGENERATE}` and commit the files")
        return 1 if stale else 0
    try:
        changed = contracts.write()
    except ValueError as exc:
        print(exc, file=sys.stderr)
        return 1
    for path in changed:
        print(f"wrote contracts/{path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
