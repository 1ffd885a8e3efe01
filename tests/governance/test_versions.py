"""Rule versions are immutable and numbered per rule; leads and the audit trail name the version that
decided them (routing/governance/models.py, migration 0004's trigger)."""

import pytest
from django.db import Error, connection, transaction

from audit.models import AuditAction, AuditEvent
from routing.governance.models import ImmutableError, RulePromotion, RuleVersion
from routing.models import RuleStage
from tests.factories import LeadFactory, RuleFactory, case, promote_live
from tests.governance.helpers import routed, stage

pytestmark = pytest.mark.django_db


def refusal(table: str) -> str:
    """The trigger refuses the owner; the application's role, without UPDATE or DELETE on the table, is refused
    before the trigger runs (tests/audit/test_db_roles.py)."""
    return f"{table} rows are immutable|permission denied for table {table}"


@pytest.fixture
def version(sales, rule_owner):
    return RuleFactory(name="MQL to sales", owner=rule_owner, queue=sales).production_version


def test_saving_an_existing_version_again_is_refused(version):
    version.condition = {"field": "country", "op": "eq", "value": "FR"}

    with pytest.raises(ImmutableError, match="RuleVersion rows are immutable"):
        version.save()
    version.refresh_from_db()
    assert version.condition == {"field": "lifecycle_stage", "op": "eq", "value": "mql"}


def test_deleting_a_version_is_refused(version):
    with pytest.raises(ImmutableError):
        version.delete()
    assert RuleVersion.objects.filter(pk=version.pk).exists()


@pytest.mark.parametrize(
    "sql",
    [
        'UPDATE routing_ruleversion SET condition = \'{"field": "country", "op": "eq", "value": "FR"}\' WHERE id = %s',
        "UPDATE routing_ruleversion SET number = 7 WHERE id = %s",
        "DELETE FROM routing_ruleversion WHERE id = %s",
    ],
    ids=["update-condition", "update-number", "delete"],
)
def test_the_database_refuses_to_change_or_delete_a_version(version, sql):
    with pytest.raises(Error, match=refusal("routing_ruleversion")):
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(sql, [version.pk])

    stored = RuleVersion.objects.get(pk=version.pk)
    assert (stored.number, stored.condition) == (1, {"field": "lifecycle_stage", "op": "eq", "value": "mql"})


def test_a_queryset_update_of_versions_is_refused_by_the_database(version):
    with pytest.raises(Error):
        with transaction.atomic():
            RuleVersion.objects.filter(pk=version.pk).update(sla_minutes=1)
    assert RuleVersion.objects.get(pk=version.pk).sla_minutes == 15


@pytest.mark.parametrize(
    "sql",
    [
        "UPDATE routing_rulepromotion SET comment = 'rewritten' WHERE id = %s",
        "DELETE FROM routing_rulepromotion WHERE id = %s",
    ],
    ids=["update", "delete"],
)
def test_the_database_refuses_to_change_or_delete_a_promotion(version, sql):
    promotion = RulePromotion.objects.get(version=version)

    with pytest.raises(Error, match=refusal("routing_rulepromotion")):
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(sql, [promotion.pk])
    assert RulePromotion.objects.get(pk=promotion.pk).comment == ""


def test_versions_are_numbered_one_two_three_per_rule(sales, uk, rule_owner):
    rule = RuleFactory(stage=RuleStage.DRAFT, owner=rule_owner, queue=sales)
    other = RuleFactory(stage=RuleStage.DRAFT, owner=rule_owner, queue=uk)

    stage(rule)
    stage(rule, description="Second.")
    stage(other)
    stage(rule, description="Third.")

    assert list(rule.versions.order_by("number").values_list("number", "description")) == [
        (1, "Routes test leads."),
        (2, "Second."),
        (3, "Third."),
    ]
    assert list(other.versions.values_list("number", flat=True)) == [1]


def test_a_version_freezes_the_whole_contract_and_who_froze_it(sales, rule_owner):
    rule = RuleFactory(stage=RuleStage.DRAFT, owner=rule_owner, queue=sales, priority=5, sla_minutes=20)

    version = stage(rule).staging_version

    assert (version.name, version.owner, version.priority, version.queue, version.sla_minutes) == (
        rule.name,
        rule_owner,
        5,
        sales,
        20,
    )
    assert (version.condition, version.test_cases) == (rule.condition, rule.test_cases)
    assert (version.created_by, version.forced) == (rule_owner, False)


def test_leads_and_their_audit_events_record_the_version_that_decided(sales, partners, rule_owner):
    rule = RuleFactory(name="MQL to sales", owner=rule_owner, queue=sales)
    first = routed(LeadFactory())
    promote_live(rule, queue=partners, test_cases=[case("an MQL", "Partners", lifecycle_stage="mql")])
    second = routed(LeadFactory())

    assert [(lead.rule, lead.rule_version, lead.queue) for lead in (first, second)] == [
        (rule, 1, sales),
        (rule, 2, partners),
    ]
    decided = AuditEvent.objects.filter(action=AuditAction.ROUTING_DECISION).order_by("id")
    assert [(event.lead, event.rule, event.rule_version) for event in decided] == [
        (first, rule, 1),
        (second, rule, 2),
    ]
