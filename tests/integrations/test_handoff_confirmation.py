"""Handoff confirmation (routing/integrations/handoff.py): a lead is handed off only once every target subscribed
to its assignment confirmed it. Deliveries go to a real local HTTP server (the CRM); a callback target's receiver
is played by the test, which signs its callback with the official Standard Webhooks library, as a receiver would.

Covered: a 2xx confirms a target without callback; a callback target waits for its signed ack (valid, wrong,
stale, missing signature); repeats are idempotent; a receiver's "failed" opens handoff_unconfirmed at once; the
sweep opens one item per lead however often it runs; a late ack resolves it; the lead API, the lead page and
parity show all of it."""

import datetime as dt
import json

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone
from rest_framework.test import APIClient
from standardwebhooks import Webhook

from audit.models import AuditAction, AuditEvent
from exceptions.models import ExceptionItem, ExceptionReason, ExceptionStatus, Resolution
from routing.integrations.delivery import event_deliver
from routing.integrations.handoff import handoffs_unconfirmed_sweep
from routing.integrations.models import OutboxEvent, OutboxStatus
from routing.integrations.signing import secret_generate, whsec_form
from routing.integrations.tasks import handoffs_unconfirmed
from routing.models import Lead, LeadStatus
from routing.reports.parity import parity_reconcile
from routing.services import lead_route
from tests.factories import (
    DeliveryTargetFactory,
    LeadFactory,
    MembershipFactory,
    OutboxEventFactory,
    QueueFactory,
    RuleFactory,
    SourceFactory,
)
from tests.integrations.fake_target import status

pytestmark = pytest.mark.django_db


@pytest.fixture
def sales(db):
    queue = QueueFactory(name="Sales")
    MembershipFactory(queue=queue, user__username="sam")
    RuleFactory(queue=queue)
    return queue


@pytest.fixture
def crm(fake_target):
    """Answers synchronously: its 2xx is the confirmation."""
    return DeliveryTargetFactory(name="CRM", url=fake_target.url, events=["lead.assigned"])


@pytest.fixture
def engage(fake_target):
    """Processes asynchronously and calls back, signed with its secret."""
    return DeliveryTargetFactory(
        name="Engage",
        url=fake_target.url,
        secret=secret_generate(),
        events=["lead.assigned"],
        confirms_by_callback=True,
        confirm_within_minutes=15,
    )


def routed_lead(**fields) -> Lead:
    lead = LeadFactory(**fields)
    lead_route(lead_id=lead.pk)
    lead.refresh_from_db()
    assert lead.status == LeadStatus.ASSIGNED
    return lead


def event_of(lead, target) -> OutboxEvent:
    return OutboxEvent.objects.get(lead=lead, target=target)


def delivered(event) -> OutboxEvent:
    result = event_deliver(event_id=event.pk)
    assert result.status == OutboxStatus.DELIVERED
    return result


def webhook_id_of(event_ref) -> str:
    """The webhook-id the delivery was sent with (what a receiver signs its callback with)."""
    ref = str(event_ref)
    events = OutboxEvent.objects.filter(pk=int(ref)) if ref.isdigit() and len(ref) < 12 else None
    if events is None:
        try:
            events = OutboxEvent.objects.filter(idempotency_key=ref)
        except ValidationError:
            return "callback-1"
    event = events.first()
    return str(event.idempotency_key) if event else "callback-1"


def ack(event_ref, target, body, *, secret=None, at=None, msg_id=None, sign=True):
    """The receiver's callback: the raw body signed with the target's secret by the standardwebhooks library,
    with the delivery's own webhook-id unless told otherwise."""
    raw = json.dumps(body).encode() if not isinstance(body, bytes) else body
    msg_id = msg_id or webhook_id_of(event_ref)
    headers = {}
    if sign:
        at = at or timezone.now()
        signature = Webhook(whsec_form(secret or target.secret)).sign(msg_id, at, raw.decode())
        headers = {
            "HTTP_WEBHOOK_ID": msg_id,
            "HTTP_WEBHOOK_TIMESTAMP": str(int(at.timestamp())),
            "HTTP_WEBHOOK_SIGNATURE": signature,
        }
    return APIClient().post(f"/api/v1/deliveries/{event_ref}/ack/", raw, content_type="application/json", **headers)


def unconfirmed_items(lead):
    return ExceptionItem.objects.filter(lead=lead, reason=ExceptionReason.HANDOFF_UNCONFIRMED)


# Confirming ----------------------------------------------------------------------------------------------------


