"""Migration 0011 gives every existing rule stored test results (bounded: over the caps, nothing runs), and
stops when a live version holds a pattern RE2 refuses, which would leave no rule able to route."""

import importlib

import pytest
from django.apps import apps

from routing.governance.gates import MAX_TEST_CASES
from routing.models import Rule, RuleStage
from tests.factories import QueueFactory, RuleFactory, case

pytestmark = pytest.mark.django_db

migration = importlib.import_module("routing.migrations.0011_rule_stored_test_results")


def test_existing_rules_get_stored_results_and_over_the_cap_ones_cannot_run(rule_owner):
    ae = QueueFactory(name="AE")
    passing = RuleFactory(
        owner=rule_owner, queue=ae, test_cases=[case("MQL", "AE", lifecycle_stage="mql")], tests_run=False
    )
    failing = RuleFactory(
        owner=rule_owner, queue=ae, test_cases=[case("SQL", "AE", lifecycle_stage="sql")], tests_run=False
    )
    # Written before the cap existed: 30,000 cases is what made the list take seconds.
    crowded = RuleFactory(owner=rule_owner, queue=ae, stage=RuleStage.DRAFT, test_cases=[], tests_run=False)
    Rule.objects.filter(pk=crowded.pk).update(test_cases=[case("MQL", "AE", lifecycle_stage="mql")] * 30_000)

    migration.store_test_results(apps, None)

    stored = {r.pk: (r.test_status, r.test_run_at is not None) for r in Rule.objects.all()}
    assert stored == {
        passing.pk: ("passing", True),
        failing.pk: ("1 failing", True),
        crowded.pk: ("cannot run", True),
    }
    assert Rule.objects.get(pk=crowded.pk).test_results is None
    assert MAX_TEST_CASES < 30_000


def test_the_migration_stops_on_a_live_version_whose_pattern_re2_refuses(rule_owner):
    """Python's re accepted lookarounds; a live version holding one would make every lead fail to route after
    the upgrade, so the migration names it instead."""
    RuleFactory(name="Fine", owner=rule_owner)
    RuleFactory(name="Lookahead", owner=rule_owner, condition={"field": "company", "op": "matches", "value": "(?=x)"})
    with pytest.raises(RuntimeError) as caught:
        migration.refuse_live_patterns_re2_cannot_run(apps, None)
    assert "'Lookahead' production v1: when.value: invalid regular expression: lookahead" in str(caught.value)
    assert "'Fine'" not in str(caught.value)
