import json

import pytest
from rest_framework.test import APIClient

from routing.intake_schema import versions_cache


@pytest.fixture(autouse=True)
def fresh_schema_versions():
    """Versions a test registers roll back with it; the per-process cache must not keep them for the next."""
    versions_cache.clear()
    yield
    versions_cache.clear()


def client_for(source) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {source.token}")
    return client


def post_json(client, url, payload, **extra):
    return client.post(url, data=json.dumps(payload), content_type="application/json", **extra)
