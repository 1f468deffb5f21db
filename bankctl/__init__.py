"""bankctl: the operator's command line (python -m bankctl --help)."""
