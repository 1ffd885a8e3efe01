"""Fixtures for the rule governance tests: an admin persona, and queues with people in them."""

import pytest

from routing import engine
from tests.factories import MembershipFactory, QueueFactory, UserFactory


@pytest.fixture(autouse=True)
def fresh_rule_cache(monkeypatch):
    """Each test compiles its own rules: the engine's per-process cache is keyed by a fingerprint that two
    rolled-back tests could happen to share."""
    monkeypatch.setattr(engine, "_cached", None)


@pytest.fixture
def admin(db):
    return UserFactory(username="ada", first_name="Ada", last_name="Admin", is_staff=True, is_superuser=True)


@pytest.fixture
def sales(db):
    queue = QueueFactory(name="Sales")
    MembershipFactory(queue=queue, user__username="alan")
    MembershipFactory(queue=queue, user__username="bea")
    return queue


@pytest.fixture
def uk(db):
    queue = QueueFactory(name="UK")
    MembershipFactory(queue=queue, user__username="carl")
    MembershipFactory(queue=queue, user__username="dana")
    return queue


@pytest.fixture
def partners(db):
    queue = QueueFactory(name="Partners")
    MembershipFactory(queue=queue, user__username="pia")
    return queue
