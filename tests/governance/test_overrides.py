"""Manual overrides count against the rule and version that decided the lead, per ISO week, and a rule
overridden often enough in a week is flagged on the rules list (selectors.override_counts, rule_rows)."""

import datetime as dt

import pytest
import time_machine
from django.conf import settings

from audit.models import AuditAction, AuditEvent, Override
from exceptions.triage import lead_assign_manually
from routing.governance.selectors import override_counts, rule_rows
from tests.factories import LeadFactory, RuleFactory, UserFactory, case, promote_live
from tests.governance.helpers import routed

pytestmark = pytest.mark.django_db

WEEK_47 = dt.date(2026, 11, 16)  # Monday
MONDAY_W47 = dt.datetime(2026, 11, 16, 0, 0, tzinfo=dt.UTC)
THRESHOLD = settings.HANDOFF["OVERRIDE_FLAG_THRESHOLD"]


@pytest.fixture
def rule(sales, rule_owner):
    return RuleFactory(name="MQL to sales", owner=rule_owner, queue=sales, priority=10)


@pytest.fixture
def gb_rule(uk, rule_owner):
    return RuleFactory(
        name="GB to UK",
        owner=rule_owner,
        queue=uk,
        priority=5,
        condition={"field": "country", "op": "eq", "value": "GB"},
        test_cases=[case("a GB lead", "UK", country="GB")],
    )


def override(lead, *, to, by, at: dt.datetime):
    with time_machine.travel(at, tick=False):
        return lead_assign_manually(
            lead=lead, queue=to, assignee=to.members.first(), reason="Knows this account", by=by
        )[1]


def test_a_manual_assignment_records_an_override_against_the_deciding_rule_and_version(
    rule, sales, partners, ops_person
):
    promote_live(rule, description="Version 2, same routing.")
    lead = routed(LeadFactory(lifecycle_stage="mql"))
    routed_to = lead.assignee
    pia = partners.members.get()

    lead, made = lead_assign_manually(lead=lead, queue=partners, assignee=pia, reason="Partner deal", by=ops_person)

    assert (made.rule, made.rule_version, made.from_queue, made.from_assignee) == (rule, 2, sales, routed_to)
    assert (made.to_queue, made.to_assignee, made.by, made.reason) == (partners, pia, ops_person, "Partner deal")
    assert (lead.queue, lead.assignee) == (partners, pia)
    event = AuditEvent.objects.get(action=AuditAction.LEAD_OVERRIDE)
    assert (event.rule, event.rule_version, event.actor, event.data["override_id"]) == (rule, 2, ops_person, made.pk)


def test_an_override_of_a_lead_no_rule_decided_counts_against_no_rule(rule, partners, ops_person):
    lead = routed(LeadFactory(lifecycle_stage="lead"))  # no match: an exception

    made = override(lead, to=partners, by=ops_person, at=MONDAY_W47 + dt.timedelta(hours=9))

    assert (made.rule, made.rule_version) == (None, None)
    assert override_counts(WEEK_47) == {}


def test_override_counts_count_per_rule_within_the_iso_week_only(rule, gb_rule, partners, ops_person):
    at = {
        "previous sunday 23:59:59": MONDAY_W47 - dt.timedelta(seconds=1),
        "monday 00:00": MONDAY_W47,
        "wednesday": MONDAY_W47 + dt.timedelta(days=2, hours=11),
        "sunday 23:59:59": MONDAY_W47 + dt.timedelta(days=7, seconds=-1),
        "next monday 00:00": MONDAY_W47 + dt.timedelta(days=7),
    }
    for moment in at.values():
        override(routed(LeadFactory(lifecycle_stage="mql", country="US")), to=partners, by=ops_person, at=moment)
    override(routed(LeadFactory(country="GB")), to=partners, by=ops_person, at=at["wednesday"])

    assert Override.objects.count() == 6
    assert override_counts(WEEK_47) == {rule.pk: 3, gb_rule.pk: 1}
    assert override_counts(WEEK_47 - dt.timedelta(days=7)) == {rule.pk: 1}


def test_rule_rows_flag_a_rule_overridden_threshold_times_in_the_week_and_not_one_below(
    rule, gb_rule, partners, ops_person
):
    wednesday = MONDAY_W47 + dt.timedelta(days=2, hours=11)
    for _ in range(THRESHOLD):
        override(routed(LeadFactory(lifecycle_stage="mql", country="US")), to=partners, by=ops_person, at=wednesday)
    for _ in range(THRESHOLD - 1):
        override(routed(LeadFactory(country="GB")), to=partners, by=ops_person, at=wednesday)
    override(  # last week's override does not bring the GB rule up to the threshold
        routed(LeadFactory(country="GB")), to=partners, by=ops_person, at=MONDAY_W47 - dt.timedelta(hours=1)
    )

    rows = {row.rule: row for row in rule_rows(now=wednesday + dt.timedelta(hours=1))}

    assert (rows[rule].overrides_this_week, rows[rule].flagged) == (THRESHOLD, True)
    assert (rows[gb_rule].overrides_this_week, rows[gb_rule].flagged) == (THRESHOLD - 1, False)


def test_rule_rows_use_the_threshold_from_settings(rule, partners, ops_person, settings):
    settings.HANDOFF = {**settings.HANDOFF, "OVERRIDE_FLAG_THRESHOLD": 1}
    wednesday = MONDAY_W47 + dt.timedelta(days=2)
    override(routed(LeadFactory(lifecycle_stage="mql")), to=partners, by=ops_person, at=wednesday)

    (row,) = rule_rows(now=wednesday)

    assert row.flagged is True


def test_rule_rows_for_one_owner_list_only_their_rules(rule, gb_rule, sales):
    someone_else = UserFactory(username="sam")
    theirs = RuleFactory(owner=someone_else, queue=sales)

    assert [row.rule for row in rule_rows(owner=someone_else)] == [theirs]
