"""The exception desk as a newcomer should first see it: a dozen items of every reason across the demo's queues,
of different ages, some breached, some acknowledged, waiting or assigned, one resolved, and three failures of
the enrichment vendor gathered into one incident. The README's screenshots are taken from it.

Each lead comes in through the real intake; the items open through the same service routing and delivery use,
dated back as if they had opened minutes or hours ago, and people act on them through the console's services.
Only what the demo cannot produce by itself is written this way (a CRM refusing, a vendor timing out); the
trickle adds real exceptions as it goes."""

import datetime as dt
from dataclasses import dataclass

from django.contrib.auth import get_user_model
from django.db import transaction
from django.utils import timezone

from exceptions.incidents import enrichment_cause
from exceptions.models import ExceptionItem, ExceptionReason, Resolution
from exceptions.services import (
    exception_acknowledge,
    exception_assign,
    exception_mark_waiting,
    exception_open,
    exception_resolve,
)
from exceptions.sweep import sla_sweep
from routing.intake import leads_intake
from routing.models import Lead, LeadStatus, Queue, Source

DESK_PREFIX = "desk-"  # the lead ids of the desk's leads, so seeding twice adds nothing


@dataclass(frozen=True)
class DeskItem:
    key: str
    minutes_ago: int
    queue: str
    reason: str
    detail: str
    lead: dict
    outage: bool = False  # one of the enrichment vendor's failures, which gather into one incident


def _lead(lead_id, first, last, company, size, country, stage="mql", email=True, **extra) -> dict:
    lead = {
        "lead_id": DESK_PREFIX + lead_id,
        "first_name": first,
        "last_name": last,
        "company": company,
        "company_size": size,
        "country": country,
        "lifecycle_stage": stage,
        "attributes": {"form": "demo", "utm": {"source": "linkedin"}},
        **extra,
    }
    if email:
        lead["email"] = f"{first}.{last}@{company.split()[0]}.example".lower().replace(" ", "")
    return lead


DESK = [
    DeskItem(
        "ack_breached",
        185,
        "Triage",
        ExceptionReason.NO_MATCHING_RULE,
        "None of the production rules matched.",
        _lead("wf-20377", "Tomas", "Ferreira", "Porto Analytics", 60, "PT", stage="customer"),
    ),
    DeskItem(
        "acknowledged",
        50,
        "Triage",
        ExceptionReason.MISSING_CONTACT,
        "The lead has neither an email address nor a phone number.",
        _lead("ch-3385", "Lena", "Vogel", "Vogel und Soehne", 35, "AT", email=False),
    ),
    DeskItem(
        "escalated",
        130,
        "SDR",
        ExceptionReason.DELIVERY_FAILED,
        "CRM rejected the lead: owner marie has no Salesforce seat.",
        _lead("wf-20350", "Chloe", "Marchand", "Atelier Lumen", 80, "FR"),
    ),
    DeskItem(
        "fresh",
        4,
        "Account Executives",
        ExceptionReason.ENRICHMENT_FAILED,
        "Enrichment provider timed out twice.",
        _lead("hs-88117", "Daan", "de Vries", "Noordzee Energie", 900, "NL"),
        outage=True,
    ),
    DeskItem(
        "waiting",
        22,
        "Support",
        ExceptionReason.NO_ELIGIBLE_ASSIGNEE,
        "Nobody in Support is under their cap and available.",
        _lead("wf-20399", "Ethan", "Clarke", "Maple Robotics", 150, "CA"),
    ),
    DeskItem(
        "resolve_breached",
        540,
        "Account Executives",
        ExceptionReason.NO_ELIGIBLE_ASSIGNEE,
        "No available member under the cap in Account Executives.",
        _lead("hs-88002", "Akira", "Tanaka", "Hoshino Logistics", 12000, "JP"),
    ),
    DeskItem(
        "crm_down",
        9,
        "Account Executives",
        ExceptionReason.DELIVERY_FAILED,
        "CRM webhook returned 502.",
        _lead("hs-88119", "Grace", "Okoye", "Lagos Fintech Group", 2300, "NG"),
    ),
    DeskItem(
        "outage_second",
        11,
        "Account Executives",
        ExceptionReason.ENRICHMENT_FAILED,
        "Enrichment provider answered 503 three times.",
        _lead("hs-88121", "Mei", "Chen", "Harbour Biotech", 640, "SG"),
        outage=True,
    ),
    DeskItem(
        "outage_first",
        19,
        "SDR",
        ExceptionReason.ENRICHMENT_FAILED,
        "Enrichment provider answered 503 three times.",
        _lead("wf-20402", "Olu", "Adeyemi", "Savanna Freight", 210, "KE"),
        outage=True,
    ),
    DeskItem(
        "enrichment_breached",
        41,
        "SDR",
        ExceptionReason.ENRICHMENT_FAILED,
        "Company domain not found by the enrichment provider.",
        _lead("pr-0071", "Sofia", "Rossi", "Rossi Consulting", 8, "IT"),
    ),
    DeskItem(
        "assigned",
        12,
        "Triage",
        ExceptionReason.NO_MATCHING_RULE,
        "None of the production rules matched.",
        _lead("pr-0074", "Ben", "Adler", "Adler Partners", 40, "US", stage="partner"),
    ),
    DeskItem(
        "routing_sla",
        7,
        "Account Executives",
        ExceptionReason.ROUTING_SLA_BREACHED,
        "Not assigned 7 min after it was received, past the 5-minute routing SLO (no rule has decided it). "
        "Stuck in the broker backlog: 1,840 routing task(s) queued in the lanes.",
        _lead("hs-88125", "Nadia", "Haddad", "Cedar Cloud Systems", 1200, "AE"),
    ),
    DeskItem(
        "handoff_unconfirmed",
        25,
        "Account Executives",
        ExceptionReason.HANDOFF_UNCONFIRMED,
        "CRM took lead.assigned (HTTP 202) but has not confirmed it 15 min later (it confirms by callback).",
        _lead("hs-88130", "Lars", "Nilsson", "Fjord Robotics", 300, "SE"),
    ),
    DeskItem(
        "enrichment_invalid",
        14,
        "SDR",
        ExceptionReason.ENRICHMENT_INVALID,
        "The enrichment provider answered values intake refuses, so none of those were stored: country: 'Narnia' "
        "is not an ISO 3166-1 alpha-2 country code (e.g. US, DE, GB).",
        _lead("wf-20410", "Priya", "Nair", "Lotus Health", 75, "IN"),
    ),
    DeskItem(
        "resolved",
        1500,
        "Triage",
        ExceptionReason.ROUTING_FAILED,
        "Routing failed: condition on attributes.region raised TypeError.",
        _lead("wf-20101", "Test", "Test", "asdf", 1, "US"),
    ),
]


