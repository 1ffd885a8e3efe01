"""Observability: `/metrics` for Prometheus (metrics.py, views.py) and logs that name the lead, exception and
task they are about (logging.py). README: Metrics and logs."""
