"""Exceptions raised in PagerDuty, Slack and a ticketing webhook (exceptions.alerts, exceptions.alert_delivery),
and PagerDuty's acknowledge and resolve coming back (exceptions.alert_inbound), against local servers that
implement the tools' documented request and response shapes."""

import datetime as dt
import json

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from audit.models import AuditAction, AuditEvent
from exceptions.alert_delivery import alert_send, request_for
from exceptions.bulk import exceptions_bulk
from exceptions.incident_actions import incident_acknowledge, incident_resolve
from exceptions.incidents import Cause
from exceptions.models import (
    AlertChannel,
    AlertChannelKind,
    AlertEvent,
    AlertMessage,
    AlertMessageStatus,
    AlertSeverity,
    ExceptionIncident,
    ExceptionItem,
    ExceptionReason,
    ExceptionStatus,
    Resolution,
)
from exceptions.services import Opening, exception_acknowledge, exception_open, exception_resolve, exceptions_open
from exceptions.sweep import sla_sweep
from routing.integrations.signing import secret_generate
from tests.exceptions.fake_incident_tools import (
    SECRET,
    FakePagerDuty,
    FakeSlack,
    Scripted,
    pagerduty_webhook_body,
    post_webhook,
    rate_limited,
    signed,
    slack_error,
)
from tests.factories import AlertChannelFactory, LeadFactory, QueueFactory, UserFactory
from tests.integrations.fake_target import FakeTarget

pytestmark = pytest.mark.django_db


@pytest.fixture
def pagerduty():
    server = FakePagerDuty().start()
    yield server
    server.stop()


@pytest.fixture
def slack():
    server = FakeSlack().start()
    yield server
    server.stop()


@pytest.fixture
def receiver():
    server = FakeTarget().start()
    yield server
    server.stop()


@pytest.fixture
def triage():
    return QueueFactory(name="Triage", ack_sla_minutes=30)


@pytest.fixture
def person():
    return UserFactory(username="olga", first_name="Olga", last_name="Ops")


def open_item(queue, **kwargs) -> ExceptionItem:
    return exception_open(
        lead=LeadFactory(lead_id=kwargs.pop("lead_id", None) or "wf-1"),
        reason="no_matching_rule",
        queue=queue,
        **kwargs,
    )


def send_all() -> list[AlertMessage]:
    """What the worker does, in order: one attempt at each due, pending message until none moves."""
    while True:
        moved = [alert_send(message_id=pk) for pk in AlertMessage.objects.order_by("pk").values_list("pk", flat=True)]
        if not any(moved):
            return list(AlertMessage.objects.order_by("pk"))


# --- what is sent when ---------------------------------------------------------------------------------------


def test_an_item_opening_triggers_pagerduty_with_a_stable_dedup_key_and_a_link_back(pagerduty, triage):
    AlertChannelFactory(queue=triage, url=pagerduty.url)
    item = open_item(triage)
    (message,) = send_all()
    assert (message.status, message.last_status_code) == (AlertMessageStatus.SENT, 202)
    (request,) = pagerduty.received
    event = request.json()
    assert (event["event_action"], event["dedup_key"]) == ("trigger", f"handoff-exception-{item.pk}")
    assert event["routing_key"] == "R0UT1NGKEY0F32CHARACTERS00000000"
    assert (event["payload"]["source"], event["payload"]["severity"]) == ("handoff", "warning")
    assert event["payload"]["summary"] == "Exception: No matching rule for lead wf-1 in Triage"
    assert event["payload"]["custom_details"]["exception_id"] == item.pk
    assert event["links"] == [{"href": f"http://127.0.0.1:8000/console/items/{item.pk}/", "text": "Open in Handoff"}]


def test_channels_of_other_queues_other_events_inactive_or_below_their_minimum_get_nothing(triage):
    AlertChannelFactory(queue=QueueFactory(name="Sales"))
    AlertChannelFactory(queue=triage, events=[AlertEvent.ITEM_BREACHED])
    AlertChannelFactory(queue=triage, is_active=False)
    AlertChannelFactory(queue=triage, min_severity=AlertSeverity.ERROR)  # an opening is a warning
    open_item(triage)
    assert not AlertMessage.objects.exists()


