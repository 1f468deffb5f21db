"""Consumer services, one process each (Cloud Run / Knative in production).

Each module is thin: parse, call the shared package, translate the result into an
ack, a retry or a dead-letter through `fjordbank.runtime.consumer`.
"""
