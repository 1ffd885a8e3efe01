"""Weekly sign-off (rule_sign_off): only the owner, once per rule per ISO week."""

import datetime as dt

import pytest
import time_machine
from django.core.exceptions import PermissionDenied

from audit.models import AuditAction, AuditEvent
from routing.governance.models import RuleSignOff
from routing.governance.services import GovernanceError
from tests.factories import RuleFactory
from tests.governance.helpers import reviewed_sign_off

pytestmark = pytest.mark.django_db

WEDNESDAY_W47 = dt.datetime(2026, 11, 18, 10, 0, tzinfo=dt.UTC)
SUNDAY_LAST_MINUTE_W47 = dt.datetime(2026, 11, 22, 23, 59, 59, tzinfo=dt.UTC)
MONDAY_W48 = dt.datetime(2026, 11, 23, 0, 0, tzinfo=dt.UTC)


@pytest.fixture
def rule(sales, rule_owner):
    with time_machine.travel(WEDNESDAY_W47 - dt.timedelta(days=7), tick=False):  # made before any sign-off
        return RuleFactory(name="MQL to sales", owner=rule_owner, queue=sales)


def test_the_owner_signs_a_rule_off_for_the_iso_week(rule, rule_owner):
    sign_off = reviewed_sign_off(rule=rule, by=rule_owner, comment=" Looked fine. ", at=WEDNESDAY_W47)

    assert (sign_off.week, sign_off.iso_week_label, sign_off.production_version) == (
        dt.date(2026, 11, 16),
        "2026-W47",
        1,
    )
    assert (sign_off.by, sign_off.at, sign_off.comment) == (rule_owner, WEDNESDAY_W47, "Looked fine.")
    event = AuditEvent.objects.get(action=AuditAction.RULE_SIGNED_OFF)
    assert (event.rule, event.actor, event.occurred_at) == (rule, rule_owner, WEDNESDAY_W47)
    assert (event.data["week"], event.data["comment"]) == ("2026-W47", "Looked fine.")
    assert event.data["covers"] == sign_off.covers  # the change set signed: tests/governance/test_review.py


def test_a_second_sign_off_in_the_same_iso_week_is_refused_naming_the_week(rule, rule_owner):
    reviewed_sign_off(rule=rule, by=rule_owner, at=WEDNESDAY_W47)

    with pytest.raises(GovernanceError) as refused:
        reviewed_sign_off(rule=rule, by=rule_owner, at=SUNDAY_LAST_MINUTE_W47)

    assert str(refused.value) == "'MQL to sales' is already signed off for 2026-W47 by rowan at 2026-11-18 10:00."
    assert RuleSignOff.objects.count() == 1


def test_a_sign_off_on_the_following_monday_is_allowed(rule, rule_owner):
    reviewed_sign_off(rule=rule, by=rule_owner, at=WEDNESDAY_W47)

    monday = reviewed_sign_off(rule=rule, by=rule_owner, at=MONDAY_W48 + dt.timedelta(hours=9))

    assert (monday.week, monday.iso_week_label) == (dt.date(2026, 11, 23), "2026-W48")


def test_sunday_at_23_59_and_monday_at_midnight_are_different_weeks(rule, rule_owner):
    sunday = reviewed_sign_off(rule=rule, by=rule_owner, at=SUNDAY_LAST_MINUTE_W47)
    monday = reviewed_sign_off(rule=rule, by=rule_owner, at=MONDAY_W48)

    assert [sunday.iso_week_label, monday.iso_week_label] == ["2026-W47", "2026-W48"]


def test_the_iso_week_spans_new_year(rule, rule_owner):
    reviewed_sign_off(rule=rule, by=rule_owner, at=dt.datetime(2026, 12, 31, 12, 0, tzinfo=dt.UTC))

    with pytest.raises(GovernanceError, match="already signed off for 2026-W53"):
        reviewed_sign_off(rule=rule, by=rule_owner, at=dt.datetime(2027, 1, 3, 12, 0, tzinfo=dt.UTC))


def test_each_rule_has_its_own_weekly_sign_off(rule, sales, rule_owner):
    other = RuleFactory(owner=rule_owner, queue=sales)

    reviewed_sign_off(rule=rule, by=rule_owner, at=WEDNESDAY_W47)
    reviewed_sign_off(rule=other, by=rule_owner, at=WEDNESDAY_W47)

    assert RuleSignOff.objects.filter(week=dt.date(2026, 11, 16)).count() == 2


@pytest.mark.parametrize("persona", ["admin", "ops_person", "outsider"])
def test_only_the_owner_may_sign_off_even_an_admin_may_not(rule, persona, request):
    with pytest.raises(PermissionDenied, match=r"Only the rule's owner \(rowan\) signs 'MQL to sales' off."):
        reviewed_sign_off(rule=rule, by=request.getfixturevalue(persona), at=WEDNESDAY_W47)
    assert not RuleSignOff.objects.exists()
