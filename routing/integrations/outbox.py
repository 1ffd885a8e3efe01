"""The outbox: write an event for each target that wants it, inside the transaction of the change it
reports, and build the signed request that carries it. The delivery policy (attempt, record the answer, retry,
dead-letter) is routing/integrations/delivery.py.

Each target's scheme says how a request is signed (routing/integrations/signing.py, README: Delivery):
Standard Webhooks (`webhook-id`, `webhook-timestamp`, `webhook-signature`), the legacy `X-Handoff-*` headers,
or both. Receivers drop repeats by `webhook-id` (legacy: `Idempotency-Key`), the same on every attempt.
"""

import json
from collections.abc import Callable

from django.core.serializers.json import DjangoJSONEncoder
from django.db import transaction
from django.utils import timezone

from routing.bulk import bulk_insert
from routing.dispatch import deliveries_enqueue
from routing.integrations import signing
from routing.integrations.models import DeliveryTarget, OutboxEvent, SignatureScheme


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
    """The body and headers of one attempt: a fresh timestamp and signature each time, the same id."""
    msg_id = str(event.idempotency_key)
    body = json.dumps({"id": msg_id, **event.payload}, cls=DjangoJSONEncoder, separators=(",", ":")).encode()
    now = timezone.now()
    timestamp = int(now.timestamp())
    target = event.target
    headers = {"Content-Type": "application/json", "User-Agent": "Handoff-Delivery/1"}
    if target.signature_scheme in (SignatureScheme.STANDARD, SignatureScheme.BOTH):
        secrets = target.signing_secrets(now)
        headers |= signing.standard_headers(msg_id=msg_id, timestamp=timestamp, body=body, secrets=secrets)
    if target.signature_scheme in (SignatureScheme.LEGACY, SignatureScheme.BOTH):
        headers |= signing.legacy_headers(
            event_type=event.event_type, msg_id=msg_id, timestamp=timestamp, body=body, secret=target.secret
        )
    return body, headers