def test_acknowledge_and_resolve_in_handoff_follow_up_where_an_alert_went(pagerduty, slack, triage, person):
    AlertChannelFactory(queue=triage, url=pagerduty.url)
    AlertChannelFactory(queue=triage, kind=AlertChannelKind.SLACK, url=slack.url, routing_key="")
    quiet = open_item(triage, lead_id="wf-0")
    AlertMessage.objects.all().delete()  # as if the channels had been added after it opened
    item = open_item(triage)
    exception_acknowledge(item=item, by=person)
    exception_resolve(item=exception_acknowledge(item=quiet, by=person), by=person, resolution="spam", note="bot")
    exception_resolve(item=ExceptionItem.objects.get(pk=item.pk), by=person, resolution="duplicate", note="of wf-0")
    messages = send_all()
    assert {m.status for m in messages} == {AlertMessageStatus.SENT}
    assert pagerduty.alerts == {f"handoff-exception-{item.pk}": ["trigger", "acknowledge", "resolve"]}
    texts = [r.json()["text"] for r in slack.received]
    assert texts[0].startswith(":rotating_light: Exception: No matching rule for lead wf-1 in Triage <http://")
    assert texts[1].startswith(f":eyes: Item #{item.pk} acknowledged by Olga Ops <")
    assert texts[2].startswith(f":white_check_mark: Item #{item.pk} resolved by Olga Ops: of wf-0 <")
    assert all(r.json()["blocks"][0]["type"] == "section" for r in slack.received)


def test_bulk_acknowledge_follows_up_every_item(pagerduty, triage, person):
    AlertChannelFactory(queue=triage, url=pagerduty.url)
    items = [open_item(triage, lead_id=f"wf-{n}") for n in range(3)]
    exceptions_bulk(action="acknowledge", item_ids=[i.pk for i in items], by=person)
    send_all()
    assert {key: actions for key, actions in pagerduty.alerts.items()} == {
        f"handoff-exception-{i.pk}": ["trigger", "acknowledge"] for i in items
    }


def test_an_incident_alerts_once_as_critical_and_its_actions_follow_up(pagerduty, triage, person, settings):
    settings.HANDOFF = {**settings.HANDOFF, "INCIDENT_MIN_ITEMS": 3}
    AlertChannelFactory(queue=triage, url=pagerduty.url, events=[AlertEvent.INCIDENT_OPENED])
    crm_down = Cause("delivery_failed:1:HTTP 5xx", "Deliveries to CRM fail: HTTP 5xx")
    exceptions_open(
        openings=[
            Opening(lead=LeadFactory(), reason=ExceptionReason.DELIVERY_FAILED, queue=triage, cause=crm_down)
            for _ in range(3)
        ]
    )
    incident = ExceptionIncident.objects.get()
    incident_acknowledge(incident=incident, by=person)
    incident_resolve(incident=ExceptionIncident.objects.get(), by=person, resolution="fixed_upstream", note="CRM up")
    send_all()
    key = f"handoff-incident-{incident.pk}"
    assert pagerduty.alerts == {key: ["trigger", "acknowledge", "resolve"]}
    trigger = pagerduty.received[0].json()
    assert (trigger["payload"]["severity"], trigger["payload"]["summary"]) == (
        "critical",
        f"Incident #{incident.pk}: Deliveries to CRM fail: HTTP 5xx (Triage)",
    )


def test_an_incident_resolved_by_its_last_item_resolves_the_alert(pagerduty, triage, person, settings):
    settings.HANDOFF = {**settings.HANDOFF, "INCIDENT_MIN_ITEMS": 2}
    AlertChannelFactory(queue=triage, url=pagerduty.url, events=[AlertEvent.INCIDENT_OPENED])
    cause = Cause("enrichment_failed", "Enrichment fails")
    items = exceptions_open(
        openings=[Opening(lead=LeadFactory(), reason="enrichment_failed", queue=triage, cause=cause) for _ in "ab"]
    )
    for item in items:
        exception_resolve(item=ExceptionItem.objects.get(pk=item.pk), by=None, resolution="fixed_upstream")
    send_all()
    assert pagerduty.alerts == {f"handoff-incident-{ExceptionIncident.objects.get().pk}": ["trigger", "resolve"]}


def test_a_breach_found_by_the_sweep_triggers_at_error_severity(pagerduty, triage):
    AlertChannelFactory(queue=triage, url=pagerduty.url, events=[AlertEvent.ITEM_BREACHED])
    item = exception_open(
        lead=LeadFactory(), reason="no_matching_rule", queue=triage, at=timezone.now() - dt.timedelta(minutes=45)
    )
    assert not AlertMessage.objects.exists()  # the channel is not told about openings
    sla_sweep()
    send_all()
    (request,) = pagerduty.received
    event = request.json()
    assert (event["dedup_key"], event["payload"]["severity"]) == (f"handoff-exception-{item.pk}", "error")
    assert event["payload"]["summary"].startswith("SLA breached: No matching rule")


