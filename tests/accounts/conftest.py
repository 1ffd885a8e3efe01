import pytest
from rest_framework.test import APIClient

from routing import engine
from tests.factories import UserFactory, personal_token


@pytest.fixture(autouse=True)
def fresh_rule_cache(monkeypatch):
    """Each test compiles its own rules (the engine's per-process cache is keyed by a fingerprint that two
    rolled-back tests could share)."""
    monkeypatch.setattr(engine, "_cached", None)


@pytest.fixture
def api(ops_person):
    """A console person's personal token, as a CRM sync would use."""
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {personal_token(ops_person)}")
    return client


@pytest.fixture
def sam(db):
    return UserFactory(username="sam", first_name="Sam", last_name="Seller", email="sam@ourco.example")
