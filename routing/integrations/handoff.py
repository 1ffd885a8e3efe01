"""Handoff confirmation: a lead counts as handed off only once every target subscribed to its assignment has
confirmed receiving it, not when we merely sent it (README: Delivery).

- A target that answers synchronously confirms with its 2xx: delivery.py writes `delivery_receipt`'s fields
  in the same UPDATE that marks the event delivered.
- A target with `confirms_by_callback` processes asynchronously: its event stays unconfirmed after the 2xx
  until the receiver calls `POST /api/v1/deliveries/{id}/ack/`, signed with the target's secret (Standard
  Webhooks headers). `{"status": "failed"}` is a dead handoff: handoff_unconfirmed opens at once.
- `Lead.handed_off_at` is set when, for every active target, the lead's latest `lead.assigned` event is
  confirmed (a lead routed again after an exception has a newer event per target; the older one no longer
  counts). `lead.reassigned` events are confirmed, shown and swept the same way, but do not move
  `handed_off_at`: it records the lead's first handoff, the one parity counts.
- Beat's sweep opens `handoff_unconfirmed` for events (pending or delivered) still unconfirmed
  `confirm_within_minutes` after they were written (the assignment), once per event (`unconfirmed_at`);
  a confirmation arriving later resolves the item, by the system, once none of the lead's flagged events is
  left unconfirmed.
"""

import datetime as dt
import hmac
import logging
import uuid
from collections import defaultdict
from dataclasses import dataclass

from django.db import models, transaction
from django.db.models import DateTimeField, ExpressionWrapper, F, Value
from django.utils import timezone

from audit.models import AuditAction
from audit.services import audit_event
from exceptions.incidents import Cause
from exceptions.models import UNRESOLVED, ExceptionItem, ExceptionReason, Resolution
from exceptions.services import ExceptionConflict, Opening, exception_resolve, exceptions_open
from routing.bulk import bulk_insert
from routing.integrations import signing
from routing.integrations.models import DeliveryTarget, EventType, OutboxEvent, OutboxStatus
from routing.models import Lead, LeadStatus

logger = logging.getLogger(__name__)

HANDOFF_EVENTS = (EventType.LEAD_ASSIGNED, EventType.LEAD_REASSIGNED)
# A callback signed longer ago (or further ahead) than this is refused, as Standard Webhooks receivers do.
ACK_TOLERANCE_SECONDS = 300
SWEEP_LIMIT = 1000


class AckOutcome(models.TextChoices):
    """What a receiver's callback reports."""

    PROCESSED = "processed", "Processed"
    FAILED = "failed", "Failed"


class DeliveryState(models.TextChoices):
    """What the lead API and page show per event (derived from the event, not stored)."""

    PENDING = "pending", "Pending"
    DELIVERED = "delivered", "Delivered, unconfirmed"  # 2xx; a callback target has not confirmed yet
    CONFIRMED = "confirmed", "Confirmed"
    DEAD = "dead", "Dead"  # dead-lettered, or the receiver called back "failed"


def delivery_state(event: OutboxEvent) -> str:
    if event.confirmed_at is not None:
        return DeliveryState.CONFIRMED
    if event.status == OutboxStatus.DEAD or (event.confirmation or {}).get("status") == AckOutcome.FAILED:
        return DeliveryState.DEAD
    if event.status == OutboxStatus.DELIVERED:
        return DeliveryState.DELIVERED
    return DeliveryState.PENDING


def delivery_receipt_shown(event: OutboxEvent) -> dict:
    """The receipt shown: the confirmation (status code, or the receiver's callback), else a dead letter's error."""
    return event.confirmation or ({"error": event.last_error} if event.status == OutboxStatus.DEAD else {})


def lead_deliveries(*, lead_id: int) -> list[OutboxEvent]:
    """The lead's outbox events with their targets, oldest first (one query), each with `state` and `receipt`
    set for the lead API and page."""
    events = list(OutboxEvent.objects.filter(lead_id=lead_id).select_related("target").order_by("created_at", "id"))
    for event in events:
        event.state, event.receipt = delivery_state(event), delivery_receipt_shown(event)
        event.receipt_text = _receipt_text(event.receipt)
    return events


