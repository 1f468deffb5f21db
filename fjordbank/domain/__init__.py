"""Pure domain: no Firebase, no NATS, no I/O."""
