"""Sending alert messages (exceptions.alerts wrote them) to PagerDuty, Slack and webhooks: at least once, in
order within one alert, through the outbound guard of routing.integrations.http (HANDOFF_OUTBOUND_ALLOW).

1. A message waits while an earlier message of the same alert to the same channel is pending: a resolve never
   reaches PagerDuty before its trigger. When a message is settled (sent or failed) the next one is published.
2. The message is claimed with a conditional UPDATE that also pushes its next attempt past the request's
   timeout (a lease), so two workers never send one attempt; the request runs outside any transaction.
3. The answer is recorded with a conditional UPDATE: sent (2xx); retried later on timeouts, connection errors,
   5xx and 408/409/425/429, honouring Retry-After, with exponential backoff and jitter otherwise; or failed,
   with the error kept on the message (admin: Alert messages), after the last attempt or a 4xx that retrying
   cannot fix (PagerDuty's 400 for a bad event, Slack's 404 `no_service`)."""

import datetime as dt
import json
import logging
import re
import time

from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.utils import timezone

from config.logs import log_context
from exceptions.models import AlertChannelKind, AlertMessage, AlertMessageStatus
from routing.dispatch import alerts_enqueue
from routing.integrations import http
from routing.integrations.http import Answer
from routing.integrations.signing import standard_headers

logger = logging.getLogger(__name__)

PAGERDUTY_EVENTS_URL = "https://events.pagerduty.com/v2/enqueue"
LEASE_MARGIN_SECONDS = 30
PENDING, SENT, FAILED = AlertMessageStatus.PENDING, AlertMessageStatus.SENT, AlertMessageStatus.FAILED


def alert_send(*, message_id: int) -> AlertMessage | None:
    """One attempt at a due, pending message. None when there was nothing to do (settled, not due, claimed by
    another worker, or waiting for an earlier message of its alert)."""
    message = AlertMessage.objects.select_related("channel").filter(pk=message_id).first()
    if message is None or message.status != PENDING:
        return None
    earlier = AlertMessage.objects.filter(
        channel=message.channel_id, dedup_key=message.dedup_key, pk__lt=message.pk, status=PENDING
    )
    if earlier.exists():
        return None  # sent once the earlier one is settled (_settled publishes it)
    with log_context(exception_id=message.item_id, incident_id=message.incident_id):  # its lines name what it is about
        return _attempt(message)


def _attempt(message: AlertMessage) -> AlertMessage | None:
    now = timezone.now()
    lease_until = now + dt.timedelta(seconds=message.channel.timeout_seconds + LEASE_MARGIN_SECONDS)
    claimed = AlertMessage.objects.filter(
        pk=message.pk, status=PENDING, next_attempt_at__lte=now, attempts=message.attempts
    ).update(next_attempt_at=lease_until, attempts=message.attempts + 1)
    if claimed != 1:
        return None
    message.attempts += 1
    try:
        answer = _post(message)
    except Exception as exc:  # noqa: BLE001 - whatever broke, the attempt counts and is recorded
        logger.exception("Sending alert message %s raised; recorded as a failed attempt.", message.pk)
        answer = Answer(None, 0, f"{type(exc).__name__}: {exc}"[:500])
    return _record(message, answer)


def request_for(message: AlertMessage) -> tuple[str, bytes, dict[str, str]]:
    """The URL, body and headers of one attempt (a webhook's timestamp and signature are fresh each time)."""
    channel = message.channel
    headers = {"Content-Type": "application/json", "User-Agent": "Handoff-Alerts/1"}
    if channel.kind == AlertChannelKind.PAGERDUTY:
        return channel.url or PAGERDUTY_EVENTS_URL, _json({"routing_key": channel.routing_key, **message.body}), headers
    if channel.kind == AlertChannelKind.SLACK:
        return channel.url, _json(message.body), headers
    # Signed as deliveries are by default (Standard Webhooks): the receiver verifies with the official libraries.
    message_id = f"alert-message-{message.pk}"
    body = _json({"id": message_id, **message.body})
    headers.update(standard_headers(msg_id=message_id, timestamp=int(time.time()), body=body, secrets=[channel.secret]))
    return channel.url, body, headers


