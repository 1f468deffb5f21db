"""python -m simulators.counterparty: the other banks' process (simulators.counterparty.bank)."""

from simulators.counterparty.bank import main

if __name__ == "__main__":
    raise SystemExit(main())