def _receipt_text(receipt: dict) -> str:
    if "status_code" in receipt:
        return f"HTTP {receipt['status_code']}"
    if "status" in receipt:
        said = ", ".join(part for part in (receipt.get("reference"), receipt.get("message")) if part)
        return f"{receipt['status']} (callback){': ' + said if said else ''}"
    return receipt.get("error", "")


def handoff_summary(*, lead: Lead, deliveries: list[OutboxEvent]) -> str:
    """The lead's handoff in words: "handed off" only once confirmed by every target."""
    if lead.handed_off_at is not None:
        return "handed off"
    if lead.status != LeadStatus.ASSIGNED:
        return "not assigned"
    if not any(e.event_type == EventType.LEAD_ASSIGNED for e in deliveries):
        return "assigned, no delivery target subscribed"
    if any(e.state == DeliveryState.DEAD for e in deliveries if e.event_type == EventType.LEAD_ASSIGNED):
        return "assigned, handoff failed"
    return "assigned, handoff pending"


# Confirming ----------------------------------------------------------------------------------------------------


def delivery_receipt(*, target: DeliveryTarget, status_code: int, at: dt.datetime) -> dict:
    """The fields delivery.py writes with DELIVERED: the 2xx is the confirmation, unless the target confirms by
    calling back (then nothing: the event waits for the callback)."""
    if target.confirms_by_callback:
        return {}
    return {"confirmed_at": at, "confirmation": {"status_code": status_code, "at": at.isoformat()}}


def handoff_event_confirmed(*, event: OutboxEvent, at: dt.datetime) -> None:
    """An event's confirmation was just written (inside the transaction that wrote it): the lead may now be
    handed off, and a handoff_unconfirmed item opened for it may be settled."""
    if event.lead_id is None:
        return
    if event.event_type == EventType.LEAD_ASSIGNED:
        leads_handoff_settle(lead_ids=[event.lead_id], at=at)
    _unconfirmed_items_settle(lead_ids=[event.lead_id], confirmed_event_id=event.pk, at=at)


def leads_handoff_settle(*, lead_ids: list[int], at: dt.datetime) -> list[int]:
    """Set `handed_off_at` on those leads whose latest lead.assigned event to every active target is confirmed,
    with one audit event each. Returns the leads handed off now."""
    latest = (
        OutboxEvent.objects.filter(lead_id__in=lead_ids, event_type=EventType.LEAD_ASSIGNED, target__is_active=True)
        .order_by("lead_id", "target_id", "-id")
        .distinct("lead_id", "target_id")
        .values_list("lead_id", "confirmed_at")
    )
    waiting, seen = set(), set()
    for lead_id, confirmed_at in latest:
        seen.add(lead_id)
        if confirmed_at is None:
            waiting.add(lead_id)
    ready = seen - waiting
    if not ready:
        return []
    leads = list(Lead.objects.filter(pk__in=ready, handed_off_at__isnull=True).select_for_update().only("pk"))
    if not leads:
        return []
    Lead.objects.filter(pk__in=[lead.pk for lead in leads], handed_off_at__isnull=True).update(handed_off_at=at)
    bulk_insert(
        [audit_event(action=AuditAction.HANDOFF_CONFIRMED, lead=lead, outcome="handed off", at=at) for lead in leads]
    )
    return [lead.pk for lead in leads]


def _unconfirmed_items_settle(*, lead_ids: list[int], confirmed_event_id: int, at: dt.datetime) -> None:
    """Resolve the leads' open handoff_unconfirmed items whose flagged events are all confirmed now."""
    items = ExceptionItem.objects.filter(UNRESOLVED, lead_id__in=lead_ids, reason=ExceptionReason.HANDOFF_UNCONFIRMED)
    for item in items:
        still = OutboxEvent.objects.filter(
            lead_id=item.lead_id, unconfirmed_at__isnull=False, confirmed_at__isnull=True
        )
        if still.exists():
            continue  # another target's handoff is still unconfirmed: the item stands for it
        note = f"Event {confirmed_event_id} was confirmed late: every flagged handoff of the lead is confirmed."
        try:
            with transaction.atomic():
                exception_resolve(item=item, by=None, resolution=Resolution.FIXED_UPSTREAM, note=note)
        except ExceptionConflict:
            continue  # someone resolved it meanwhile


