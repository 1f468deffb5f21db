"""Simulated outside parties for tests, benchmarks and the local stack: never production.

- ``counterparty``: the other banks of the clearing exchange, as the devstack component
  ``counterparty`` (``python -m simulators.counterparty --help``): it answers each pain.001
  in the clearing outbox with a pain.002 in the inbox, by the rules in
  emulators/counterparty.json, and misbehaves on a chaos run's ``counterparty`` fault;
- ``card_processor``: the card network's side of the card service's API
  (``python -m simulators.card_processor --help``);
- ``identities``: Skatteetaten's synthetic identity numbers for demo and test customers.

Nothing in fjordbank/ or run_services/ imports this package; the services' image and the
functions' deploy (scripts/vendor_shared.py) leave it out.
"""