def _json(data: dict) -> bytes:
    return json.dumps(data, cls=DjangoJSONEncoder, separators=(",", ":")).encode()


def _post(message: AlertMessage) -> Answer:
    url, body, headers = request_for(message)
    reason_of = ERROR_REASONS.get(message.channel.kind)
    return http.post(url, content=body, headers=headers, timeout=message.channel.timeout_seconds, reason_of=reason_of)


_SLACK_ERROR = re.compile(r"[a-z_]{1,60}")


def _pagerduty_reason(raw: bytes) -> str | None:
    """PagerDuty's error answer, `{"status", "message", "errors": [...]}`: its message and errors, which say what
    to fix ("'routing_key' is invalid"). Anything else is not shown."""
    try:
        answer = json.loads(raw)
    except ValueError:
        return None
    if not isinstance(answer, dict):
        return None
    parts = [answer.get("message")] + (answer.get("errors") if isinstance(answer.get("errors"), list) else [])
    return "; ".join(part for part in parts if isinstance(part, str)) or None


def _slack_reason(raw: bytes) -> str | None:
    """Slack answers an error with one word (`no_service`, `invalid_payload`, `channel_is_archived`)."""
    text = raw.decode(errors="replace").strip()
    return text if _SLACK_ERROR.fullmatch(text) else None


ERROR_REASONS = {AlertChannelKind.PAGERDUTY: _pagerduty_reason, AlertChannelKind.SLACK: _slack_reason}


def _record(message: AlertMessage, answer: Answer) -> AlertMessage:
    now = timezone.now()
    still_ours = AlertMessage.objects.filter(pk=message.pk, status=PENDING, attempts=message.attempts)
    recorded = {"last_status_code": answer.status_code, "last_error": answer.error}
    channel = message.channel
    if answer.ok:
        settled = still_ours.update(status=SENT, sent_at=now, **recorded)
    elif answer.retryable and message.attempts < channel.max_attempts:
        base = settings.HANDOFF["DELIVERY_RETRY_BASE_SECONDS"]
        wait = http.retry_wait_seconds(base=base, attempt=message.attempts, retry_after=answer.retry_after)
        if still_ours.update(next_attempt_at=now + dt.timedelta(seconds=wait), **recorded):
            alerts_enqueue([message.pk], countdown=wait)
        settled = 0
    else:
        settled = still_ours.update(status=FAILED, **recorded)
        if settled:
            why = "not retryable" if not answer.retryable else f"{message.attempts} attempts"
            logger.error(
                "Alert message %s (%s %s) to %s failed (%s): %s",
                message.pk,
                message.action,
                message.dedup_key,
                channel.name,
                why,
                answer.error,
                extra={"alert_message_id": message.pk, "channel": channel.name},
            )
    logger.info(
        "Alert message %s (%s %s) to %s, attempt %d: %s.",
        message.pk,
        message.action,
        message.dedup_key,
        channel.name,
        message.attempts,
        answer.status_code or answer.error,
        extra={"alert_message_id": message.pk, "channel": channel.name},
    )
    if settled:
        _next_of_alert(message)
    message.refresh_from_db()
    return message


def _next_of_alert(message: AlertMessage) -> None:
    """Publish the message of the same alert and channel that waited for this one, if any."""
    following = (
        AlertMessage.objects.filter(
            channel=message.channel_id, dedup_key=message.dedup_key, pk__gt=message.pk, status=PENDING
        )
        .order_by("pk")
        .values_list("pk", flat=True)
        .first()
    )
    if following is not None:
        alerts_enqueue([following])


def alerts_due(*, limit: int = 1000) -> list[int]:
    """Pending messages whose next attempt has come, oldest first (the beat sweep)."""
    due = AlertMessage.objects.filter(status=PENDING, next_attempt_at__lte=timezone.now())
    return list(due.order_by("next_attempt_at", "pk").values_list("pk", flat=True)[:limit])
