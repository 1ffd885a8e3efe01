"""A known day of leads, exception items, human actions, overrides and dead letters, with its figures.

Day D = 2026-11-10 (UTC). Latencies (occurred_at → assigned_at):
  Inbound (SLA 15 min), from web-form: 1, 2, 3, 4, 5, 6, 7, 8, 15 (exactly the SLA) and 30 minutes.
  Partners (SLA 60 min), from chat: 10 s, 25 s and 2 hours.
Two more web-form leads matched no rule and opened exception items in Triage; one lead was received the
day before (outside the window)."""

import datetime as dt

import pytest

from audit.models import AuditAction, Override
from audit.services import audit_record
from exceptions.models import ExceptionStatus
from routing.integrations.models import OutboxStatus
from routing.models import LeadStatus
from tests.factories import (
    ExceptionItemFactory,
    LeadFactory,
    OutboxEventFactory,
    QueueFactory,
    RuleFactory,
    SourceFactory,
    UserFactory,
)

D = dt.date(2026, 11, 10)
NOON = dt.datetime(2026, 11, 10, 12, 0, tzinfo=dt.UTC)
INBOUND_MINUTES = [1, 2, 3, 4, 5, 6, 7, 8, 15, 30]
PARTNER_SECONDS = [10, 25, 7200]


def assigned_lead(*, origin, rule, seconds, at=NOON, **fields):
    return LeadFactory(
        origin=origin,
        rule=rule,
        rule_version=1,
        queue=rule.queue,
        status=LeadStatus.ASSIGNED,
        occurred_at=at,
        received_at=at + dt.timedelta(seconds=2),
        routed_at=at + dt.timedelta(seconds=seconds),
        assigned_at=at + dt.timedelta(seconds=seconds),
        **fields,
    )


@pytest.fixture
def known_day(db, ops_person):
    web, chat = SourceFactory(name="web-form"), SourceFactory(name="chat")
    inbound = RuleFactory(name="Inbound", sla_minutes=15, queue=QueueFactory(name="Sales"))
    partners = RuleFactory(name="Partners", sla_minutes=60, queue=QueueFactory(name="Partners"))
    triage = QueueFactory(name="Triage")
    leads = [assigned_lead(origin=web, rule=inbound, seconds=m * 60) for m in INBOUND_MINUTES]
    leads += [assigned_lead(origin=chat, rule=partners, seconds=s) for s in PARTNER_SECONDS]
    for lead, status in zip(leads[:4], ["enriched", "enriched", "enriched", "failed"], strict=True):
        lead.enrichment_status = status
        lead.save(update_fields=["enrichment_status"])
    # Outside the window: received the day before.
    assigned_lead(origin=web, rule=inbound, seconds=3600, at=NOON - dt.timedelta(days=1))

    # Two exception items on leads no rule matched: one met both clocks, one breached acknowledgement.
    met = ExceptionItemFactory(
        lead=LeadFactory(origin=web, status=LeadStatus.EXCEPTION, occurred_at=NOON, received_at=NOON),
        queue=triage,
        opened_at=NOON,
        status=ExceptionStatus.RESOLVED,
        acknowledged_at=NOON + dt.timedelta(minutes=10),
        resolved_at=NOON + dt.timedelta(minutes=50),
    )
    breached = ExceptionItemFactory(
        lead=LeadFactory(origin=web, status=LeadStatus.EXCEPTION, occurred_at=NOON, received_at=NOON),
        queue=triage,
        opened_at=NOON,
        ack_breached_at=NOON + dt.timedelta(minutes=30),
    )
    # Human actions: acknowledge and resolve on one lead, an override of an Inbound lead; the engine's
    # decision and a person's action on a lead outside the window are not counted.
    pat = UserFactory(username="pat")
    audit_record(action=AuditAction.EXCEPTION_ACKNOWLEDGED, actor=ops_person, lead=met.lead, at=NOON)
    audit_record(action=AuditAction.EXCEPTION_RESOLVED, actor=ops_person, lead=met.lead, at=NOON)
    audit_record(action=AuditAction.LEAD_OVERRIDE, actor=pat, lead=leads[9], at=NOON)
    audit_record(action=AuditAction.ROUTING_DECISION, lead=leads[0], at=NOON)
    Override.objects.create(
        lead=leads[9], rule=inbound, rule_version=1, to_queue=triage, by=pat, at=NOON, reason="Key account."
    )
    # Delivery: two dead letters; one replay that was delivered.
    replayed = OutboxEventFactory(status=OutboxStatus.DELIVERED, replays=1)
    OutboxEventFactory(status=OutboxStatus.DEAD, dead_at=NOON)
    for _ in range(2):
        audit_record(action=AuditAction.DELIVERY_DEAD_LETTERED, lead=leads[0], at=NOON)
    audit_record(
        action=AuditAction.DELIVERY_REPLAYED, actor=ops_person, lead=leads[0], at=NOON, data={"event_id": replayed.pk}
    )
    return {
        "web": web,
        "chat": chat,
        "inbound": inbound,
        "partners": partners,
        "triage": triage,
        "met": met,
        "breached": breached,
    }
