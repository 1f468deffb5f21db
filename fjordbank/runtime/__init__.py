"""The runtime every run_service shares: consumer loop, health/metrics HTTP, JSON logs."""
