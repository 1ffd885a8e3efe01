"""Fixtures for the fault-injection scenarios (issue 7): processes a test may start, stop and kill, and a
routing set-up whose queue every scenario's leads land in."""

import pytest

from tests.factories import MembershipFactory, QueueFactory, RuleFactory, UserFactory
from tests.faults.helpers import Processes

MQL = {"field": "lifecycle_stage", "op": "eq", "value": "mql"}


@pytest.fixture
def processes(transactional_db, tmp_path):
    """Services started by one test; all of them (and their children) are stopped before its tables are
    flushed, even when the test failed half-way or killed some itself."""
    started = Processes(tmp_path)
    yield started
    started.stop_all()
    print(started.tails())  # shown by pytest only when the test failed


@pytest.fixture
def ae_rule(rule_owner):
    """MQLs go to Account Executives, round robin between two people; any other lead is an exception."""
    queue = QueueFactory(name="Account Executives")
    for name in ("alan", "katherine"):
        MembershipFactory(queue=queue, user=UserFactory(username=name))
    return RuleFactory(name="MQL to AE", condition=MQL, queue=queue, owner=rule_owner, priority=10)