# The callback ---------------------------------------------------------------------------------------------------


class AckRefused(Exception):
    """Not signed with the target's secret, or signed too long ago (401)."""


class AckNotAllowed(Exception):
    """Signed correctly, but this target confirms with its 2xx and does not call back (403)."""


class AckConflict(Exception):
    """The event was already confirmed with the other outcome (409)."""


@dataclass(frozen=True)
class AckResult:
    event: OutboxEvent
    state: str
    repeated: bool  # the same outcome was recorded before: nothing changed


def ack_event(*, ref: str) -> OutboxEvent | None:
    """The delivery a callback names: by its id (the lead API's `deliveries`), or by its webhook-id (the UUID the
    receiver got in the `webhook-id` header and the body's `id`)."""
    events = OutboxEvent.objects.select_related("target")
    if ref.isascii() and ref.isdigit() and len(ref) <= 18:
        return events.filter(pk=int(ref)).first()
    try:
        key = uuid.UUID(ref)
    except ValueError:
        return None
    return events.filter(idempotency_key=key).first()


def ack_signature_check(*, event: OutboxEvent, headers, body: bytes, now: dt.datetime | None = None) -> None:
    """Verify a callback's Standard Webhooks headers against the target's secrets (the current one, and the
    previous one while its overlap lasts): raises AckRefused saying what is wrong, or AckNotAllowed."""
    now = now or timezone.now()
    msg_id = headers.get(signing.ID_HEADER, "")
    stamp = headers.get(signing.STANDARD_TIMESTAMP_HEADER, "")
    given = headers.get(signing.STANDARD_SIGNATURE_HEADER, "")
    if not (msg_id and stamp and given):
        raise AckRefused(
            f"Sign the callback: {signing.ID_HEADER}, {signing.STANDARD_TIMESTAMP_HEADER} and "
            f"{signing.STANDARD_SIGNATURE_HEADER} (Standard Webhooks, with the target's secret)."
        )
    # The id signed is the delivery's own: an ack captured for one delivery cannot confirm another of the target.
    if msg_id != str(event.idempotency_key):
        raise AckRefused(
            f"{signing.ID_HEADER} must be this delivery's webhook-id ({event.idempotency_key}), the one it was "
            "delivered with: sign the callback with it."
        )
    if not (stamp.isascii() and stamp.isdigit()) or len(stamp) > 12:
        raise AckRefused(f"{signing.STANDARD_TIMESTAMP_HEADER} must be Unix seconds.")
    if abs(now.timestamp() - int(stamp)) > ACK_TOLERANCE_SECONDS:
        raise AckRefused(
            f"{signing.STANDARD_TIMESTAMP_HEADER} is more than {ACK_TOLERANCE_SECONDS} s from now: sign each "
            "callback when it is sent (check the receiver's clock)."
        )
    offered = {part.strip() for part in given.split(" ") if part.strip()}
    expected = [signing.standard_signature(s, msg_id, int(stamp), body) for s in event.target.signing_secrets(now)]
    if not any(hmac.compare_digest(e, o) for e in expected for o in offered):
        raise AckRefused("The signature does not match the target's secret.")
    if not event.target.confirms_by_callback:
        raise AckNotAllowed(
            f"Target {event.target.name} confirms deliveries with its 2xx answer; turn on "
            "'confirms by callback' for it to call back."
        )