def test_a_2xx_confirms_a_target_without_callback_and_hands_the_lead_off(sales, crm, fake_target):
    lead = routed_lead()
    assert lead.handed_off_at is None  # sent is not confirmed
    event = delivered(event_of(lead, crm))
    assert event.confirmed_at == event.delivered_at
    assert event.confirmation == {"status_code": 200, "at": event.delivered_at.isoformat()}
    lead.refresh_from_db()
    assert lead.handed_off_at == event.confirmed_at
    (audit,) = AuditEvent.objects.filter(action=AuditAction.HANDOFF_CONFIRMED)
    assert (audit.lead_id, audit.outcome) == (lead.pk, "handed off")


def test_a_5xx_confirms_nothing(sales, crm, fake_target):
    lead = routed_lead()
    fake_target.script = [status(503)]
    event = event_deliver(event_id=event_of(lead, crm).pk)
    assert (event.status, event.confirmed_at) == (OutboxStatus.PENDING, None)
    lead.refresh_from_db()
    assert lead.handed_off_at is None


def test_a_callback_target_is_confirmed_by_its_signed_ack_not_by_its_2xx(sales, engage, fake_target):
    lead = routed_lead()
    event = delivered(event_of(lead, engage))
    assert event.confirmed_at is None
    lead.refresh_from_db()
    assert lead.handed_off_at is None
    # The receiver names the delivery by the webhook-id it was sent.
    (request,) = fake_target.received
    response = ack(request.message_id, engage, {"status": "processed", "reference": "ENG-7", "message": "queued"})
    assert response.status_code == 200, response.json()
    assert response.json() | {"confirmed_at": None} == {
        "id": event.pk,
        "state": "confirmed",
        "confirmed_at": None,
        "repeated": False,
    }
    event.refresh_from_db()
    assert event.confirmed_at is not None
    assert (event.confirmation["status"], event.confirmation["reference"]) == ("processed", "ENG-7")
    lead.refresh_from_db()
    assert lead.handed_off_at == event.confirmed_at


def test_a_lead_is_handed_off_only_when_every_subscribed_target_confirmed(sales, crm, engage, fake_target):
    lead = routed_lead()
    delivered(event_of(lead, crm))
    engaged = delivered(event_of(lead, engage))
    lead.refresh_from_db()
    assert lead.handed_off_at is None  # the CRM confirmed; Engage has not called back
    assert ack(engaged.pk, engage, {"status": "processed"}).status_code == 200
    lead.refresh_from_db()
    assert lead.handed_off_at is not None
    assert AuditEvent.objects.filter(action=AuditAction.HANDOFF_CONFIRMED, lead=lead).count() == 1


def test_an_ack_before_the_2xx_is_recorded_still_counts(sales, engage):
    """A fast receiver may call back while our request is still open: the confirmation is kept."""
    lead = routed_lead()
    event = event_of(lead, engage)
    assert ack(event.pk, engage, {"status": "processed"}).status_code == 200
    event.refresh_from_db()
    assert (event.status, event.confirmed_at is not None) == (OutboxStatus.PENDING, True)


# The callback's signature and body -------------------------------------------------------------------------------


def test_a_callback_signed_with_another_secret_is_401_and_changes_nothing(sales, engage):
    event = event_of(routed_lead(), engage)
    response = ack(event.pk, engage, {"status": "processed"}, secret=secret_generate())
    assert (response.status_code, response.json()) == (
        401,
        {"detail": "The signature does not match the target's secret."},
    )
    event.refresh_from_db()
    assert (event.confirmed_at, event.confirmation) == (None, {})


def test_an_unsigned_callback_is_401_even_with_a_session(sales, engage, ops_person):
    event = event_of(routed_lead(), engage)
    client = APIClient()
    client.force_login(ops_person)  # a console session is no authentication here
    response = client.post(f"/api/v1/deliveries/{event.pk}/ack/", {"status": "processed"}, format="json")
    assert response.status_code == 401
    assert "webhook-signature" in response.json()["detail"]


def test_a_stale_callback_is_401(sales, engage):
    event = event_of(routed_lead(), engage)
    response = ack(event.pk, engage, {"status": "processed"}, at=timezone.now() - dt.timedelta(minutes=6))
    assert response.status_code == 401
    assert "more than 300 s from now" in response.json()["detail"]


def test_a_tampered_body_is_401(sales, engage):
    event = event_of(routed_lead(), engage)
    at = timezone.now()
    signature = Webhook(whsec_form(engage.secret)).sign("m1", at, '{"status": "failed"}')
    response = APIClient().post(
        f"/api/v1/deliveries/{event.pk}/ack/",
        b'{"status": "processed"}',
        content_type="application/json",
        HTTP_WEBHOOK_ID="m1",
        HTTP_WEBHOOK_TIMESTAMP=str(int(at.timestamp())),
        HTTP_WEBHOOK_SIGNATURE=signature,
    )
    assert response.status_code == 401


