"""The events people's actions queue for execution targets: lead.reassigned when a lead is assigned by hand,
exception.resolved when an exception is resolved; written with the change, and only if it commits."""

import pytest
from django.core.serializers.json import DjangoJSONEncoder
from django.db import transaction
from django.utils import timezone

from exceptions.models import Resolution
from exceptions.services import exception_resolve
from exceptions.triage import lead_assign_manually
from routing.integrations.models import OutboxEvent, OutboxStatus
from routing.models import LeadStatus
from tests.factories import DeliveryTargetFactory, LeadFactory, MembershipFactory, QueueFactory, open_exception

pytestmark = pytest.mark.django_db


def as_json(value):
    """A datetime as the outbox stores it (DjangoJSONEncoder), to compare with a payload read back."""
    return DjangoJSONEncoder().default(value)


def person(user) -> dict:
    return {"username": user.get_username(), "email": user.email, "name": user.get_full_name()}


def lead_data(lead) -> dict:
    return {
        "id": lead.pk,
        "lead_id": lead.lead_id,
        "origin": lead.origin.name,
        "email": lead.email,
        "phone": lead.phone,
        "first_name": lead.first_name,
        "last_name": lead.last_name,
        "company": lead.company,
        "country": lead.country,
        "lifecycle_stage": lead.lifecycle_stage,
    }


@pytest.fixture
def crm():
    return DeliveryTargetFactory(name="CRM")  # subscribed to every event type


@pytest.fixture
def sales():
    queue = QueueFactory(name="Sales")
    MembershipFactory(queue=queue, user__username="alice")
    return queue


@pytest.fixture
def partners():
    queue = QueueFactory(name="Partners")
    MembershipFactory(queue=queue, user__username="pia")
    return queue


def queued(target) -> list[OutboxEvent]:
    return list(target.events_out.order_by("pk"))


def test_assigning_a_lead_by_hand_queues_lead_reassigned_with_from_to_by_and_reason(crm, sales, partners, ops_person):
    alice, pia = sales.members.get(), partners.members.get()
    lead = LeadFactory(
        lead_id="wf-7", status=LeadStatus.ASSIGNED, queue=sales, assignee=alice, assigned_at=timezone.now()
    )

    lead, _ = lead_assign_manually(lead=lead, queue=partners, assignee=pia, reason="Partner deal", by=ops_person)

    (event,) = queued(crm)
    assert (event.event_type, event.lead, event.status, event.attempts) == (
        "lead.reassigned",
        lead,
        OutboxStatus.PENDING,
        0,
    )
    assert event.next_attempt_at <= timezone.now()
    assert event.payload == {
        "type": "lead.reassigned",
        "occurred_at": as_json(event.created_at),
        "data": {
            "lead": lead_data(lead),
            "from": {"queue": "Sales", "assignee": person(alice)},
            "to": {"queue": "Partners", "assignee": person(pia)},
            "by": person(ops_person),
            "reason": "Partner deal",
            "assigned_at": as_json(lead.assigned_at),
        },
    }


def test_assigning_an_exceptions_lead_by_hand_queues_lead_reassigned_then_exception_resolved(crm, partners, ops_person):
    item = open_exception(lead_id="wf-8")  # a lead no rule matched, in Triage, assigned to nobody
    pia = partners.members.get()

    lead, _ = lead_assign_manually(
        lead=item.lead, queue=partners, assignee=pia, reason="Known partner", by=ops_person, item=item
    )

    reassigned, resolved = queued(crm)
    assert reassigned.event_type == "lead.reassigned"
    assert reassigned.payload["data"]["from"] == {"queue": None, "assignee": None}
    assert reassigned.payload["data"]["to"] == {"queue": "Partners", "assignee": person(pia)}
    item.refresh_from_db()
    assert (resolved.event_type, resolved.lead, resolved.status) == ("exception.resolved", lead, OutboxStatus.PENDING)
    assert resolved.payload == {
        "type": "exception.resolved",
        "occurred_at": as_json(resolved.created_at),
        "data": {
            "exception": {
                "id": item.pk,
                "reason": "no_matching_rule",
                "queue": "Triage",
                "resolution": "rerouted",
                "note": "Assigned by hand: Known partner",
                "resolved_at": as_json(item.resolved_at),
                "resolved_by": person(ops_person),
            },
            "lead": lead_data(lead),
        },
    }
    assert resolved.idempotency_key != reassigned.idempotency_key


def test_resolving_an_exception_queues_exception_resolved(crm, ops_person):
    item = open_exception(lead_id="spam-1")

    item = exception_resolve(item=item, by=ops_person, resolution=Resolution.SPAM, note="Bot signup")

    (event,) = queued(crm)
    assert (event.event_type, event.lead_id) == ("exception.resolved", item.lead_id)
    assert event.payload["data"]["exception"] == {
        "id": item.pk,
        "reason": "no_matching_rule",
        "queue": "Triage",
        "resolution": "spam",
        "note": "Bot signup",
        "resolved_at": as_json(item.resolved_at),
        "resolved_by": person(ops_person),
    }
    assert event.payload["data"]["lead"] == lead_data(item.lead)


def test_each_target_gets_only_the_event_types_it_subscribed_to(ops_person, partners):
    crm = DeliveryTargetFactory(name="CRM", events=["lead.reassigned"])
    analytics = DeliveryTargetFactory(name="Analytics", events=["exception.resolved"])
    DeliveryTargetFactory(name="Retired", is_active=False)
    item = open_exception()

    lead_assign_manually(
        lead=item.lead, queue=partners, assignee=None, reason="Partner queue", by=ops_person, item=item
    )

    assert [e.event_type for e in queued(crm)] == ["lead.reassigned"]
    assert [e.event_type for e in queued(analytics)] == ["exception.resolved"]
    assert OutboxEvent.objects.count() == 2


def test_a_resolution_that_rolls_back_leaves_no_event(crm, ops_person):
    item = open_exception()

    with pytest.raises(RuntimeError), transaction.atomic():
        exception_resolve(item=item, by=ops_person, resolution=Resolution.DUPLICATE)
        raise RuntimeError("the surrounding change failed")

    assert not OutboxEvent.objects.exists()