@transaction.atomic
def demo_desk_seed(*, source: Source, now: dt.datetime | None = None) -> dict[str, ExceptionItem]:
    """Open the desk's items (once: none if its leads exist already) and take the first steps on them that
    ops people would have taken; returns the items by key (empty when it was seeded before)."""
    if Lead.objects.filter(origin=source, lead_id__startswith=DESK_PREFIX).exists():
        return {}
    now = now or timezone.now()
    people = {user.username: user for user in get_user_model().objects.filter(username__in=["ada", "alan", "marie"])}
    queues = {queue.name: queue for queue in Queue.objects.filter(name__in={entry.queue for entry in DESK})}
    results, ids = leads_intake(source=source, payloads=[entry.lead for entry in DESK])
    refused = [(result.lead_id, result.errors) for result in results if result.errors]
    assert not refused, f"The demo desk's own leads were refused: {refused}"
    leads = {lead.lead_id: lead for lead in Lead.objects.filter(pk__in=ids)}
    Lead.objects.filter(pk__in=ids).update(status=LeadStatus.EXCEPTION)  # what routing does when it opens one
    for entry in DESK:  # each arrived just before its item opened, not hours after
        received = now - dt.timedelta(minutes=entry.minutes_ago, seconds=20)
        Lead.objects.filter(pk=leads[entry.lead["lead_id"]].pk).update(
            received_at=received, occurred_at=received - dt.timedelta(seconds=15)
        )
    items = {
        entry.key: exception_open(
            lead=leads[entry.lead["lead_id"]],
            reason=entry.reason,
            queue=queues[entry.queue],
            detail=entry.detail,
            at=now - dt.timedelta(minutes=entry.minutes_ago),
            cause=enrichment_cause() if entry.outage else None,
        )
        for entry in DESK
    }
    ada, alan, marie = people["ada"], people["alan"], people["marie"]
    items["acknowledged"] = exception_acknowledge(item=items["acknowledged"], by=ada)
    items["resolve_breached"] = exception_acknowledge(item=items["resolve_breached"], by=alan)
    items["waiting"] = exception_mark_waiting(item=items["waiting"], by=marie, note="Asked the customer for a phone.")
    items["assigned"] = exception_assign(item=items["assigned"], to=ada, by=ada)
    items["resolved"] = exception_resolve(
        item=items["resolved"], by=ada, resolution=Resolution.NOT_A_LEAD, note="A test submission."
    )
    sla_sweep(now=now)  # the breaches are marked at once, not at beat's first sweep
    return items