def test_a_target_without_callback_may_not_call_back(sales, crm):
    event = event_of(routed_lead(), crm)
    response = ack(event.pk, crm, {"status": "processed"})
    assert response.status_code == 403
    assert "confirms deliveries with its 2xx answer" in response.json()["detail"]


def test_an_unknown_delivery_is_404(engage):
    assert ack(999999, engage, {"status": "processed"}).status_code == 404
    assert ack("00000000-0000-0000-0000-000000000000", engage, {"status": "processed"}).status_code == 404
    assert ack("not-a-delivery", engage, {"status": "processed"}).status_code == 404


def test_bad_bodies_are_400_saying_what_to_fix(sales, engage):
    event = event_of(routed_lead(), engage)
    wrong = ack(event.pk, engage, {"status": "done"})
    assert (wrong.status_code, wrong.json()) == (400, {"status": ['"done" is not a valid choice.']})
    assert ack(event.pk, engage, {}).json() == {"status": ["This field is required."]}
    malformed = ack(event.pk, engage, b"{")
    assert malformed.status_code == 400 and malformed.json()["detail"].startswith("Malformed JSON: ")
    long = ack(event.pk, engage, {"status": "processed", "reference": "x" * 201})
    assert long.json() == {"reference": ["Ensure this field has no more than 200 characters."]}
    event.refresh_from_db()
    assert event.confirmed_at is None


def test_the_same_ack_twice_is_200_and_changes_nothing(sales, engage):
    event = delivered(event_of(routed_lead(), engage))
    first = ack(event.pk, engage, {"status": "processed", "reference": "ENG-1"})
    again = ack(event.pk, engage, {"status": "processed", "reference": "ENG-1"})
    assert (first.status_code, again.status_code) == (200, 200)
    assert (first.json()["repeated"], again.json()["repeated"]) == (False, True)
    assert again.json()["confirmed_at"] == first.json()["confirmed_at"]
    assert AuditEvent.objects.filter(action=AuditAction.HANDOFF_CONFIRMED).count() == 1


def test_failed_after_processed_is_409(sales, engage):
    event = delivered(event_of(routed_lead(), engage))
    assert ack(event.pk, engage, {"status": "processed"}).status_code == 200
    response = ack(event.pk, engage, {"status": "failed", "message": "changed my mind"})
    assert response.status_code == 409
    assert "already confirmed as processed" in response.json()["detail"]
    event.refresh_from_db()
    assert event.confirmation["status"] == "processed"


# A receiver that fails, and the sweep ----------------------------------------------------------------------------


def test_a_receiver_reporting_failed_opens_handoff_unconfirmed_at_once(sales, engage):
    lead = routed_lead()
    event = delivered(event_of(lead, engage))
    response = ack(event.pk, engage, {"status": "failed", "message": "Owner sam not found in Engage"})
    assert response.status_code == 200
    assert (response.json()["state"], response.json()["confirmed_at"]) == ("dead", None)
    (item,) = unconfirmed_items(lead)
    assert item.status == ExceptionStatus.OPEN
    assert "Owner sam not found in Engage" in item.detail and f"event {event.pk}" in item.detail
    assert ack(event.pk, engage, {"status": "failed", "message": "again"}).json()["repeated"] is True
    assert unconfirmed_items(lead).count() == 1
    lead.refresh_from_db()
    assert lead.handed_off_at is None


def test_the_sweep_opens_one_item_per_unconfirmed_handoff_however_often_it_runs(sales, crm, engage, fake_target):
    waiting = routed_lead(lead_id="waiting")
    delivered(event_of(waiting, crm))  # confirmed by its 2xx
    delivered(event_of(waiting, engage))  # delivered, no callback
    never_sent = routed_lead(lead_id="never-sent")  # both events still pending
    confirmed = routed_lead(lead_id="confirmed")
    delivered(event_of(confirmed, crm))
    ack(delivered(event_of(confirmed, engage)).pk, engage, {"status": "processed"})
    written = event_of(waiting, engage).created_at

    assert handoffs_unconfirmed_sweep(now=written + dt.timedelta(minutes=14)) == 0  # within the grace
    later = written + dt.timedelta(minutes=16)
    assert handoffs_unconfirmed_sweep(now=later) == 3  # waiting's Engage event, never-sent's two
    assert handoffs_unconfirmed_sweep(now=later + dt.timedelta(minutes=1)) == 0

    (item,) = unconfirmed_items(waiting)
    assert "lead.assigned to Engage" in item.detail and "delivered, no callback" in item.detail
    assert "CRM" not in item.detail  # its 2xx confirmed it
    (both,) = unconfirmed_items(never_sent)
    assert "to CRM" in both.detail and "to Engage" in both.detail and "not delivered yet" in both.detail
    assert not unconfirmed_items(confirmed).exists()
    assert event_of(waiting, engage).unconfirmed_at == later
    assert event_of(waiting, crm).unconfirmed_at is None


