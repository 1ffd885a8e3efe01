"""Remediation: after a bad version is rolled back, the leads it decided are listed with where the live rules
send them now, and re-routed in one audited action (both owners told, delivery targets sent lead.reassigned)."""

import datetime as dt
import threading
from io import StringIO

import pytest
from django.core.exceptions import PermissionDenied
from django.core.management import CommandError, call_command
from django.db import connection, connections, transaction
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from audit.models import AuditAction, AuditEvent
from exceptions.models import Notification, NotificationKind
from exceptions.notifications import notifications_send_due
from exceptions.triage import lead_assign_manually
from routing.governance import remediate_views
from routing.governance.remediate import LeadState, SkipReason, leads_reroute, misrouted_leads
from routing.governance.services import rule_rollback
from routing.integrations.models import OutboxEvent
from routing.models import Lead, LeadStatus
from routing.services import leads_route
from tests.factories import DeliveryTargetFactory, LeadFactory, RuleFactory, UserFactory, case, promote_live

pytestmark = pytest.mark.django_db

REASSIGNED = "lead.reassigned"


@pytest.fixture
def rule(sales, rule_owner):
    """In production as v1: MQLs to Sales."""
    return RuleFactory(name="MQL to sales", owner=rule_owner, queue=sales)


def route(count: int) -> list[Lead]:
    leads = [LeadFactory() for _ in range(count)]
    leads_route(lead_ids=[lead.pk for lead in leads], skip_locked=False)
    return list(Lead.objects.filter(pk__in=[lead.pk for lead in leads]).order_by("id"))


@pytest.fixture
def bad_version(rule, partners, rule_owner):
    """v2 sent MQLs to Partners by mistake; it was rolled back to v1 (Sales). Returns v2."""
    promote_live(rule, queue=partners, test_cases=[case("an MQL", "Partners", lifecycle_stage="mql")])
    return rule.versions.get(number=2)


def roll_back(rule):
    rule_rollback(rule=rule, by=rule.owner, comment="v2 misroutes")


def test_the_list_shows_the_bad_versions_leads_with_the_queue_the_live_rules_pick(rule, bad_version, partners):
    leads = route(3)
    assert {lead.queue for lead in leads} == {partners}
    roll_back(rule)

    found = misrouted_leads(version=bad_version)

    assert found.count == 3
    assert [(row.id, row.queue, row.assignee, row.new_queue, row.new_version) for row in found.rows] == [
        (lead.pk, "Partners", "pia", "Sales", 1) for lead in leads
    ]


def test_newest_checks_only_the_versions_newest_leads_and_says_so(rule, bad_version):
    leads = route(5)
    roll_back(rule)

    some = misrouted_leads(version=bad_version, newest=3)
    every = misrouted_leads(version=bad_version, newest=5)

    assert [row.id for row in some.rows] == [lead.pk for lead in leads[2:]]
    assert not some.checked_all
    assert every.count == 5 and every.checked_all


def test_the_version_page_says_when_it_checked_only_the_newest_leads(
    client, rule, bad_version, rule_owner, monkeypatch
):
    route(3)
    roll_back(rule)
    client.force_login(rule_owner)
    assert 'id="checked-newest"' not in client.get(page_url(bad_version)).content.decode()

    monkeypatch.setattr(remediate_views, "PAGE_CHECKS", 2)
    page = client.get(page_url(bad_version)).content.decode()

    assert 'id="checked-newest"' in page
    assert 'id="misrouted-count">2<' in page


def test_the_live_version_lists_nothing(rule, bad_version):
    route(2)

    assert misrouted_leads(version=bad_version).count == 0  # v2 is still live: its leads are where it sends them


def test_reroute_moves_the_leads_to_the_live_queue_with_a_new_decision(rule, bad_version, sales, rule_owner):
    leads = route(2)
    roll_back(rule)

    result = leads_reroute(version=bad_version, by=rule_owner)

    assert [row.id for row in result.moved] == [lead.pk for lead in leads]
    assert result.skipped == {}
    moved = Lead.objects.filter(pk__in=[lead.pk for lead in leads]).select_related("assignee").order_by("id")
    assert [(lead.queue, lead.status, lead.rule_id, lead.rule_version) for lead in moved] == [
        (sales, LeadStatus.ASSIGNED, rule.pk, 1)
    ] * 2
    assert sorted(lead.assignee.username for lead in moved) == ["alan", "bea"]  # the queue's rotation


