"""A weekly sign-off covers the rule as it was when signed: a later draft edit, promotion, forced change or
rollback reopens it. Reopened rules show as "changed since sign-off" (with what and when) on the rules list,
"My rules" (first) and the Monday checklist, count as unsigned for the reminder, and may be signed again."""

import datetime as dt

import pytest
import time_machine
from django.core import mail
from django.urls import reverse

from audit.models import AuditAction, AuditEvent
from routing.governance.backup_owner import rule_backup_owner_set
from routing.governance.models import RuleSignOff
from routing.governance.reminders import sign_off_reminders_send
from routing.governance.selectors import my_rules, rule_rows, unsigned_production_rules
from routing.governance.services import (
    GovernanceError,
    rule_force_production,
    rule_rollback,
    rule_tests_record,
)
from routing.models import RuleStage
from routing.reports.checklist import monday_checklist
from tests.factories import RuleFactory, UserFactory, promote_live
from tests.governance.helpers import edit, reviewed_sign_off

pytestmark = pytest.mark.django_db

MONDAY = dt.datetime(2026, 11, 16, 9, 0, tzinfo=dt.UTC)  # ISO week 2026-W47
TUESDAY = MONDAY + dt.timedelta(days=1)
WEDNESDAY = MONDAY + dt.timedelta(days=2)
THURSDAY = MONDAY + dt.timedelta(days=3)
NEXT_MONDAY = MONDAY + dt.timedelta(days=7)


@pytest.fixture
def rule(sales, rule_owner):
    with time_machine.travel(MONDAY - dt.timedelta(days=30), tick=False):
        return RuleFactory(name="MQL to sales", owner=rule_owner, queue=sales)


@pytest.fixture
def signed(rule, rule_owner):
    """Signed off on Tuesday of W47."""
    with time_machine.travel(TUESDAY, tick=False):
        reviewed_sign_off(rule=rule, by=rule_owner, comment="Looked fine")
    return rule


def row_of(rule, now=THURSDAY):
    (row,) = rule_rows(rule_id=rule.pk, now=now)
    return row


def test_a_signed_rule_with_no_later_change_stays_signed(signed):
    row = row_of(signed)

    assert (row.signed_this_week, row.reopened, row.changed_since_sign_off) == (True, False, [])
    assert unsigned_production_rules(week=dt.date(2026, 11, 16)) == []


def test_a_draft_edit_after_the_sign_off_reopens_it_naming_the_fields_and_when(signed, partners):
    with time_machine.travel(WEDNESDAY, tick=False):
        edit(signed, description="Now also partners.", queue=partners)

    row = row_of(signed)
    assert (row.signed_this_week, row.reopened) == (False, True)
    [change] = row.changed_since_sign_off
    assert (change.at, change.label, change.by) == (WEDNESDAY, "Draft edited (description, queue)", "rowan")
    assert unsigned_production_rules(week=dt.date(2026, 11, 16)) == [signed]


def test_an_edit_before_the_sign_off_is_covered_by_it(rule, rule_owner):
    with time_machine.travel(MONDAY, tick=False):
        edit(rule, description="Tweaked before review.")
    with time_machine.travel(TUESDAY, tick=False):
        reviewed_sign_off(rule=rule, by=rule_owner)

    assert row_of(rule).signed_this_week is True


def test_edited_and_promoted_after_the_sign_off_lists_the_edit_and_both_promotions(signed):
    with time_machine.travel(WEDNESDAY, tick=True):
        promote_live(signed, sla_minutes=10)

    labels = [change.label for change in row_of(signed, now=THURSDAY).changed_since_sign_off]
    assert labels == [
        "Draft edited (sla_minutes)",
        "Promoted to staging (v2)",
        "Promoted to production (v2)",
    ]


def test_a_forced_change_after_the_sign_off_reopens_it(signed, partners, admin):
    with time_machine.travel(WEDNESDAY, tick=False):
        signed.queue = partners
        signed.save()  # an admin's fix, straight in the draft, then forced
        rule_force_production(rule=signed, by=admin, reason="Sales offsite")

    changes = row_of(signed).changed_since_sign_off
    assert [c.label for c in changes] == ["Draft edited (queue)", "Forced into production by an admin (v2)"]
    assert changes[1].by == "ada"


def test_a_rollback_after_the_sign_off_reopens_it(rule, rule_owner):
    with time_machine.travel(MONDAY, tick=True):
        promote_live(rule, sla_minutes=10)
    with time_machine.travel(TUESDAY, tick=False):
        reviewed_sign_off(rule=rule, by=rule_owner)
    with time_machine.travel(WEDNESDAY, tick=False):
        rule_rollback(rule=rule, by=rule_owner, comment="Too eager")

    assert [c.label for c in row_of(rule).changed_since_sign_off] == ["Rolled back (v1)"]


def test_running_the_tests_or_naming_a_backup_owner_is_no_change_to_the_signed_rule(signed, rule_owner):
    backup = UserFactory(username="bea")
    backup.groups.add(rule_owner.groups.get(name="rule_owners"))
    with time_machine.travel(WEDNESDAY, tick=False):
        rule_tests_record(rule=signed)
        rule_backup_owner_set(rule=signed, backup_owner=backup, by=rule_owner)

    assert row_of(signed).signed_this_week is True