def test_a_late_ack_resolves_the_item_by_the_system(sales, engage):
    lead = routed_lead()
    event = delivered(event_of(lead, engage))
    handoffs_unconfirmed_sweep(now=event.created_at + dt.timedelta(minutes=20))
    (item,) = unconfirmed_items(lead)
    assert ack(event.pk, engage, {"status": "processed", "reference": "ENG-9"}).status_code == 200
    item.refresh_from_db()
    assert (item.status, item.resolution, item.resolved_by) == (
        ExceptionStatus.RESOLVED,
        Resolution.FIXED_UPSTREAM,
        None,
    )
    assert f"Event {event.pk} was confirmed late" in item.resolution_note
    lead.refresh_from_db()
    assert lead.handed_off_at is not None


def test_a_late_2xx_resolves_the_item_too(sales, crm, fake_target):
    lead = routed_lead()
    event = event_of(lead, crm)
    handoffs_unconfirmed_sweep(now=event.created_at + dt.timedelta(minutes=20))  # still pending then
    (item,) = unconfirmed_items(lead)
    delivered(event)
    item.refresh_from_db()
    assert item.status == ExceptionStatus.RESOLVED


def test_processed_after_failed_is_the_receivers_retry_and_settles_the_item(sales, engage):
    lead = routed_lead()
    event = delivered(event_of(lead, engage))
    ack(event.pk, engage, {"status": "failed", "message": "CRM locked"})
    assert ack(event.pk, engage, {"status": "processed", "message": "retried"}).json()["state"] == "confirmed"
    (item,) = unconfirmed_items(lead)
    assert item.status == ExceptionStatus.RESOLVED


def test_the_item_stays_while_another_target_is_still_unconfirmed(sales, crm, engage):
    lead = routed_lead()
    engaged = delivered(event_of(lead, engage))
    handoffs_unconfirmed_sweep(now=engaged.created_at + dt.timedelta(minutes=20))  # CRM pending, Engage silent
    ack(engaged.pk, engage, {"status": "processed"})
    (item,) = unconfirmed_items(lead)
    assert item.status == ExceptionStatus.OPEN  # the CRM's handoff is still unconfirmed
    delivered(event_of(lead, crm))
    item.refresh_from_db()
    assert item.status == ExceptionStatus.RESOLVED


# What people see -------------------------------------------------------------------------------------------------


def test_the_lead_api_shows_each_targets_state_and_receipt(sales, crm, engage, fake_target, source_client):
    lead = routed_lead(origin=source_client.source)
    crm_event = delivered(event_of(lead, crm))
    engage_event = delivered(event_of(lead, engage))
    body = source_client.get(f"/api/v1/leads/{lead.pk}/").json()
    assert body["handed_off_at"] is None
    states = {d["target"]: d for d in body["deliveries"]}
    assert states["CRM"]["state"] == "confirmed" and states["CRM"]["receipt"]["status_code"] == 200
    assert (states["Engage"]["state"], states["Engage"]["receipt"], states["Engage"]["confirmed_at"]) == (
        "delivered",
        {},
        None,
    )
    assert states["Engage"]["id"] == engage_event.pk and states["CRM"]["attempts"] == crm_event.attempts == 1

    ack(engage_event.pk, engage, {"status": "processed", "reference": "ENG-3"})
    body = source_client.get(f"/api/v1/leads/{lead.pk}/").json()
    assert body["handed_off_at"] is not None
    engaged = next(d for d in body["deliveries"] if d["target"] == "Engage")
    assert (engaged["state"], engaged["receipt"]["reference"]) == ("confirmed", "ENG-3")


def test_the_lead_api_shows_a_dead_handoff(sales, engage, source_client):
    lead = routed_lead(origin=source_client.source)
    ack(event_of(lead, engage).pk, engage, {"status": "failed", "message": "no owner"})
    (delivery,) = source_client.get(f"/api/v1/leads/{lead.pk}/").json()["deliveries"]
    assert (delivery["state"], delivery["receipt"]["message"]) == ("dead", "no owner")