def test_reroute_notifies_the_previous_and_the_new_owners(rule, bad_version, rule_owner):
    route(2)
    roll_back(rule)

    leads_reroute(version=bad_version, by=rule_owner)

    notes = Notification.objects.filter(kind=NotificationKind.REASSIGNED).select_related("recipient", "queue")
    assert sorted((n.recipient.username, n.queue.name, n.item_count, n.key.split(":")[2]) for n in notes) == [
        ("alan", "Sales", 1, "to"),
        ("bea", "Sales", 1, "to"),
        ("pia", "Partners", 2, "from"),
    ]


def test_the_owners_emails_say_which_leads_were_taken_and_given(rule, bad_version, rule_owner, mailoutbox):
    route(2)
    roll_back(rule)
    leads_reroute(version=bad_version, by=rule_owner)

    notifications_send_due(now=timezone.now() + dt.timedelta(days=7))  # past any queue's opening

    bodies = {message.to[0].split("@")[0]: message.body for message in mailoutbox}
    assert "Leads reassigned: 2 lead(s) in Partners taken from you and re-routed." in bodies["pia"]
    assert "Leads reassigned: 1 lead(s) in Sales re-routed to you." in bodies["alan"]


def test_reroute_sends_lead_reassigned_to_delivery_targets(rule, bad_version, rule_owner):
    target = DeliveryTargetFactory()
    leads = route(2)
    roll_back(rule)

    leads_reroute(version=bad_version, by=rule_owner)

    events = OutboxEvent.objects.filter(event_type=REASSIGNED, target=target).order_by("lead_id")
    assert [e.lead_id for e in events] == [lead.pk for lead in leads]
    data = events[0].payload["data"]
    assert (data["from"]["queue"], data["from"]["assignee"]["username"], data["to"]["queue"]) == (
        "Partners",
        "pia",
        "Sales",
    )
    assert data["by"]["username"] == "rowan"


def test_reroute_is_audited_as_one_action_and_per_lead(rule, bad_version, rule_owner):
    leads = route(2)
    roll_back(rule)

    result = leads_reroute(version=bad_version, by=rule_owner)

    action = AuditEvent.objects.get(action=AuditAction.LEAD_REROUTED, lead=None)
    assert (action.pk, action.actor, action.rule_id, action.rule_version, action.outcome) == (
        result.event_id,
        rule_owner,
        rule.pk,
        2,
        "remediated",
    )
    assert action.data["moved"] == 2
    per_lead = AuditEvent.objects.filter(action=AuditAction.LEAD_REROUTED, lead__isnull=False).order_by("lead_id")
    assert [
        (e.lead_id, e.actor, e.rule_version, e.data["before"]["queue"], e.data["after"]["queue"]) for e in per_lead
    ] == [(lead.pk, rule_owner, 1, "Partners", "Sales") for lead in leads]
    assert {e.data["remediation_event"] for e in per_lead} == {action.pk}


def test_running_it_again_moves_nothing(rule, bad_version, rule_owner):
    DeliveryTargetFactory()
    route(2)
    roll_back(rule)
    leads_reroute(version=bad_version, by=rule_owner)
    outbox, notes = OutboxEvent.objects.count(), Notification.objects.count()

    again = leads_reroute(version=bad_version, by=rule_owner)

    assert (again.moved, again.skipped) == ([], {})
    assert misrouted_leads(version=bad_version).count == 0
    assert (OutboxEvent.objects.count(), Notification.objects.count()) == (outbox, notes)


def test_a_lead_moved_by_hand_meanwhile_is_left_alone_and_listed_as_such(
    rule, bad_version, rule_owner, partners, admin
):
    by_hand, other = route(2)
    roll_back(rule)
    lead_assign_manually(lead=by_hand, queue=partners, assignee=admin, reason="Key account", by=admin)

    found = misrouted_leads(version=bad_version)
    assert [row.id for row in found.of(LeadState.REROUTE)] == [other.pk]
    assert [row.id for row in found.of(LeadState.MOVED_BY_HAND)] == [by_hand.pk]

    result = leads_reroute(version=bad_version, by=rule_owner)

    assert [row.id for row in result.moved] == [other.pk]
    assert result.skipped == {SkipReason.MOVED_BY_HAND: [by_hand.pk]}
    by_hand.refresh_from_db()
    assert (by_hand.queue, by_hand.assignee) == (partners, admin)


