"""Simulated outside parties (pure functions, no I/O) used by tests and the local stack."""
