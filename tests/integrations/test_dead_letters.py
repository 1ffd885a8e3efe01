"""Dead letters: finding them by target, error and age, replaying them (audited, once), the replay success rate,
the console screen and who may use it, and `manage.py replay_dead_letters`.

Dead letters are made the way production makes them: a due outbox row attempted against a real local HTTP
server that answers with an error retrying cannot fix, or keeps failing until the attempts run out."""

import datetime as dt
from io import StringIO

import pytest
import time_machine
from django.core.management import CommandError, call_command
from django.urls import reverse
from django.utils import timezone

from audit.models import AuditAction, AuditEvent
from exceptions.models import ExceptionItem, ExceptionReason, ExceptionStatus, Resolution
from routing.integrations.deadletter import dead_letters, dead_letters_replay, replay_outcomes
from routing.integrations.delivery import event_deliver
from routing.integrations.models import OutboxEvent, OutboxStatus
from tests.factories import DeliveryTargetFactory, LeadFactory, OutboxEventFactory
from tests.integrations.fake_target import status

pytestmark = pytest.mark.django_db

URL = "/console/dead-letters/"


@pytest.fixture
def crm(fake_target):
    return DeliveryTargetFactory(name="CRM", url=fake_target.url)


@pytest.fixture
def mailer(fake_target):
    return DeliveryTargetFactory(name="Mailer", url=fake_target.url)


def dead_letter(fake_target, target, *answers, hours_ago: float = 0, **fields) -> OutboxEvent:
    """A due event for `target`, attempted until it settles while the server gives `answers` (422 by default),
    `hours_ago` in the past; it must end dead-lettered."""
    fake_target.script += list(answers) or [status(422)]
    with time_machine.travel(timezone.now() - dt.timedelta(hours=hours_ago), tick=True):
        event = OutboxEventFactory(target=target, **fields)
        while event.status == OutboxStatus.PENDING:
            OutboxEvent.objects.filter(pk=event.pk).update(next_attempt_at=timezone.now())  # skip the backoff
            event = event_deliver(event_id=event.pk)
    assert event.status == OutboxStatus.DEAD, event
    return event


def ids(events) -> list[int]:
    return [e.pk for e in events]


@pytest.fixture
def three_dead(fake_target, crm, mailer):
    """CRM: a 422 three hours ago and a 410 just now; Mailer: a 422 just now."""
    old = dead_letter(fake_target, crm, status(422), hours_ago=3)
    gone = dead_letter(fake_target, crm, status(410))
    mailer_422 = dead_letter(fake_target, mailer, status(422))
    return old, gone, mailer_422


# --- the selector ---------------------------------------------------------------------------------------


def test_dead_letters_lists_only_dead_events_newest_first(three_dead, crm):
    old, gone, mailer_422 = three_dead
    OutboxEventFactory(target=crm)  # pending
    OutboxEventFactory(target=crm, status=OutboxStatus.DELIVERED, delivered_at=timezone.now())

    assert ids(dead_letters()) == [mailer_422.pk, gone.pk, old.pk]


def test_dead_letters_filter_by_target_error_text_and_age(three_dead, crm, mailer):
    old, gone, mailer_422 = three_dead

    assert ids(dead_letters(target_id=crm.pk)) == [gone.pk, old.pk]
    assert ids(dead_letters(target_id=mailer.pk)) == [mailer_422.pk]
    assert ids(dead_letters(error="http 410")) == [gone.pk]  # any case
    assert ids(dead_letters(error="HTTP 422")) == [mailer_422.pk, old.pk]
    assert ids(dead_letters(older_than_hours=2)) == [old.pk]
    assert ids(dead_letters(older_than_hours=4)) == []
    assert ids(dead_letters(target_id=crm.pk, error="422", older_than_hours=0)) == [old.pk]


# --- replay ---------------------------------------------------------------------------------------------


