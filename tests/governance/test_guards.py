"""Guards found in review: who may edit drafts and start replays (in the services, not only the screens),
an owner a versioned rule cannot lose, forcing needs an SLA, evidence must match the candidate set exactly,
and a reminder whose email failed is sent again."""

import datetime as dt

import pytest
from django.core import mail
from django.core.exceptions import PermissionDenied
from django.core.mail.backends.base import BaseEmailBackend
from rest_framework.test import APIClient

from routing.governance.models import SignOffReminder
from routing.governance.reminders import sign_off_reminders_send
from routing.governance.replay import replay_request
from routing.governance.services import (
    GovernanceError,
    RuleDraftError,
    evidence_replay,
    rule_draft_save,
    rule_force_production,
)
from routing.models import RuleStage
from tests.factories import RuleFactory, case
from tests.governance.helpers import replay, stage

pytestmark = pytest.mark.django_db


class FailingEmailBackend(BaseEmailBackend):
    """An SMTP server that is down: outside the product, so faked here."""

    def send_messages(self, messages):
        raise ConnectionRefusedError("SMTP server unreachable")


def test_a_staff_member_who_is_not_the_owner_cannot_save_the_draft(rule_owner, ops_person):
    rule = RuleFactory(owner=rule_owner)
    rule.owner = ops_person  # e.g. through the admin, to make themselves owner and promote
    with pytest.raises(PermissionDenied, match="Only the rule's owner or an admin edits"):
        rule_draft_save(rule=rule, by=ops_person)


def test_only_rule_owners_and_admins_create_rules(ops_person, rule_owner, sales):
    draft = RuleFactory.build(owner=ops_person, queue=sales, stage=RuleStage.DRAFT)
    with pytest.raises(PermissionDenied, match="Only rule owners and admins create rules."):
        rule_draft_save(rule=draft, by=ops_person)
    draft.owner = rule_owner
    assert rule_draft_save(rule=draft, by=rule_owner).pk is not None


def test_a_rule_with_versions_cannot_lose_its_owner(rule_owner):
    rule = RuleFactory(owner=rule_owner)
    rule.owner = None
    with pytest.raises(RuleDraftError, match="a rule with versions keeps a named owner"):
        rule_draft_save(rule=rule, by=rule_owner)


def test_ops_people_cannot_start_replays_by_service_or_api(ops_person):
    with pytest.raises(PermissionDenied, match="Only rule owners and admins run replays."):
        replay_request(by=ops_person)
    client = APIClient()
    client.force_authenticate(ops_person)
    assert client.post("/api/v1/rules/replay/", {}, format="json").status_code == 403


def test_forcing_a_draft_without_an_sla_is_refused_not_a_crash(rule_owner, admin, partners):
    rule = RuleFactory(owner=rule_owner)
    rule.queue, rule.sla_minutes = partners, None
    rule_draft_save(rule=rule, by=admin)
    with pytest.raises(GovernanceError, match="Set the SLA first"):
        rule_force_production(rule=rule, by=admin, reason="Urgent")


def test_evidence_must_be_a_replay_of_exactly_the_current_candidate_set(rule_owner, sales, uk):
    first = stage(
        RuleFactory(owner=rule_owner, stage=RuleStage.DRAFT, queue=sales),
        test_cases=[case("MQL", "Sales", lifecycle_stage="mql")],
    )
    run = replay()
    assert evidence_replay(first) == run
    # Another rule staged afterwards changes the candidate set: the earlier replay no longer speaks for it.
    stage(
        RuleFactory(owner=rule_owner, stage=RuleStage.DRAFT, queue=uk),
        test_cases=[case("MQL", "UK", lifecycle_stage="mql")],
    )
    assert evidence_replay(first) is None
    assert replay() == evidence_replay(first)


def test_a_reminder_whose_email_failed_is_sent_on_the_next_tick(rule_owner, settings):
    RuleFactory(name="Live", owner=rule_owner)
    monday = dt.datetime(2026, 11, 16, 8, 0, tzinfo=dt.UTC)
    settings.EMAIL_BACKEND = f"{__name__}.FailingEmailBackend"
    assert sign_off_reminders_send(now=monday) == 0
    assert not SignOffReminder.objects.exists()
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    assert sign_off_reminders_send(now=monday + dt.timedelta(hours=1)) == 1
    assert [m.to for m in mail.outbox] == [[rule_owner.email]]
