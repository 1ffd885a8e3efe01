"""Shadow evaluation (routing/services.py lead_route, selectors.shadow_summary): while a rule has a staging
version, every lead is also decided by the candidate set, recorded, and never acted on."""

import pytest

from routing.governance.models import ShadowDecision
from routing.governance.selectors import shadow_summary
from routing.models import LeadStatus
from tests.factories import LeadFactory, RuleFactory, case, promote_live
from tests.governance.helpers import routed, stage

pytestmark = pytest.mark.django_db


@pytest.fixture
def rule(sales, rule_owner):
    """In production as v1: MQLs to Sales."""
    return RuleFactory(name="MQL to sales", owner=rule_owner, queue=sales, priority=10)


def test_a_lead_is_assigned_by_production_while_the_staging_version_is_recorded(rule, sales, partners):
    stage(rule, queue=partners, test_cases=[case("an MQL", "Partners", lifecycle_stage="mql")])

    lead = routed(LeadFactory(lifecycle_stage="mql"))

    assert (lead.status, lead.queue, lead.rule_version) == (LeadStatus.ASSIGNED, sales, 1)
    assert lead.assignee.username in {"alan", "bea"}
    (shadow,) = ShadowDecision.objects.all()
    assert (shadow.lead, shadow.production_rule, shadow.production_version, shadow.production_queue) == (
        lead,
        rule,
        1,
        sales,
    )
    assert (shadow.candidate_rule, shadow.candidate_version, shadow.candidate_queue, shadow.differs) == (
        rule,
        2,
        partners,
        True,
    )
    assert shadow.at == lead.routed_at


def test_a_candidate_that_agrees_with_production_is_recorded_as_not_differing(rule, sales):
    stage(rule, description="Same routing, better words.")

    lead = routed(LeadFactory(lifecycle_stage="mql"))

    shadow = ShadowDecision.objects.get(lead=lead)
    assert (shadow.production_version, shadow.candidate_version, shadow.differs) == (1, 2, False)


def test_a_lead_no_rule_matches_still_gets_a_shadow_decision(rule, partners):
    stage(rule, queue=partners, test_cases=[case("an MQL", "Partners", lifecycle_stage="mql")])

    lead = routed(LeadFactory(lifecycle_stage="lead"))

    assert lead.status == LeadStatus.EXCEPTION
    shadow = ShadowDecision.objects.get(lead=lead)
    assert (shadow.production_rule, shadow.candidate_rule, shadow.differs) == (None, None, False)


def test_without_staging_versions_no_shadow_decision_is_written(rule, partners):
    routed(LeadFactory(lifecycle_stage="mql"))
    promote_live(rule, queue=partners, test_cases=[case("an MQL", "Partners", lifecycle_stage="mql")])
    routed(LeadFactory(lifecycle_stage="mql"))  # the staged version went to production: nothing in staging

    assert not ShadowDecision.objects.exists()


def test_a_lead_without_contact_details_gets_no_shadow_decision(rule, partners):
    stage(rule, queue=partners, test_cases=[case("an MQL", "Partners", lifecycle_stage="mql")])

    routed(LeadFactory(email=None, phone=None))

    assert not ShadowDecision.objects.exists()


def test_shadow_summary_counts_decisions_gained_and_lost(rule, sales, uk, rule_owner):
    uk_rule = RuleFactory(
        name="GB to UK",
        owner=rule_owner,
        queue=uk,
        priority=20,
        condition={"field": "country", "op": "eq", "value": "GB"},
        test_cases=[case("a GB lead", "UK", country="GB")],
    )
    # Staging v2 of the sales rule: MQLs and SQLs of companies of 10 or more, but no longer GB (UK's).
    stage(
        rule,
        condition={
            "all": [
                {"field": "lifecycle_stage", "op": "in", "value": ["mql", "sql"]},
                {"field": "country", "op": "ne", "value": "GB"},
                {"field": "company_size", "op": "gte", "value": 10},
            ]
        },
        test_cases=[case("a US SQL", "Sales", lifecycle_stage="sql", country="US", company_size=50)],
    )
    same = routed(LeadFactory(lifecycle_stage="mql", country="US"))  # Sales both ways
    gained = routed(LeadFactory(lifecycle_stage="sql", country="US"))  # production: no match
    lost_to_uk = routed(LeadFactory(lifecycle_stage="mql", country="GB"))  # candidate: UK
    lost_to_none = routed(LeadFactory(lifecycle_stage="mql", country="US", company_size=5))  # candidate: none
    routed(LeadFactory(lifecycle_stage="lead", country="GB"))  # UK both ways: not about the sales rule
    routed(LeadFactory(email=None, phone=None))  # no contact: no shadow decision at all

    summary = shadow_summary(rule)

    assert (summary.decisions, summary.gained, summary.lost) == (2, 1, 2)
    assert summary.since == rule.staging_version.created_at
    assert {shadow.lead for shadow in summary.samples} == {gained, lost_to_uk, lost_to_none}
    assert same.queue == sales and ShadowDecision.objects.count() == 5
    assert shadow_summary(uk_rule) is None  # nothing staged for it


def test_shadow_summary_ignores_decisions_from_before_the_staging_version(rule, partners, sales):
    stage(rule, queue=partners, test_cases=[case("an MQL", "Partners", lifecycle_stage="mql")])
    routed(LeadFactory(lifecycle_stage="mql"))
    rule = stage(rule, description="Staging v3: the same routing as v2.")

    routed(LeadFactory(lifecycle_stage="mql"))

    summary = shadow_summary(rule)
    assert (summary.decisions, summary.gained, summary.lost) == (1, 1, 0)