def test_only_the_selected_leads_move(rule, bad_version, rule_owner, partners):
    first, second = route(2)
    roll_back(rule)

    result = leads_reroute(version=bad_version, by=rule_owner, lead_ids=[second.pk])

    assert [row.id for row in result.moved] == [second.pk]
    first.refresh_from_db()
    assert first.queue == partners


def test_someone_who_does_not_own_the_rule_is_refused(rule, bad_version, ops_person):
    route(1)
    roll_back(rule)

    with pytest.raises(PermissionDenied, match=r"Only the rule's owner \(rowan\) or an admin can re-route"):
        leads_reroute(version=bad_version, by=ops_person)
    assert not AuditEvent.objects.filter(action=AuditAction.LEAD_REROUTED).exists()


def test_a_lead_someone_else_holds_is_skipped_not_waited_for(transactional_db, rule, bad_version, rule_owner):
    held, free = route(2)
    roll_back(rule)
    locked, release = threading.Event(), threading.Event()

    def hold():
        try:
            with transaction.atomic():
                Lead.objects.select_for_update().get(pk=held.pk)
                locked.set()
                release.wait(10)
        finally:
            connections.close_all()

    worker = threading.Thread(target=hold)
    worker.start()
    try:
        assert locked.wait(10)
        result = leads_reroute(version=bad_version, by=rule_owner)
    finally:
        release.set()
        worker.join()

    assert [row.id for row in result.moved] == [free.pk]
    assert result.skipped == {SkipReason.BUSY: [held.pk]}
    assert [row.id for row in misrouted_leads(version=bad_version).rows] == [held.pk]  # still listed, for next time


# The console


def page_url(version):
    return reverse("console:rule-version", args=[version.rule_id, version.number])


def reroute_url(version):
    return reverse("console:rule-version-reroute", args=[version.rule_id, version.number])


def test_the_version_page_lists_the_misrouted_leads_with_checkboxes_for_the_owner(
    client, rule, bad_version, rule_owner
):
    leads = route(2)
    roll_back(rule)
    client.force_login(rule_owner)

    page = client.get(page_url(bad_version)).content.decode()

    assert "v2 was rolled back" in page
    assert 'id="misrouted-count">2<' in page
    for lead in leads:
        assert f'name="lead" value="{lead.pk}"' in page
    assert "Re-route all 2" in page


def test_ops_staff_see_the_list_read_only_and_cannot_reroute(client, rule, bad_version, ops_person):
    (lead,) = route(1)
    roll_back(rule)
    client.force_login(ops_person)

    page = client.get(page_url(bad_version)).content.decode()
    assert lead.lead_id in page and 'name="lead"' not in page and "Re-route all" not in page

    response = client.post(reroute_url(bad_version), {"scope": "all", "confirm": "yes"})
    assert response.status_code == 403
    assert "Only the rule&#x27;s owner (rowan) or an admin can re-route" in response.content.decode()
    lead.refresh_from_db()
    assert lead.queue.name == "Partners"


def test_reroute_all_asks_for_confirmation_then_moves_them(client, rule, bad_version, rule_owner, sales):
    leads = route(3)
    roll_back(rule)
    client.force_login(rule_owner)

    confirm = client.post(reroute_url(bad_version), {"scope": "all"})
    assert confirm.status_code == 200
    assert "Re-route 3 leads" in confirm.content.decode()
    assert Lead.objects.filter(queue=sales).count() == 0  # nothing moved yet

    done = client.post(reroute_url(bad_version), {"scope": "all", "confirm": "yes"}, follow=True)

    assert "Re-routed by the live rules: 3 lead(s) moved." in done.content.decode()
    assert Lead.objects.filter(pk__in=[lead.pk for lead in leads], queue=sales).count() == 3


def test_reroute_selected_reports_what_it_skipped_and_why(client, rule, bad_version, rule_owner, partners, admin):
    by_hand, other = route(2)
    roll_back(rule)
    lead_assign_manually(lead=by_hand, queue=partners, assignee=admin, reason="Key account", by=admin)
    client.force_login(rule_owner)

    done = client.post(
        reroute_url(bad_version), {"scope": "selected", "lead": [by_hand.pk, other.pk], "confirm": "yes"}, follow=True
    )

    assert "1 lead(s) moved, 1 skipped (1 assigned by hand since it was routed)." in done.content.decode()


