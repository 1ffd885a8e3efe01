"""Structured logs: one JSON object per line outside DEBUG, carrying the ids of the lead, exception, outbox
event and Celery task the work is about, so one lead can be followed from intake to the console."""

import logging

import pytest
from django.conf import settings
from django.test import Client

from config.logs import ContextFilter, JsonFormatter, PlainFormatter, current_log_context, log_context
from exceptions.alert_delivery import alert_send
from exceptions.alerts import alerts_items_opened
from routing.integrations.delivery import event_deliver
from routing.models import Lead, LeadStatus
from routing.tasks import route_leads
from tests.factories import (
    AlertChannelFactory,
    DeliveryTargetFactory,
    LeadFactory,
    LeadPayloadFactory,
    OutboxEventFactory,
    open_exception,
)

logger = logging.getLogger("tests.observability")


def lines_about(lines, **fields):
    return [line for line in lines if all(line.get(name) == value for name, value in fields.items())]


def test_outside_debug_the_console_handler_writes_json():
    assert settings.DEBUG is False
    assert settings.LOGGING["handlers"]["console"]["formatter"] == "json"
    handlers = [h for h in logging.getLogger().handlers if isinstance(h.formatter, JsonFormatter)]
    assert handlers and any(isinstance(f, ContextFilter) for f in handlers[0].filters)


def test_a_json_line_carries_the_context_extra_fields_and_the_traceback(json_log):
    with log_context(lead_pk=7, lead_id="form-7", exception_id=3):
        try:
            raise ValueError("bad data")
        except ValueError:
            logger.exception("Could not %s.", "route", extra={"attempt": 2, "when": object()})

    (line,) = lines_about(json_log(), logger="tests.observability")
    assert line["message"] == "Could not route."
    assert line["level"] == "ERROR"
    assert (line["lead_pk"], line["lead_id"], line["exception_id"], line["attempt"]) == (7, "form-7", 3, 2)
    assert "task_id" not in line  # ids that are not set are left out
    assert line["when"].startswith("<object object")  # not JSON: written as text, the line still parses
    assert "ValueError: bad data" in line["exc_info"]
    assert line["time"].endswith("+00:00")


def test_contexts_nest_and_are_restored():
    with log_context(lead_pk=1):
        with log_context(exception_id=2, lead_pk=None):  # None keeps the outer value
            assert dict(current_log_context()) == {"lead_pk": 1, "exception_id": 2}
        assert dict(current_log_context()) == {"lead_pk": 1}
    assert dict(current_log_context()) == {}
    with pytest.raises(TypeError, match="lead"):
        with log_context(lead=1):
            pass


def test_the_debug_format_puts_the_ids_at_the_end_of_the_line():
    record = logging.LogRecord("routing.tasks", logging.INFO, __file__, 1, "Lead %s routed.", (5,), None)
    with log_context(lead_pk=5, lead_id="form-5", task_id="abc"):
        ContextFilter().filter(record)

    line = PlainFormatter("%(levelname)s %(message)s").format(record)

    assert line == "INFO Lead 5 routed. [lead_pk=5 lead_id=form-5 task_id=abc]"


@pytest.mark.django_db
def test_routing_a_lead_logs_its_id_and_the_task_id(json_log):
    lead = LeadFactory()  # no rule matches it: it goes to an exception queue

    route_leads.apply(args=([lead.id],), task_id="route-task-1")  # in this process, through Celery's signals

    lead.refresh_from_db()
    assert lead.status == LeadStatus.EXCEPTION
    (line,) = lines_about(json_log(), logger="routing.tasks", lead_pk=lead.id)
    assert line["lead_id"] == lead.lead_id  # the capture system's id, as the API and webhooks call it
    assert line["task_id"] == "route-task-1"
    assert line["message"] == f"Lead {lead.id} routed: exception, queue None."
    assert dict(current_log_context()) == {}  # nothing leaks past the task


@pytest.mark.django_db
def test_a_delivery_attempt_logs_the_lead_and_event_ids(json_log):
    lead = LeadFactory(status=LeadStatus.ASSIGNED)
    event = OutboxEventFactory(target=DeliveryTargetFactory(name="CRM", url="http://127.0.0.1:9/"), lead=lead)

    event_deliver(event_id=event.pk)  # nothing listens on port 9: a failed attempt, to be retried

    (line,) = lines_about(json_log(), logger="routing.integrations.delivery", event_id=event.pk)
    assert (line["lead_pk"], line["lead_id"]) == (lead.pk, lead.lead_id)
    assert line["webhook_id"] == str(event.idempotency_key)  # the webhook-id its receiver sees
    assert line["message"].startswith(f"Event {event.pk} to CRM, attempt 1: ")
    assert line["message"].endswith("now pending.")


@pytest.mark.django_db
def test_an_alert_message_logs_the_item_it_is_about(json_log):
    item = open_exception()
    channel = AlertChannelFactory(queue=item.queue, url="http://127.0.0.1:9/")  # nothing listens: a failed attempt
    (message,) = alerts_items_opened(items=[item])

    alert_send(message_id=message.pk)

    (line,) = lines_about(json_log(), logger="exceptions.alert_delivery", exception_id=item.pk)
    assert line["message"].startswith(f"Alert message {message.pk} (trigger handoff-exception-{item.pk}) to")
    assert line["channel"] == channel.name


@pytest.mark.django_db
def test_intake_logs_each_stored_lead_with_its_id(json_log, source_client):
    one = source_client.post("/api/v1/leads/", LeadPayloadFactory(lead_id="form-1"), format="json")
    batch = source_client.post(
        "/api/v1/leads/batch/",
        [LeadPayloadFactory(lead_id="form-2"), LeadPayloadFactory(lead_id="form-1"), {"lead_id": 3}],
        format="json",
    )

    assert one.status_code == 202 and batch.status_code == 200
    lines = lines_about(json_log(), logger="routing.api.views")
    assert [(line["lead_pk"], line["lead_id"], line["message"]) for line in lines] == [
        (one.json()["id"], "form-1", "Lead form-1 from web-form: accepted."),
        (Lead.objects.get(lead_id="form-2").pk, "form-2", "Lead form-2 from web-form: accepted."),
        (one.json()["id"], "form-1", "Lead form-1 from web-form: duplicate."),
    ]


@pytest.mark.django_db
def test_a_console_action_logs_the_item_and_its_lead(json_log, ops_person, django_capture_on_commit_callbacks):
    item = open_exception()
    client = Client()
    client.force_login(ops_person)

    with django_capture_on_commit_callbacks(execute=True):  # the action's line is written once it commits
        client.post(f"/console/items/{item.pk}/acknowledge/")

    (line,) = lines_about(json_log(), logger="exceptions.services")
    assert (line["exception_id"], line["lead_pk"], line["lead_id"]) == (item.pk, item.lead_id, item.lead.lead_id)
    assert line["message"] == f"Item #{item.pk}: exception.acknowledged by olga."
