"""Routing preview and lead explanations (preview.py, explain.py): which rule decides, why each earlier
rule did not, who would get the lead, all without writing anything."""

import pytest

from audit.models import AuditEvent
from routing.governance.models import ShadowDecision
from routing.governance.preview import lead_explanation, routing_preview
from routing.governance.services import rule_rollback
from routing.intake import SampleLeadError
from routing.models import Lead, Queue, QueueMembership
from tests.factories import LeadFactory, RuleFactory, case, promote_live
from tests.governance.helpers import routed, stage

pytestmark = pytest.mark.django_db

ENGAGED_MQL = {
    "all": [
        {"field": "lifecycle_stage", "op": "eq", "value": "mql"},
        {"field": "engagement_score", "op": "gt", "value": 50},
    ]
}
SAMPLE = {"email": "jo@example.com", "lifecycle_stage": "mql", "engagement_score": 30, "country": "GB"}


@pytest.fixture
def engaged(sales, rule_owner):
    return RuleFactory(
        name="Engaged MQLs",
        owner=rule_owner,
        queue=sales,
        priority=10,
        condition=ENGAGED_MQL,
        test_cases=[case("an engaged MQL", "Sales", lifecycle_stage="mql", engagement_score=80)],
    )


@pytest.fixture
def gb(uk, rule_owner):
    return RuleFactory(
        name="GB to UK",
        owner=rule_owner,
        queue=uk,
        priority=20,
        condition={"field": "country", "op": "eq", "value": "GB"},
        test_cases=[case("a GB lead", "UK", country="GB")],
    )


def state() -> tuple:
    """Everything routing writes: rotation state, leads, audit, shadow decisions, membership history."""
    return (
        list(QueueMembership.objects.order_by("id").values_list("id", "rotation_pass")),
        list(Queue.objects.order_by("id").values_list("id", "virtual_time")),
        Lead.objects.count(),
        AuditEvent.objects.count(),
        ShadowDecision.objects.count(),
        QueueMembership.history.count(),
    )


def test_preview_names_the_deciding_rule_the_assignee_and_why_earlier_rules_failed(engaged, gb):
    preview = routing_preview(sample=SAMPLE)

    first, second = preview.explanation.verdicts
    assert (first.version.rule, first.version.number, first.matched) == (engaged, 1, False)
    assert (first.failure.path, first.failure.condition, first.failure.seen) == (
        "when.all[1]",
        "engagement_score > 50",
        {"engagement_score": 30},
    )
    assert str(first.failure) == "engagement_score > 50 — engagement_score was 30.0"
    assert (second.version.rule, second.matched, second.failure) == (gb, True, None)
    assert preview.explanation.decided == second
    assert (preview.queue, preview.assignee) == ("UK", "carl")


def test_preview_writes_nothing_and_routing_then_gives_the_previewed_assignee(engaged, gb):
    before = state()

    previewed = routing_preview(sample=SAMPLE)
    assert routing_preview(sample=SAMPLE).assignee == previewed.assignee  # the turn was not taken

    assert state() == before
    lead = routed(LeadFactory(**SAMPLE))
    assert (lead.queue.name, lead.assignee.username, lead.rule) == (previewed.queue, previewed.assignee, gb)
    # Now the rotation did move (for another person: this one's next lead would stick to carl).
    assert routing_preview(sample={**SAMPLE, "email": "someone.else@example.com"}).assignee == "dana"
    assert routing_preview(sample=SAMPLE).assignee == "carl"


def test_preview_stops_at_the_first_match(engaged, gb):
    preview = routing_preview(sample={**SAMPLE, "engagement_score": 90})

    assert [v.version.rule for v in preview.explanation.verdicts] == [engaged]
    assert preview.queue == "Sales"


def test_preview_of_a_lead_no_rule_matches_explains_every_rule(engaged, gb):
    preview = routing_preview(sample={"email": "jo@example.com", "lifecycle_stage": "sql", "country": "US"})

    assert preview.explanation.decided is None
    assert [(str(v.failure), v.matched) for v in preview.explanation.verdicts] == [
        ("lifecycle_stage = 'mql' — lifecycle_stage was 'sql'", False),
        ("country = 'GB' — country was 'US'", False),
    ]
    assert (preview.queue, preview.assignee) == (None, None)


def test_preview_of_a_lead_without_contact_details_stops_before_any_rule(engaged, gb):
    preview = routing_preview(sample={"lifecycle_stage": "mql", "country": "GB"})

    assert (preview.explanation.missing_contact, preview.explanation.verdicts, preview.queue) == (True, [], None)


def test_preview_says_nobody_when_the_queue_has_no_available_member(engaged, gb, uk):
    uk.memberships.update(is_available=False)

    preview = routing_preview(sample=SAMPLE)

    assert (preview.queue, preview.assignee) == ("UK", None)


def test_a_candidate_preview_uses_the_staging_versions(engaged, gb, partners):
    stage(gb, queue=partners, test_cases=[case("a GB lead", "Partners", country="GB")])

    assert routing_preview(sample=SAMPLE).queue == "UK"
    candidate = routing_preview(sample=SAMPLE, candidate=True)
    assert (candidate.queue, candidate.explanation.decided.version.number) == ("Partners", 2)


@pytest.mark.parametrize(
    ("sample", "fields"),
    [
        ({"email": "not-an-address", "company_size": "big", "country": "XX"}, {"email", "company_size", "country"}),
        ({"email": "jo@example.com", "shoe_size": 42}, {"shoe_size"}),
        ({"email": "jo@example.com", "engagement_score": 101}, {"engagement_score"}),
        (["not", "an", "object"], {"lead"}),
    ],
    ids=["bad-values", "unknown-field", "score-out-of-range", "not-an-object"],
)
def test_an_invalid_sample_is_refused_naming_the_fields(engaged, sample, fields):
    before = state()

    with pytest.raises(SampleLeadError) as refused:
        routing_preview(sample=sample)

    assert set(refused.value.errors) == fields
    assert state() == before


def test_a_lead_is_explained_by_the_versions_live_when_it_was_routed(engaged, gb):
    lead = routed(LeadFactory(**SAMPLE))
    promote_live(
        engaged,
        condition={**ENGAGED_MQL, "all": [ENGAGED_MQL["all"][0]]},  # v2: every MQL, engaged or not
        test_cases=[case("an MQL", "Sales", lifecycle_stage="mql")],
    )
    assert routed(LeadFactory(**SAMPLE)).rule == engaged  # v2 would take it now

    explanation = lead_explanation(lead)

    first, second = explanation.verdicts
    assert (first.version.rule, first.version.number, str(first.failure)) == (
        engaged,
        1,
        "engagement_score > 50 — engagement_score was 30.0",
    )
    assert (explanation.decided.version.rule, explanation.decided.version.number) == (gb, lead.rule_version)
    assert explanation.decided.version.rule_id == lead.rule_id


def test_a_lead_routed_before_a_rollback_is_explained_by_the_rolled_back_version(engaged, gb, rule_owner):
    promote_live(gb, description="Version 2.")
    lead = routed(LeadFactory(**SAMPLE))
    rule_rollback(rule=gb, by=rule_owner)

    assert lead_explanation(lead).decided.version.number == 2


def test_a_lead_not_yet_routed_has_no_explanation(engaged):
    assert lead_explanation(LeadFactory()) is None


def test_a_lead_without_contact_details_is_explained_as_such(engaged):
    lead = routed(LeadFactory(email=None, phone=None))

    explanation = lead_explanation(lead)

    assert (explanation.missing_contact, explanation.decided) == (True, None)