def test_reroute_selected_with_nothing_ticked_says_what_to_do(client, rule, bad_version, rule_owner):
    route(1)
    roll_back(rule)
    client.force_login(rule_owner)

    done = client.post(reroute_url(bad_version), {"scope": "selected", "confirm": "yes"}, follow=True)

    assert "Tick at least one lead to re-route" in done.content.decode()
    assert not AuditEvent.objects.filter(action=AuditAction.LEAD_REROUTED).exists()


def test_the_version_page_takes_the_same_queries_for_10_and_50_leads(client, rule, bad_version, rule_owner):
    route(10)
    roll_back(rule)
    client.force_login(rule_owner)
    client.get(page_url(bad_version))  # the engine's rule cache warmed, as on any later visit

    with CaptureQueriesContext(connection) as ten:
        assert client.get(page_url(bad_version)).status_code == 200
    more_decided_by_v2(rule, 40)
    with CaptureQueriesContext(connection) as fifty:
        page = client.get(page_url(bad_version))

    assert 'id="misrouted-count">50<' in page.content.decode()
    assert len(fifty) == len(ten)


def more_decided_by_v2(rule, count):
    """Leads v2 decided after the first check: recorded as v2's decision, as a live v2 would have made them."""
    leads = [LeadFactory() for _ in range(count)]
    leads_route(lead_ids=[lead.pk for lead in leads], skip_locked=False)  # v1 routes them to Sales
    Lead.objects.filter(pk__in=[lead.pk for lead in leads]).update(
        rule_version=2, queue=rule.versions.get(number=2).queue
    )


# The command


def test_the_command_dry_run_lists_what_would_move_and_writes_nothing(rule, bad_version):
    leads = route(2)
    roll_back(rule)
    events, notes = AuditEvent.objects.count(), Notification.objects.count()
    out = StringIO()

    call_command("reroute_leads", "--version", "MQL to sales:2", "--dry-run", stdout=out)

    assert "MQL to sales v2: 2 lead(s) would move." in out.getvalue()
    assert f"lead {leads[0].pk} ({leads[0].lead_id}): Partners / pia → Sales" in out.getvalue()
    assert (AuditEvent.objects.count(), Notification.objects.count()) == (events, notes)
    assert set(Lead.objects.values_list("queue__name", flat=True)) == {"Partners"}


def test_the_command_moves_them_as_the_person_named(rule, bad_version, rule_owner):
    route(2)
    roll_back(rule)
    out = StringIO()

    call_command("reroute_leads", "--version", f"{rule.pk}:2", "--as", "rowan", stdout=out)

    assert "2 lead(s) moved." in out.getvalue()
    assert AuditEvent.objects.get(action=AuditAction.LEAD_REROUTED, lead=None).actor == rule_owner


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--version", "MQL to sales:2"], "Name who is re-routing with --as USERNAME"),
        (["--version", "MQL to sales"], "write RULE:N"),
        (["--version", "Nope:1", "--dry-run"], "No rule is named 'Nope'"),
        (["--version", "MQL to sales:7", "--dry-run"], "has no version 7; its versions: v1, v2"),
        (["--version", "MQL to sales:2", "--as", "nobody"], "no active account has that username"),
        (["--version", "MQL to sales:2", "--as", "olga"], "Only the rule's owner (rowan) or an admin"),
    ],
)
def test_the_command_says_what_to_fix(rule, bad_version, ops_person, args, message):
    with pytest.raises(CommandError, match=message.replace("(", r"\(").replace(")", r"\)")):
        call_command("reroute_leads", *args)


def test_the_command_never_records_the_owner_when_someone_else_runs_it(rule, bad_version, admin):
    route(1)
    roll_back(rule)

    call_command("reroute_leads", "--version", "MQL to sales:2", "--as", "ada", stdout=StringIO())

    assert AuditEvent.objects.get(action=AuditAction.LEAD_REROUTED, lead=None).actor == admin


def test_someone_outside_the_console_groups_cannot_open_the_version_page(client, bad_version):
    client.force_login(UserFactory(username="otto"))
    assert client.get(page_url(bad_version)).status_code == 403