def test_the_ticketing_webhook_is_signed_with_standard_webhooks(receiver, triage, person):
    secret = secret_generate()
    AlertChannelFactory(queue=triage, kind=AlertChannelKind.WEBHOOK, url=receiver.url, secret=secret)
    item = open_item(triage)
    exception_acknowledge(item=item, by=person)
    send_all()
    first, second = receiver.received
    triggered = Webhook(secret).verify(first.body, first.headers)  # the official verifier
    with pytest.raises(WebhookVerificationError):
        Webhook(secret_generate()).verify(first.body, first.headers)
    acknowledged = Webhook(secret).verify(second.body, second.headers)
    assert triggered["type"] == "alert.triggered"
    assert triggered["data"]["dedup_key"] == f"handoff-exception-{item.pk}"
    assert triggered["data"]["url"] == f"http://127.0.0.1:8000/console/items/{item.pk}/"
    assert (acknowledged["type"], acknowledged["data"]["by"]) == ("alert.acknowledged", "Olga Ops")
    assert first.headers["webhook-id"] == triggered["id"] != second.headers["webhook-id"]


def test_a_webhook_channel_needs_a_standard_webhooks_secret(triage):
    channel = AlertChannelFactory.build(queue=triage, kind=AlertChannelKind.WEBHOOK, url="https://t.example/")
    channel.secret = "just-a-password"
    with pytest.raises(ValidationError) as refused:
        channel.clean()
    assert "whsec_" in refused.value.message_dict["secret"][0]
    channel.secret = secret_generate()
    channel.clean()


# --- failures, rate limits, order ----------------------------------------------------------------------------


def test_a_429_waits_as_long_as_retry_after_asks(pagerduty, triage):
    AlertChannelFactory(queue=triage, url=pagerduty.url)
    open_item(triage)
    pagerduty.script = [rate_limited(120)]
    before = timezone.now()
    (message,) = send_all()
    assert (message.status, message.attempts, message.last_status_code) == (AlertMessageStatus.PENDING, 1, 429)
    assert message.next_attempt_at >= before + dt.timedelta(seconds=120)
    AlertMessage.objects.update(next_attempt_at=timezone.now())  # the wait is over
    (message,) = send_all()
    assert (message.status, message.attempts) == (AlertMessageStatus.SENT, 2)


def test_5xx_is_retried_with_backoff_until_the_last_attempt_then_failed(pagerduty, triage):
    AlertChannelFactory(queue=triage, url=pagerduty.url, max_attempts=2)
    open_item(triage)
    pagerduty.script = [Scripted(503), Scripted(500)]
    (message,) = send_all()
    assert (message.status, message.last_status_code) == (AlertMessageStatus.PENDING, 503)
    AlertMessage.objects.update(next_attempt_at=timezone.now())
    (message,) = send_all()
    assert (message.status, message.attempts, message.last_status_code) == (AlertMessageStatus.FAILED, 2, 500)
    assert message.last_error.startswith("HTTP 500 Internal Server Error")


def test_pagerduty_refusing_the_event_fails_it_at_once_with_the_error_in_the_admin(pagerduty, triage, admin_client):
    AlertChannelFactory(queue=triage, url=pagerduty.url, routing_key="too-short")
    open_item(triage)
    (message,) = send_all()
    assert (message.status, message.attempts, message.last_status_code) == (AlertMessageStatus.FAILED, 1, 400)
    reason = "HTTP 400 Bad Request: Event object is invalid; 'routing_key' is invalid (it is 32 characters)"
    assert message.last_error == reason  # PagerDuty's own words: what to fix
    page = admin_client.get("/admin/exceptions/alertmessage/").content.decode()
    assert "routing_key&#x27; is invalid" in page and "Failed" in page


def test_slack_rate_limits_are_waited_out_and_a_removed_webhook_fails(slack, triage):
    AlertChannelFactory(queue=triage, kind=AlertChannelKind.SLACK, url=slack.url, routing_key="")
    open_item(triage)
    slack.script = [rate_limited(30), slack_error(404, "no_service")]
    (message,) = send_all()
    assert (message.status, message.last_status_code) == (AlertMessageStatus.PENDING, 429)
    AlertMessage.objects.update(next_attempt_at=timezone.now())
    (message,) = send_all()
    assert (message.status, message.last_status_code) == (AlertMessageStatus.FAILED, 404)
    assert message.last_error == "HTTP 404 Not Found: no_service"


