"""The Monday sign-off reminder (reminders.sign_off_reminders_send): one email per owner per week, naming
their production rules without a sign-off."""

import datetime as dt

import pytest
import time_machine
from django.core import mail

from routing.governance.models import SignOffReminder
from routing.governance.reminders import sign_off_reminders_send
from routing.models import RuleStage
from tests.factories import RuleFactory, UserFactory
from tests.governance.helpers import reviewed_sign_off

pytestmark = pytest.mark.django_db

MONDAY_W47 = dt.datetime(2026, 11, 16, 8, 0, tzinfo=dt.UTC)


@pytest.fixture
def rules(sales, rule_owner):
    """Rowan owns two unsigned production rules, a staged one and a draft; Sam has signed his one off;
    Tess has one unsigned. All made the week before (a change after a sign-off would reopen it)."""
    with time_machine.travel(MONDAY_W47 - dt.timedelta(days=3), tick=False):
        sam, tess = UserFactory(username="sam"), UserFactory(username="tess")
        signed = RuleFactory(name="Sam's signed rule", owner=sam, queue=sales)
        made = {
            "rowan": [
                RuleFactory(name="MQL to sales", owner=rule_owner, queue=sales),
                RuleFactory(name="Enterprise to sales", owner=rule_owner, queue=sales),
                RuleFactory(name="Staged only", owner=rule_owner, queue=sales, stage=RuleStage.STAGING),
                RuleFactory(name="Draft only", owner=rule_owner, queue=sales, stage=RuleStage.DRAFT),
            ],
            "sam": [signed],
            "tess": [RuleFactory(name="Tess's rule", owner=tess, queue=sales)],
        }
    reviewed_sign_off(rule=signed, by=sam, at=MONDAY_W47 - dt.timedelta(hours=1))
    return made


def test_each_owner_with_unsigned_production_rules_is_emailed_once_listing_them(rules):
    sent = sign_off_reminders_send(now=MONDAY_W47)

    assert sent == 2
    emails = {message.to[0]: message for message in mail.outbox}
    assert sorted(emails) == ["rowan@example.com", "tess@example.com"]
    rowan = emails["rowan@example.com"]
    assert rowan.subject == "[Handoff] 2 rule(s) to sign off for 2026-W47"
    assert "  - Enterprise to sales\n  - MQL to sales\n" in rowan.body
    assert "Staged only" not in rowan.body and "Draft only" not in rowan.body
    assert "/console/" in rowan.body
    assert emails["tess@example.com"].subject == "[Handoff] 1 rule(s) to sign off for 2026-W47"
    assert "  - Tess's rule\n" in emails["tess@example.com"].body


def test_sending_reminders_twice_in_a_week_sends_nothing_more(rules):
    sign_off_reminders_send(now=MONDAY_W47)

    assert sign_off_reminders_send(now=MONDAY_W47 + dt.timedelta(hours=1)) == 0
    assert sign_off_reminders_send(now=MONDAY_W47 + dt.timedelta(days=6, hours=15)) == 0
    assert len(mail.outbox) == 2
    assert SignOffReminder.objects.count() == 2


def test_an_owner_who_signed_everything_gets_nothing(rules, rule_owner):
    for rule in rules["rowan"][:2]:
        reviewed_sign_off(rule=rule, by=rule_owner, at=MONDAY_W47 - dt.timedelta(minutes=5))

    sign_off_reminders_send(now=MONDAY_W47)

    assert [message.to for message in mail.outbox] == [["tess@example.com"]]


def test_the_next_week_brings_a_new_reminder(rules):
    sign_off_reminders_send(now=MONDAY_W47)
    sent = sign_off_reminders_send(now=MONDAY_W47 + dt.timedelta(days=7))

    assert sent == 3  # last week's sign-off of Sam's rule does not cover this week
    assert mail.outbox[-1].subject.endswith("for 2026-W48")


def test_an_owner_without_an_email_address_is_skipped(sales):
    RuleFactory(owner=UserFactory(username="noemail", email=""), queue=sales)

    assert sign_off_reminders_send(now=MONDAY_W47) == 0
    assert mail.outbox == []
