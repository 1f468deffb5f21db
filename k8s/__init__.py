"""Fjordbank's Kubernetes side: the NATS chart values, its extra objects and the Knative services.

`python -m k8s.render` regenerates what is generated from `fjordbank/topology.py`;
`k8s/chart.py` renders the parts of the NATS chart the offline checks need (tests/deploy).
"""