def test_a_resolve_never_reaches_pagerduty_before_its_trigger(pagerduty, triage, person):
    AlertChannelFactory(queue=triage, url=pagerduty.url)
    item = open_item(triage)
    pagerduty.script = [rate_limited(60)]
    send_all()  # the trigger is told to wait a minute
    exception_resolve(item=item, by=person, resolution="spam", note="a bot")
    trigger, resolve = AlertMessage.objects.order_by("pk")
    assert alert_send(message_id=resolve.pk) is None  # its trigger is still pending: it waits
    assert len(pagerduty.received) == 1
    AlertMessage.objects.filter(pk=trigger.pk).update(next_attempt_at=timezone.now())
    send_all()
    assert pagerduty.alerts == {f"handoff-exception-{item.pk}": ["trigger", "resolve"]}


def test_the_routing_key_and_secrets_are_sealed_at_rest(triage):
    from django.db import connection

    channel = AlertChannelFactory(queue=triage)
    with connection.cursor() as cursor:
        cursor.execute("SELECT routing_key, secret FROM exceptions_alertchannel WHERE id = %s", [channel.pk])
        stored = cursor.fetchone()
    assert "R0UT1NGKEY" not in stored[0] and SECRET not in stored[1]
    open_item(triage)
    assert "R0UT1NGKEY" not in json.dumps(AlertMessage.objects.get().body)  # added only when sent
    assert b"R0UT1NGKEY0F32CHARACTERS00000000" in request_for(AlertMessage.objects.get())[1]


def test_rotate_secrets_rewrites_the_channels_keys_with_the_new_key(triage, settings):
    from cryptography.fernet import Fernet
    from django.core.management import call_command

    channel = AlertChannelFactory(queue=triage)
    old_key, new_key = settings.HANDOFF["SECRETS_KEYS"][0], Fernet.generate_key().decode()
    settings.HANDOFF = {**settings.HANDOFF, "SECRETS_KEYS": [new_key, old_key]}
    call_command("rotate_secrets", stdout=None)
    settings.HANDOFF = {**settings.HANDOFF, "SECRETS_KEYS": [new_key]}  # the old key dropped
    channel = AlertChannel.objects.get(pk=channel.pk)
    assert (channel.routing_key, channel.secret) == ("R0UT1NGKEY0F32CHARACTERS00000000", SECRET)


def test_the_admin_sets_keys_write_only_and_refuses_a_channel_missing_what_its_kind_needs(triage, admin_client):
    form = {
        "queue": triage.pk,
        "name": "On call",
        "kind": "pagerduty",
        "url": "",
        "routing_key": "",
        "secret": "",
        "events": ["item.opened", "incident.opened"],
        "min_severity": 2,
        "is_active": "on",
        "max_attempts": 8,
        "timeout_seconds": 10,
    }
    refused = admin_client.post("/admin/exceptions/alertchannel/add/", form).content.decode()
    assert "PagerDuty needs the routing key" in refused
    added = admin_client.post("/admin/exceptions/alertchannel/add/", {**form, "routing_key": "R" * 32})
    assert added.status_code == 302
    channel = AlertChannel.objects.get()
    page = admin_client.get(f"/admin/exceptions/alertchannel/{channel.pk}/change/").content.decode()
    assert "R" * 32 not in page and "Set; leave blank to keep it" in page
    kept = admin_client.post(f"/admin/exceptions/alertchannel/{channel.pk}/change/", {**form, "name": "On-call"})
    assert kept.status_code == 302
    assert AlertChannel.objects.get().routing_key == "R" * 32


# --- PagerDuty's webhooks back -------------------------------------------------------------------------------


def test_a_pagerduty_acknowledge_acknowledges_the_item_audited_and_not_echoed(client, pagerduty, slack, triage):
    AlertChannelFactory(queue=triage, url=pagerduty.url)
    AlertChannelFactory(queue=triage, kind=AlertChannelKind.SLACK, url=slack.url, routing_key="")
    item = open_item(triage)
    send_all()
    body = pagerduty_webhook_body("incident.acknowledged", f"handoff-exception-{item.pk}")
    answer = post_webhook(client, body, signed(body))
    assert answer.status_code == 200
    assert answer.json() == {"outcome": "acknowledged", "detail": f"Item #{item.pk} acknowledged."}
    item.refresh_from_db()
    assert (item.status, item.acknowledged_by.username) == (ExceptionStatus.ACKNOWLEDGED, "pagerduty")
    assert item.assignee is None  # PagerDuty's account cannot work it: it stays for a person to take
    event = AuditEvent.objects.get(action=AuditAction.EXCEPTION_ACKNOWLEDGED, exception=item)
    assert event.actor_label == "pagerduty"
    assert event.data["note"] == "Acknowledged in PagerDuty by Priya Pager (PagerDuty incident 1042)."
    send_all()
    assert pagerduty.alerts == {f"handoff-exception-{item.pk}": ["trigger"]}  # nothing echoed back
    assert slack.received[-1].json()["text"].startswith(f":eyes: Item #{item.pk} acknowledged by PagerDuty: ")


