"""Fjordbank shared package: domain and adapters."""