def test_a_replay_resets_the_event_to_pending_with_fresh_attempts_and_is_audited(fake_target, crm, ops_person):
    crm.max_attempts = 2
    crm.save()
    event = dead_letter(fake_target, crm, status(503), status(503))
    assert (event.attempts, event.last_error) == (2, "HTTP 503 Service Unavailable (answer of 21 bytes not shown)")

    assert dead_letters_replay(event_ids=[event.pk], by=ops_person) == [event.pk]

    event.refresh_from_db()
    assert (event.status, event.attempts, event.replays, event.dead_at) == (OutboxStatus.PENDING, 0, 1, None)
    assert event.next_attempt_at <= timezone.now()
    (audit,) = AuditEvent.objects.filter(action=AuditAction.DELIVERY_REPLAYED)
    assert (audit.actor, audit.outcome) == (ops_person, "replayed")
    assert audit.data == {"event_id": event.pk, "target": "CRM", "last_error": event.last_error}


def test_a_replayed_event_is_sent_again_with_the_same_key_and_its_receipts_say_replay(fake_target, crm, ops_person):
    event = dead_letter(fake_target, crm, status(422))
    dead_letters_replay(event_ids=[event.pk], by=ops_person)

    event = event_deliver(event_id=event.pk)  # what the worker does with the replay's publish

    assert (event.status, event.attempts, event.last_error) == (OutboxStatus.DELIVERED, 1, "")
    assert [(r.number, r.status_code, r.replay) for r in event.receipts.all()] == [(1, 422, False), (2, 200, True)]
    assert {r.message_id for r in fake_target.received} == {str(event.idempotency_key)}


def test_a_delivered_replay_resolves_the_delivery_failed_item_its_dead_letter_opened(fake_target, crm, ops_person):
    lead = LeadFactory()
    event = dead_letter(fake_target, crm, status(422), lead=lead)
    item = ExceptionItem.objects.get(lead=lead, reason=ExceptionReason.DELIVERY_FAILED)
    assert item.status == ExceptionStatus.OPEN

    dead_letters_replay(event_ids=[event.pk], by=ops_person)
    event_deliver(event_id=event.pk)

    item.refresh_from_db()
    assert (item.status, item.resolution, item.resolved_by) == (
        ExceptionStatus.RESOLVED,
        Resolution.FIXED_UPSTREAM,
        None,
    )
    assert f"Event {event.pk} was delivered on a replay" in item.resolution_note
    resolved = AuditEvent.objects.get(exception=item, action=AuditAction.EXCEPTION_RESOLVED)
    assert resolved.actor is None and resolved.data["resolution"] == "fixed_upstream"


def test_an_item_standing_for_two_failed_events_waits_for_both(fake_target, crm, mailer, ops_person):
    lead = LeadFactory()
    to_crm = dead_letter(fake_target, crm, status(422), lead=lead)
    to_mailer = dead_letter(fake_target, mailer, status(422), lead=lead)
    item = ExceptionItem.objects.get(lead=lead, reason=ExceptionReason.DELIVERY_FAILED)

    dead_letters_replay(event_ids=[to_crm.pk], by=ops_person)
    event_deliver(event_id=to_crm.pk)
    item.refresh_from_db()
    assert item.status == ExceptionStatus.OPEN  # the mailer's event is still dead

    dead_letters_replay(event_ids=[to_mailer.pk], by=ops_person)
    event_deliver(event_id=to_mailer.pk)
    item.refresh_from_db()
    assert item.status == ExceptionStatus.RESOLVED


def test_replaying_the_same_ids_twice_replays_them_once(three_dead, ops_person, rule_owner):
    old, gone, _ = three_dead

    assert sorted(dead_letters_replay(event_ids=[old.pk, gone.pk], by=ops_person)) == sorted([old.pk, gone.pk])
    assert dead_letters_replay(event_ids=[old.pk, gone.pk], by=rule_owner) == []

    assert sorted(OutboxEvent.objects.filter(replays__gt=0).values_list("replays", flat=True)) == [1, 1]
    assert AuditEvent.objects.filter(action=AuditAction.DELIVERY_REPLAYED).count() == 2


