"""Fixtures for /metrics and the structured logs."""

import io
import json
import logging

import pytest
from prometheus_client.parser import text_string_to_metric_families

from config.logs import JsonFormatter
from routing.reports import metrics


@pytest.fixture(autouse=True)
def fresh_metric_counts():
    """Kept counts outlive a test's rolled-back rows: start and end every test without them."""
    metrics.reset()
    yield
    metrics.reset()


def scrape(client, **extra) -> dict:
    """GET /metrics from the default allowed address; {sample name: {frozenset(labels.items()): value}}."""
    response = client.get("/metrics", **extra)
    assert response.status_code == 200, response.content
    text = response.content.decode()
    samples: dict = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples.setdefault(sample.name, {})[frozenset(sample.labels.items())] = sample.value
    return samples


def value(samples: dict, name: str, **labels):
    return samples[name][frozenset(labels.items())]


@pytest.fixture
def json_log():
    """Records as the configured console handler formats them (its filters and formatter), as parsed dicts."""
    configured = next(h for h in logging.getLogger().handlers if isinstance(h.formatter, JsonFormatter))
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(configured.formatter)
    for log_filter in configured.filters:
        handler.addFilter(log_filter)
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        yield lambda: [json.loads(line) for line in stream.getvalue().splitlines()]
    finally:
        root.removeHandler(handler)