def test_the_lead_page_says_handed_off_only_once_confirmed(client, ops_person, sales, crm, engage, fake_target):
    client.force_login(ops_person)
    lead = routed_lead()
    delivered(event_of(lead, crm))
    engage_event = delivered(event_of(lead, engage))
    page = client.get(f"/console/leads/{lead.pk}/").content.decode()
    assert "Assigned, handoff pending." in page and "Handed off</strong>" not in page
    assert "HTTP 200" in page and 'class="delivery-delivered"' in page
    ack(engage_event.pk, engage, {"status": "processed", "reference": "ENG-4"})
    page = client.get(f"/console/leads/{lead.pk}/").content.decode()
    assert "<strong>Handed off</strong>" in page and "every target confirmed" in page
    assert "processed (callback): ENG-4" in page


def test_parity_counts_confirmed_handoffs_beside_deliveries(sales, crm, engage, fake_target):
    web = SourceFactory(name="web")
    first, second = routed_lead(origin=web), routed_lead(origin=web)
    for lead in (first, second):
        delivered(event_of(lead, crm))
        delivered(event_of(lead, engage))
    ack(event_of(first, engage).pk, engage, {"status": "processed"})
    day = first.received_at.date()
    report = parity_reconcile(day=day, now=timezone.now())
    (row,) = report.data["origins"]
    assert (row["assigned"], row["handed_off"], row["handoff_gap"]) == (2, 1, 0.5)
    assert row["deliveries"]["Engage"]["delivered"] == 2
    assert row["confirmations"] == {
        "CRM": {"confirmed": 2, "delivered": 2},
        "Engage": {"confirmed": 1, "delivered": 2},
    }
    assert report.data["gaps"] == []  # reported, not flagged: the sweep's items carry the unconfirmed ones


def test_the_lead_api_reads_deliveries_in_one_query_however_many(
    sales, crm, engage, source_client, django_assert_num_queries
):
    lead = routed_lead(origin=source_client.source)
    for target in DeliveryTargetFactory.create_batch(3, events=["lead.assigned"]):
        OutboxEventFactory(lead=lead, target=target)
    # token, lead with origin/queue/assignee/account match, audit events with rules, exceptions, the items
    # holding it, its deliveries with their targets, same person: as for a lead with none
    with django_assert_num_queries(7):
        body = source_client.get(f"/api/v1/leads/{lead.pk}/").json()
    assert len(body["deliveries"]) == 5


def test_only_the_latest_assignment_per_target_counts(sales, crm, fake_target):
    """A lead routed again (after an exception) has a newer lead.assigned event per target: an older one that
    died no longer keeps it from being handed off."""
    lead = routed_lead()
    old = event_of(lead, crm)
    OutboxEvent.objects.filter(pk=old.pk).update(status=OutboxStatus.DEAD, dead_at=timezone.now())
    newer = OutboxEventFactory(lead=lead, target=crm)
    delivered(newer)
    lead.refresh_from_db()
    assert lead.handed_off_at is not None


def test_the_beat_task_runs_the_sweep(sales, engage):
    lead = routed_lead()
    OutboxEvent.objects.filter(lead=lead).update(created_at=timezone.now() - dt.timedelta(minutes=16))
    assert handoffs_unconfirmed() == 1
    assert unconfirmed_items(lead).count() == 1


def test_an_ack_signed_for_one_delivery_cannot_confirm_another_of_the_same_target(sales, engage):
    first, second = (delivered(event_of(routed_lead(), engage)) for _ in range(2))
    body = {"status": "processed", "reference": "ENG-A"}
    captured = ack(second.pk, engage, body, msg_id=str(first.idempotency_key))
    assert captured.status_code == 401
    assert "must be this delivery's webhook-id" in captured.json()["detail"]
    second.refresh_from_db()
    assert second.confirmed_at is None


def test_a_delivery_confirmed_by_callback_is_never_dead_lettered_by_a_failing_attempt(sales, engage, fake_target):
    """The receiver acked while our request failed (it outlived our timeout): it has the lead, so no retry and no
    delivery_failed (second reader's F3)."""
    engage.max_attempts = 1
    engage.save()
    event = event_of(routed_lead(), engage)
    assert ack(event.pk, engage, {"status": "processed", "reference": "ENG-5"}).status_code == 200
    fake_target.script = [status(500)]
    event_deliver(event_id=event.pk)
    event.refresh_from_db()
    assert event.status == OutboxStatus.DELIVERED and event.confirmed_at is not None
    assert not ExceptionItem.objects.filter(reason=ExceptionReason.DELIVERY_FAILED).exists()