def test_only_dead_events_are_replayed(fake_target, crm, ops_person):
    pending = OutboxEventFactory(target=crm)
    delivered = OutboxEventFactory(target=crm, status=OutboxStatus.DELIVERED, delivered_at=timezone.now())

    assert dead_letters_replay(event_ids=[pending.pk, delivered.pk, 999_999], by=ops_person) == []
    assert not AuditEvent.objects.filter(action=AuditAction.DELIVERY_REPLAYED).exists()


def test_replay_outcomes_count_settled_replays_and_give_the_success_rate(fake_target, crm, ops_person):
    assert replay_outcomes()["success_rate"] is None  # nothing replayed yet
    fixed, still_bad, waiting, never_replayed = (dead_letter(fake_target, crm) for _ in range(4))
    dead_letters_replay(event_ids=[fixed.pk, still_bad.pk, waiting.pk], by=ops_person)
    assert replay_outcomes() | {"success_rate": None} == {
        "replayed": 3,
        "delivered": 0,
        "pending": 3,
        "dead": 0,
        "success_rate": None,  # none settled yet
    }

    fake_target.script = [status(200), status(422)]
    event_deliver(event_id=fixed.pk)
    event_deliver(event_id=still_bad.pk)

    assert replay_outcomes() == {"replayed": 3, "delivered": 1, "pending": 1, "dead": 1, "success_rate": 0.5}


# --- the console screen ---------------------------------------------------------------------------------


def test_the_route_is_console_dead_letters():
    assert reverse("console:dead-letters") == URL


def test_an_ops_person_sees_the_dead_letters_and_the_replay_rate(client, ops_person, three_dead, fake_target, crm):
    old, gone, mailer_422 = three_dead
    dead_letters_replay(event_ids=[dead_letter(fake_target, crm).pk], by=ops_person)
    fake_target.script = [status(200)]
    event_deliver(event_id=OutboxEvent.objects.get(replays=1).pk)
    client.force_login(ops_person)

    response = client.get(URL)

    assert response.status_code == 200
    assert ids(response.context["page"]) == [mailer_422.pk, gone.pk, old.pk]
    html = response.content.decode()
    assert "HTTP 410 Gone (answer of 21 bytes not shown)" in html  # the status, never the target's body
    assert '<strong id="replay-rate">100%</strong> (1 delivered, 0 dead again)' in html


def test_the_screen_filters_by_target_error_and_age(client, ops_person, three_dead, crm):
    old, gone, _ = three_dead
    client.force_login(ops_person)

    def listed(**query):
        response = client.get(URL, query)
        assert response.status_code == 200
        return ids(response.context["page"])

    assert listed(target=crm.pk) == [gone.pk, old.pk]
    assert listed(error="410") == [gone.pk]
    assert listed(older_than_hours="2") == [old.pk]
    assert listed(target=crm.pk, error="nothing like this") == []


def test_the_list_takes_a_fixed_number_of_queries(client, ops_person, fake_target, crm, django_assert_max_num_queries):
    """Twelve dead letters with their leads, six of them replayed and dead again (so in both lists, with
    receipts): no query per row."""
    events = [dead_letter(fake_target, crm, lead=LeadFactory()) for _ in range(12)]
    dead_letters_replay(event_ids=ids(events[:6]), by=ops_person)
    fake_target.script = [status(422)] * 6
    assert {event_deliver(event_id=e.pk).status for e in events[:6]} == {OutboxStatus.DEAD}
    client.force_login(ops_person)

    with django_assert_max_num_queries(11):  # + the staff banner's count of queues without owner
        response = client.get(URL)

    assert response.status_code == 200 and response.context["total"] == 12


def test_an_ops_person_replays_the_selected_dead_letters(client, ops_person, three_dead):
    old, gone, mailer_422 = three_dead
    client.force_login(ops_person)

    response = client.post(URL, {"scope": "selected", "events": [old.pk, mailer_422.pk]})

    assert response.status_code == 302 and response["Location"] == URL + "#replayed"
    page = client.get(URL)
    assert "Replaying 2 event(s); their outcome shows below." in page.content.decode()
    assert ids(page.context["page"]) == [gone.pk]
    assert sorted(ids(page.context["replayed"])) == sorted([old.pk, mailer_422.pk])


