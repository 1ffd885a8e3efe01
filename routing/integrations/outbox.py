"""The outbox: write an event for each target that wants it, inside the transaction of the change it
reports, and build the signed request that carries it. The delivery policy (attempt, record the answer, retry,
dead-letter) is routing/integrations/delivery.py.

Receivers verify `X-Handoff-Signature` (README: Delivery) and drop repeats by `Idempotency-Key`.
"""

import hashlib
import hmac
import json
import time
from collections.abc import Callable

from django.core.serializers.json import DjangoJSONEncoder
from django.db import transaction
from django.utils import timezone

from routing.bulk import bulk_insert
from routing.dispatch import deliveries_enqueue
from routing.integrations.models import DeliveryTarget, OutboxEvent

SIGNATURE_HEADER = "X-Handoff-Signature"
TIMESTAMP_HEADER = "X-Handoff-Timestamp"
EVENT_HEADER = "X-Handoff-Event"
IDEMPOTENCY_HEADER = "Idempotency-Key"


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """HMAC-SHA256 over "<timestamp>.<raw body>", hex, as `v1=<hex>` (the scheme Stripe uses)."""
    digest = hmac.new(secret.encode(), str(timestamp).encode() + b"." + body, hashlib.sha256).hexdigest()
    return f"v1={digest}"


def verify(secret: str, headers, body: bytes, *, tolerance_seconds: int = 300, now: float | None = None) -> bool:
    """What a receiver does: constant-time compare, and refuse stale timestamps (replayed captures)."""
    try:
        timestamp = int(headers[TIMESTAMP_HEADER])
    except (KeyError, TypeError, ValueError):
        return False
    if abs((now or time.time()) - timestamp) > tolerance_seconds:
        return False
    return hmac.compare_digest(sign(secret, timestamp, body), headers.get(SIGNATURE_HEADER, ""))


def events_emit(*, event_type: str, payload: Callable[[], dict], lead=None) -> list[OutboxEvent]:
    """Queue an event for every active target that receives this type. Call inside the transaction of the
    change it reports: the event exists if and only if the change committed. `payload` is only built when
    some target wants the event."""
    return events_emit_many(event_type=event_type, items=[(lead, payload)])


def events_emit_many(*, event_type: str, items: list[tuple[object, Callable[[], dict]]]) -> list[OutboxEvent]:
    """`events_emit` for many (lead, payload) pairs at once: one read of the targets, one write."""
    targets = [t for t in DeliveryTarget.objects.filter(is_active=True) if event_type in (t.events or [])]
    if not targets or not items:
        return []
    now = timezone.now()
    rows = []
    for lead, payload in items:
        body = {"type": event_type, "occurred_at": now, "data": payload()}
        rows += [
            OutboxEvent(
                target=target, event_type=event_type, lead=lead, payload=body, created_at=now, next_attempt_at=now
            )
            for target in targets
        ]
    events = bulk_insert(rows)
    ids = [event.pk for event in events]
    transaction.on_commit(lambda: deliveries_enqueue(ids))
    return events


def signed_request(event: OutboxEvent) -> tuple[bytes, dict[str, str]]:
    """The body and headers of one attempt: a fresh timestamp and signature each time."""
    body = json.dumps(
        {"id": str(event.idempotency_key), **event.payload}, cls=DjangoJSONEncoder, separators=(",", ":")
    ).encode()
    timestamp = int(time.time())
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "Handoff-Delivery/1",
        EVENT_HEADER: event.event_type,
        IDEMPOTENCY_HEADER: str(event.idempotency_key),
        TIMESTAMP_HEADER: str(timestamp),
        SIGNATURE_HEADER: sign(event.target.secret, timestamp, body),
    }
    return body, headers