def test_a_pagerduty_acknowledge_of_an_incident_leaves_it_and_its_items_unassigned(client, pagerduty, triage, settings):
    settings.HANDOFF = {**settings.HANDOFF, "INCIDENT_MIN_ITEMS": 2}
    AlertChannelFactory(queue=triage, url=pagerduty.url, events=[AlertEvent.INCIDENT_OPENED])
    cause = Cause("enrichment_failed", "Enrichment fails")
    exceptions_open(
        openings=[Opening(lead=LeadFactory(), reason="enrichment_failed", queue=triage, cause=cause) for _ in "ab"]
    )
    incident = ExceptionIncident.objects.get()
    body = pagerduty_webhook_body("incident.acknowledged", f"handoff-incident-{incident.pk}")
    assert post_webhook(client, body, signed(body)).json()["outcome"] == "acknowledged"
    incident.refresh_from_db()
    assert (incident.status, incident.assignee) == (ExceptionStatus.ACKNOWLEDGED, None)
    assert set(ExceptionItem.objects.values_list("status", "assignee")) == {(ExceptionStatus.ACKNOWLEDGED, None)}


def test_a_pagerduty_resolve_resolves_the_incident_and_its_items(client, pagerduty, triage, settings):
    settings.HANDOFF = {**settings.HANDOFF, "INCIDENT_MIN_ITEMS": 2}
    AlertChannelFactory(queue=triage, url=pagerduty.url, events=[AlertEvent.INCIDENT_OPENED])
    cause = Cause("enrichment_failed", "Enrichment fails")
    exceptions_open(
        openings=[Opening(lead=LeadFactory(), reason="enrichment_failed", queue=triage, cause=cause) for _ in "ab"]
    )
    incident = ExceptionIncident.objects.get()
    body = pagerduty_webhook_body("incident.resolved", f"handoff-incident-{incident.pk}")
    answer = post_webhook(client, body, signed(body))
    assert answer.json()["outcome"] == "resolved"
    incident.refresh_from_db()
    assert (incident.status, incident.resolution) == (ExceptionStatus.RESOLVED, Resolution.FIXED_UPSTREAM)
    assert set(ExceptionItem.objects.values_list("status", flat=True)) == {ExceptionStatus.RESOLVED}
    assert incident.resolution_note.startswith("Resolved in PagerDuty by Priya Pager")
    assert not AlertMessage.objects.exclude(action="trigger").exists()  # the one channel made the change


def test_a_bad_signature_is_refused_with_401_and_a_rotated_secret_is_accepted(client, triage):
    AlertChannelFactory(queue=triage)
    item = open_item(triage)
    body = pagerduty_webhook_body("incident.acknowledged", f"handoff-exception-{item.pk}")
    missing = post_webhook(client, body, "")
    assert (missing.status_code, missing.json()["detail"][:32]) == (401, "No X-PagerDuty-Signature header:")
    for signature in [signed(body, "wrong"), signed(body + b" ")]:
        answer = post_webhook(client, body, signature)
        assert answer.status_code == 401
        assert "X-PagerDuty-Signature does not match" in answer.json()["detail"]
    both = f"{signed(body, 'the-new-secret')},{signed(body)}"  # PagerDuty signs with each secret while rotating
    assert post_webhook(client, body, both).json()["outcome"] == "acknowledged"