def test_selecting_events_someone_else_replayed_says_how_many_were_skipped(client, ops_person, three_dead):
    old, gone, _ = three_dead
    dead_letters_replay(event_ids=[old.pk], by=ops_person)
    client.force_login(ops_person)

    response = client.post(URL, {"scope": "selected", "events": [old.pk, gone.pk]}, follow=True)

    assert (
        "Replaying 1 event(s); their outcome shows below. 1 were no longer dead-lettered (replayed by someone else)."
        in response.content.decode()
    )


def test_an_ops_person_replays_everything_matching_the_filter(client, ops_person, three_dead, crm):
    old, gone, mailer_422 = three_dead
    client.force_login(ops_person)

    response = client.post(URL, {"scope": "matching", "target": crm.pk, "error": "", "older_than_hours": ""})

    assert response.status_code == 302
    assert "Replaying 2 event(s)" in client.get(URL).content.decode()
    assert ids(dead_letters()) == [mailer_422.pk]
    assert OutboxEvent.objects.get(pk=old.pk).status == OutboxEvent.objects.get(pk=gone.pk).status == "pending"


def test_replaying_with_nothing_selected_replays_nothing_and_says_so(client, ops_person, three_dead):
    client.force_login(ops_person)

    response = client.post(URL, {"scope": "selected"}, follow=True)

    assert "Nothing selected" in response.content.decode()
    assert dead_letters().count() == 3


def test_a_rule_owner_sees_the_list_but_cannot_replay(client, rule_owner, three_dead):
    old, _, _ = three_dead
    client.force_login(rule_owner)

    assert client.get(URL).status_code == 200
    assert client.post(URL, {"scope": "selected", "events": [old.pk]}).status_code == 403
    assert client.post(URL, {"scope": "matching"}).status_code == 403
    assert dead_letters().count() == 3


def test_an_outsider_is_refused_the_screen(client, outsider, three_dead):
    client.force_login(outsider)

    assert client.get(URL).status_code == 403
    assert client.post(URL, {"scope": "matching"}).status_code == 403
    assert dead_letters().count() == 3


def test_a_signed_out_visitor_is_sent_to_sign_in(client):
    response = client.get(URL)

    assert response.status_code == 302 and "login" in response["Location"]


# --- manage.py replay_dead_letters ----------------------------------------------------------------------


def run(*args) -> str:
    out = StringIO()
    call_command("replay_dead_letters", *args, stdout=out)
    return out.getvalue()


def test_the_command_dry_run_lists_what_it_would_replay_and_changes_nothing(three_dead):
    old, gone, _ = three_dead

    out = run("--target", "CRM", "--dry-run")

    assert f"#{gone.pk} lead.assigned → CRM: HTTP 410" in out and f"#{old.pk} lead.assigned → CRM: HTTP 422" in out
    assert "2 dead letter(s) would be replayed (dry run)." in out
    assert dead_letters().count() == 3
    assert not AuditEvent.objects.filter(action=AuditAction.DELIVERY_REPLAYED).exists()


def test_the_command_refuses_an_unknown_target_naming_the_known_ones(three_dead):
    with pytest.raises(CommandError, match=r"No target 'Billing'; targets: CRM, Mailer\."):
        run("--target", "Billing")
    assert dead_letters().count() == 3


def test_the_command_replays_the_matching_dead_letters(three_dead):
    old, gone, mailer_422 = three_dead

    out = run("--target", "CRM", "--error", "422")

    assert "Replaying 1 dead letter(s)." in out
    assert ids(dead_letters()) == [mailer_422.pk, gone.pk]
    old.refresh_from_db()
    assert (old.status, old.replays) == (OutboxStatus.PENDING, 1)
    audit = AuditEvent.objects.get(action=AuditAction.DELIVERY_REPLAYED)
    assert (audit.actor, audit.data["event_id"]) == (None, old.pk)
