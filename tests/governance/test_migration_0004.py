"""Migration 0004 freezes the rules that were live before governance: each keeps routing as its own
version, in the stage it was in."""

import importlib

import pytest
from django.db import connection
from django.db.migrations.loader import MigrationLoader
from django.utils import timezone

from audit.db_roles import as_owner
from routing.governance.models import RulePromotion
from routing.governance.preview import versions_live_at
from routing.models import Rule, RuleStage
from tests.factories import RuleFactory

# Transactional: the test connects as the schema's owner, as migrations do (the application role may not ALTER
# a table), and what it adds to the schema is dropped again after it.
pytestmark = pytest.mark.django_db(transaction=True)

freeze_live_rules = importlib.import_module("routing.migrations.0004_freeze_live_rules").freeze_live_rules


@pytest.fixture
def rules_before_0004(sales, uk, rule_owner):
    """The state 0004 starts from: rules with their own `version` column (added back for the test) and a
    stage, but no frozen versions. Returns the apps of 0003."""
    with as_owner(connection):
        with connection.cursor() as cursor:
            cursor.execute("ALTER TABLE routing_rule ADD COLUMN version integer NOT NULL DEFAULT 1")
        try:
            live = RuleFactory(name="Live", owner=rule_owner, queue=sales, stage=RuleStage.DRAFT)
            staged = RuleFactory(name="Staged", owner=rule_owner, queue=uk, stage=RuleStage.DRAFT)
            RuleFactory(name="Draft", owner=rule_owner, queue=uk, stage=RuleStage.DRAFT)
            Rule.objects.filter(pk=live.pk).update(stage=RuleStage.PRODUCTION)
            Rule.objects.filter(pk=staged.pk).update(stage=RuleStage.STAGING)
            with connection.cursor() as cursor:
                cursor.execute("UPDATE routing_rule SET version = 3 WHERE id = %s", [live.pk])
            state = MigrationLoader(connection).project_state(("routing", "0003_rule_versions_governance"))
            yield state.apps, live, staged
        finally:
            with connection.cursor() as cursor:
                cursor.execute("ALTER TABLE routing_rule DROP COLUMN version")


def test_a_production_rule_keeps_routing_as_its_frozen_version(rules_before_0004):
    apps, live, _ = rules_before_0004

    freeze_live_rules(apps, None)

    live.refresh_from_db()
    assert (live.production_version.number, live.production_version.forced, live.staging_version) == (3, True, None)
    assert live.versions.count() == 1


def test_a_draft_rule_is_not_frozen(rules_before_0004):
    apps, *_ = rules_before_0004

    freeze_live_rules(apps, None)

    assert not Rule.objects.get(name="Draft").versions.exists()


def test_a_staging_rule_is_frozen_into_staging_not_production(rules_before_0004):
    apps, live, staged = rules_before_0004

    freeze_live_rules(apps, None)

    staged.refresh_from_db()
    assert (staged.staging_version.number, staged.production_version) == (1, None)
    # What was live (explanations, rollback targets) reads the promotions: the staged rule never was.
    assert [version.rule_id for version in versions_live_at(timezone.now())] == [live.pk]
    assert RulePromotion.objects.get(rule=staged).kind == "staging"