def test_unknown_incidents_and_other_events_are_answered_200_and_ignored(client, triage, person):
    AlertChannelFactory(queue=triage)
    AlertChannelFactory(queue=QueueFactory(name="Sales"), secret="sales-secret")
    item = open_item(triage)
    cases = [
        (pagerduty_webhook_body("incident.acknowledged", "someone-elses-key"), SECRET),
        (pagerduty_webhook_body("incident.acknowledged", f"handoff-exception-{item.pk}"), "sales-secret"),
        (pagerduty_webhook_body("incident.triggered", f"handoff-exception-{item.pk}"), SECRET),
    ]
    for body, secret in cases:
        answer = post_webhook(client, body, signed(body, secret))
        assert (answer.status_code, answer.json()["outcome"]) == (200, "ignored")
    exception_acknowledge(item=item, by=person)
    body = pagerduty_webhook_body("incident.acknowledged", f"handoff-exception-{item.pk}")
    answer = post_webhook(client, body, signed(body))
    assert answer.json() == {
        "outcome": "ignored",
        "detail": f"Cannot acknowledge item #{item.pk}: it is already acknowledged by Olga Ops at "
        f"{ExceptionItem.objects.get().acknowledged_at:%Y-%m-%d %H:%M} UTC.",
    }
    answer = post_webhook(client, b"not json", signed(b"not json"))
    assert (answer.status_code, answer.json()["detail"]) == (
        400,
        "The body is not a PagerDuty v3 webhook: expected JSON with event.event_type.",
    )


# --- second reader's findings ----------------------------------------------------------------------------------


def test_slack_shows_what_others_wrote_as_text_never_as_mentions_or_links(slack, triage, person):
    AlertChannelFactory(queue=triage, kind=AlertChannelKind.SLACK, url=slack.url, routing_key="")
    item = open_item(triage, lead_id="<!here>|<https://evil.example|x>")
    exception_resolve(item=item, by=person, resolution="not_a_lead", note="<!channel> see <https://evil.example|Open>")
    send_all()
    opened, resolved = (request.json() for request in slack.received)
    assert "&lt;!here&gt;|&lt;https://evil.example|x&gt;" in opened["text"]
    assert "&lt;!channel&gt; see &lt;https://evil.example|Open&gt;" in resolved["text"]
    for message in (opened, resolved):
        text = message["blocks"][0]["text"]["text"]
        assert "<!" not in text and "<https://evil" not in text
        assert text.endswith(f"<http://127.0.0.1:8000/console/items/{item.pk}/|Open in Handoff>")


def test_items_that_open_into_an_incident_page_through_it_alone(pagerduty, slack, triage, settings):
    settings.HANDOFF = {**settings.HANDOFF, "INCIDENT_MIN_ITEMS": 3}
    events = [AlertEvent.ITEM_OPENED, AlertEvent.INCIDENT_OPENED]
    AlertChannelFactory(queue=triage, url=pagerduty.url, events=events)
    AlertChannelFactory(queue=triage, kind=AlertChannelKind.SLACK, url=slack.url, routing_key="")  # items only
    cause = Cause("enrichment_failed", "Enrichment fails")
    items = [
        exception_open(lead=LeadFactory(), reason="enrichment_failed", queue=triage, cause=cause) for _ in range(4)
    ]
    send_all()
    incident = ExceptionIncident.objects.get()
    assert set(ExceptionItem.objects.filter(incident=incident)) == set(items)
    # The two that opened it were paged before it existed; the third opened it, the fourth joined: no page each.
    assert pagerduty.alerts == {
        f"handoff-exception-{items[0].pk}": ["trigger"],
        f"handoff-exception-{items[1].pk}": ["trigger"],
        f"handoff-incident-{incident.pk}": ["trigger"],
    }
    assert len(slack.received) == 4  # a channel not told of incidents still hears of every item


def test_pagerduty_resolving_an_incident_resolves_its_items_alerts_there_too(client, pagerduty, triage, settings):
    settings.HANDOFF = {**settings.HANDOFF, "INCIDENT_MIN_ITEMS": 2}
    AlertChannelFactory(queue=triage, url=pagerduty.url, events=[AlertEvent.ITEM_OPENED, AlertEvent.INCIDENT_OPENED])
    cause = Cause("enrichment_failed", "Enrichment fails")
    first, _ = (exception_open(lead=LeadFactory(), reason="enrichment_failed", queue=triage, cause=cause) for _ in "ab")
    send_all()
    incident = ExceptionIncident.objects.get()
    body = pagerduty_webhook_body("incident.resolved", f"handoff-incident-{incident.pk}")
    assert post_webhook(client, body, signed(body)).json()["outcome"] == "resolved"
    send_all()
    assert pagerduty.alerts == {
        f"handoff-exception-{first.pk}": ["trigger", "resolve"],  # its own page, closed with the incident
        f"handoff-incident-{incident.pk}": ["trigger"],  # resolved in PagerDuty: not echoed
    }