def test_a_reopened_sign_off_is_signed_again_keeping_both_in_the_audit_trail(signed, rule_owner):
    with time_machine.travel(WEDNESDAY, tick=False):
        edit(signed, description="Changed after review.")
    with time_machine.travel(THURSDAY, tick=False):
        again = reviewed_sign_off(rule=signed, by=rule_owner, comment="Reviewed the change")

    assert RuleSignOff.objects.get() == again  # one row per rule and week, now the later one
    assert (again.at, again.comment) == (THURSDAY, "Reviewed the change")
    first, second = AuditEvent.objects.filter(action=AuditAction.RULE_SIGNED_OFF).order_by("occurred_at")
    assert (first.outcome, first.data["week"], first.data["comment"]) == ("signed off", "2026-W47", "Looked fine")
    assert second.outcome == "signed off again"
    assert second.data["replaces"] == {
        "by": "rowan",
        "at": TUESDAY.isoformat(),
        "production_version": 1,
        "comment": "Looked fine",
    }
    assert second.data["reopened_by"] == [
        {"at": WEDNESDAY.isoformat(), "change": "Draft edited (description)", "by": "rowan"}
    ]
    assert row_of(signed, now=THURSDAY + dt.timedelta(hours=1)).signed_this_week is True
    with pytest.raises(GovernanceError, match="already signed off for 2026-W47"):
        reviewed_sign_off(rule=signed, by=rule_owner, at=THURSDAY + dt.timedelta(hours=2))


def test_the_reminder_counts_a_reopened_sign_off_as_unsigned(signed, rule_owner):
    with time_machine.travel(WEDNESDAY, tick=False):
        edit(signed, description="Changed after review.")

    assert sign_off_reminders_send(now=THURSDAY) == 1
    assert "MQL to sales" in mail.outbox[0].body


def test_my_rules_lists_reopened_rules_first_with_what_changed(client, signed, sales, rule_owner):
    with time_machine.travel(MONDAY - dt.timedelta(days=30), tick=False):
        quiet = RuleFactory(name="Quiet rule", owner=rule_owner, queue=sales, priority=1)
    with time_machine.travel(WEDNESDAY, tick=False):
        edit(signed, description="Changed after review.")

    assert [view.row.rule for view in my_rules(owner=rule_owner, now=THURSDAY)] == [signed, quiet]
    client.force_login(rule_owner)
    with time_machine.travel(THURSDAY, tick=False):
        page = client.get(reverse("console:my-rules")).content.decode()
    section = page[page.index(f'id="rule-{signed.pk}"') :]
    assert "changed since sign-off" in section
    assert "Draft edited (description) 2026-11-18 09:00 by rowan" in section
    assert "Sign off again" in section


def test_the_rules_list_flags_a_reopened_sign_off(client, signed, rule_owner):
    with time_machine.travel(WEDNESDAY, tick=False):
        edit(signed, description="Changed after review.")
    client.force_login(rule_owner)

    with time_machine.travel(THURSDAY, tick=False):
        page = client.get(reverse("console:rules")).content.decode()

    assert "changed since sign-off" in page
    assert 'id="unsigned"' in page


def test_the_checklist_lists_a_rule_edited_and_promoted_after_its_sign_off_first(signed, sales, rule_owner):
    with time_machine.travel(MONDAY - dt.timedelta(days=30), tick=False):
        unsigned = RuleFactory(name="A never signed", owner=rule_owner, queue=sales)
    with time_machine.travel(MONDAY, tick=False):
        edit(unsigned, description="Edited, never signed.")
    with time_machine.travel(WEDNESDAY, tick=True):
        promote_live(signed, sla_minutes=10)

    overrides = monday_checklist(now=NEXT_MONDAY).answers[1]

    assert overrides.ok is False
    assert overrides.summary == "0 rule(s) overridden, 2 changed without sign-off"
    assert overrides.details[0].startswith(
        "MQL to sales: changed since its sign-off that week — Draft edited (sla_minutes) Wed 18 Nov 09:00 by rowan;"
        " Promoted to staging (v2) Wed 18 Nov 09:00"
    )
    assert overrides.details[1] == "A never signed: changed without a sign-off that week"


def test_a_sign_off_after_the_week_s_changes_clears_the_checklist(signed, rule_owner):
    with time_machine.travel(WEDNESDAY, tick=False):
        edit(signed, description="Changed after review.")
    with time_machine.travel(THURSDAY, tick=False):
        reviewed_sign_off(rule=signed, by=rule_owner)

    assert monday_checklist(now=NEXT_MONDAY).answers[1].ok is True


def test_the_rules_list_reads_reopened_sign_offs_in_the_same_queries_for_3_or_30_rules(
    client, sales, rule_owner, django_assert_num_queries
):
    def signed_then_edited(count):
        for _ in range(count):
            with time_machine.travel(MONDAY - dt.timedelta(days=30), tick=False):
                rule = RuleFactory(owner=rule_owner, queue=sales, stage=RuleStage.PRODUCTION)
            with time_machine.travel(TUESDAY, tick=False):
                reviewed_sign_off(rule=rule, by=rule_owner)
            with time_machine.travel(WEDNESDAY, tick=False):
                edit(rule, description="Changed after review.")

    client.force_login(rule_owner)
    signed_then_edited(3)
    # 8 as without sign-offs, plus the promotions and the draft edits after this week's sign-offs, plus the
    # changes awaiting review.
    with time_machine.travel(THURSDAY, tick=False), django_assert_num_queries(11):
        client.get(reverse("console:rules"))
    signed_then_edited(27)
    with time_machine.travel(THURSDAY, tick=False), django_assert_num_queries(11):
        page = client.get(reverse("console:rules")).content.decode()
    assert page.count("changed since sign-off") >= 30