def handoff_ack(
    *, event: OutboxEvent, outcome: str, reference: str = "", message: str = "", at: dt.datetime | None = None
) -> AckResult:
    """Record a receiver's callback on the event. "processed" confirms it (and may hand the lead off, or settle
    a handoff_unconfirmed item); "failed" is a dead handoff: handoff_unconfirmed opens at once with the
    receiver's message. A repeat of the recorded outcome changes nothing; "processed" after "failed" is the
    receiver's retry succeeding; "failed" after "processed" is refused (AckConflict)."""
    at = at or timezone.now()
    receipt = {"status": outcome, "reference": reference, "message": message, "at": at.isoformat(), "by": "callback"}
    with transaction.atomic():
        fresh = OutboxEvent.objects.select_for_update(of=("self",)).select_related("target", "lead").get(pk=event.pk)
        recorded = (fresh.confirmation or {}).get("status")
        if fresh.confirmed_at is not None:
            if outcome == AckOutcome.PROCESSED:
                return AckResult(fresh, delivery_state(fresh), repeated=True)
            raise AckConflict(
                f"Event {fresh.pk} was already confirmed as processed at {fresh.confirmed_at.isoformat()}; "
                "a confirmed handoff cannot fail afterwards."
            )
        if outcome == AckOutcome.FAILED:
            if recorded == AckOutcome.FAILED:
                return AckResult(fresh, delivery_state(fresh), repeated=True)
            fresh.confirmation, fresh.unconfirmed_at = receipt, fresh.unconfirmed_at or at
            fresh.save(update_fields=["confirmation", "unconfirmed_at"])
            if fresh.lead_id is not None:
                failed = f"the receiver reported it failed: {message or 'no message'}"
                _items_open(events=[fresh], why=lambda _event: failed, at=at)
            logger.warning("Event %s: %s reported the handoff failed: %s", fresh.pk, fresh.target.name, message)
            return AckResult(fresh, delivery_state(fresh), repeated=False)
        fresh.confirmed_at, fresh.confirmation = at, receipt
        fresh.save(update_fields=["confirmed_at", "confirmation"])
        handoff_event_confirmed(event=fresh, at=at)
        return AckResult(fresh, delivery_state(fresh), repeated=False)


# The sweep -----------------------------------------------------------------------------------------------------


def handoffs_unconfirmed_sweep(*, now: dt.datetime | None = None, limit: int = SWEEP_LIMIT) -> int:
    """Beat: events of a handoff (pending or delivered) still unconfirmed `confirm_within_minutes` after they
    were written open one handoff_unconfirmed item per lead and are marked (`unconfirmed_at`), so each is
    flagged once; a second tick, or a second worker, finds nothing. Returns the events flagged."""
    now = now or timezone.now()
    deadline = ExpressionWrapper(
        Value(now) - F("target__confirm_within_minutes") * Value(dt.timedelta(minutes=1)),
        output_field=DateTimeField(),
    )
    overdue = OutboxEvent.objects.filter(
        event_type__in=HANDOFF_EVENTS,
        target__is_active=True,  # a target switched off confirms nothing more: its handoffs are not awaited
        status__in=[OutboxStatus.PENDING, OutboxStatus.DELIVERED],
        lead__isnull=False,
        confirmed_at__isnull=True,
        unconfirmed_at__isnull=True,
        created_at__lt=deadline,
    )
    with transaction.atomic():
        events = list(
            overdue.select_for_update(of=("self",), skip_locked=True)
            .select_related("target", "lead")
            .order_by("created_at", "id")[:limit]
        )
        if not events:
            return 0
        OutboxEvent.objects.filter(pk__in=[e.pk for e in events]).update(unconfirmed_at=now)
        _items_open(events=events, why=_overdue_why, at=now)
    logger.warning("%d handoff(s) unconfirmed past their target's grace: handoff_unconfirmed opened.", len(events))
    return len(events)


def _overdue_why(event: OutboxEvent) -> str:
    sent = "delivered, no callback" if event.status == OutboxStatus.DELIVERED else "not delivered yet"
    return f"not confirmed within {event.target.confirm_within_minutes} min ({sent})"


def _items_open(*, events: list[OutboxEvent], why, at: dt.datetime) -> None:
    """One handoff_unconfirmed item per lead (an open one is reused), naming each unconfirmed event."""
    by_lead: dict[int, list[OutboxEvent]] = defaultdict(list)
    for event in events:
        by_lead[event.lead_id].append(event)
    openings = []
    for grouped in by_lead.values():
        first = grouped[0]
        detail = "; ".join(f"{e.event_type} to {e.target.name} (event {e.pk}): {why(e)}" for e in grouped)[:2000]
        cause = Cause(
            f"{ExceptionReason.HANDOFF_UNCONFIRMED}:{first.target_id}",
            f"Handoffs to {first.target.name} are not confirmed",
        )
        openings.append(
            Opening(lead=first.lead, reason=ExceptionReason.HANDOFF_UNCONFIRMED, detail=detail, cause=cause)
        )
    exceptions_open(openings=openings, at=at)  # audited there (exception.opened, with the detail)
