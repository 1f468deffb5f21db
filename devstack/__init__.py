"""The local stack: everything `make up` starts on one machine (dev and CI only).

Not part of the deployed code: production runs NATS on GKE and the services on Cloud Run.
"""
