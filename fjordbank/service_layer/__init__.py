"""Use cases: what the edge and the services do, with their I/O passed in."""
