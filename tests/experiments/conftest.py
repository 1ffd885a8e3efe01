"""Fixtures for the experiment tests: Rowan's rule with production v1 (MQLs to Sales) and staging v2 (to UK)."""

import pytest

from routing import engine
from tests.factories import MembershipFactory, QueueFactory, RuleFactory, UserFactory, case
from tests.governance.helpers import stage


@pytest.fixture(autouse=True)
def fresh_rule_cache(monkeypatch):
    """Each test compiles its own rules (the engine's per-process cache could match a rolled-back test's)."""
    monkeypatch.setattr(engine, "_cached", None)


@pytest.fixture
def admin(db):
    return UserFactory(username="ada", is_staff=True, is_superuser=True)


@pytest.fixture
def sales(db):
    queue = QueueFactory(name="Sales")
    MembershipFactory(queue=queue, user__username="alan")
    return queue


@pytest.fixture
def uk(db):
    queue = QueueFactory(name="UK")
    MembershipFactory(queue=queue, user__username="carl")
    return queue


@pytest.fixture
def mql_rule(rule_owner, sales, uk):
    """Production v1 sends MQLs to Sales; staging v2 sends them to UK."""
    rule = RuleFactory(name="MQLs", owner=rule_owner, queue=sales, priority=10)
    return stage(rule, queue=uk, test_cases=[case("an MQL", "UK", lifecycle_stage="mql")])
