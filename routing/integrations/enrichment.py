"""Enrichment before routing: ask the provider for what the capture system left out, so rules can route
on it (e.g. company_size). It fills in missing fields only; what the lead said itself is never overwritten.

Transient failures (timeouts, connection errors, 5xx, 429 …) retry with exponential backoff and jitter,
honouring Retry-After; the lead waits (`enrich_after`) and its routing task is published again for then.
When the attempts run out the lead routes on what it has, and the decision records that enrichment was
missing; a lead with intent above the threshold goes to a person instead (routing/services.py)."""

import datetime as dt
import json
import logging

from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.db import transaction
from django.db.models import Q
from django.utils import timezone
from pydantic import ValidationError

from routing.dispatch import routing_enqueue
from routing.intake import LeadIn
from routing.integrations import http
from routing.integrations.models import EnrichmentProvider, EnrichmentStatus
from routing.models import Lead, LeadStatus

logger = logging.getLogger(__name__)

ENRICHABLE = (
    "first_name",
    "last_name",
    "phone",
    "company",
    "company_size",
    "country",
    "lifecycle_stage",
    "engagement_score",
    "intent_score",
)
SENT = ("lead_id", "email", "phone", "first_name", "last_name", "company", "company_size", "country")
LEASE_MARGIN_SECONDS = 30
# What is kept of the answer beyond the fields filled in: a few short plain values (industry, revenue band …).
# The answer comes from outside; stored whole it could be anything the URL reached, of any size or depth.
MAX_EXTRA_KEYS = 50
MAX_EXTRA_KEY_CHARS = 64
MAX_EXTRA_TEXT_CHARS = 500
READY, WAIT = "ready", "wait"


def active_provider() -> EnrichmentProvider | None:
    return EnrichmentProvider.objects.filter(is_active=True).order_by("id").first()


def lead_enrich(*, lead_id: int, provider: EnrichmentProvider | None) -> str:
    """READY when the lead can be routed now (enriched, failed for good, nothing to do); WAIT when an
    attempt is scheduled for later (or another worker holds it)."""
    if provider is None:
        return READY
    lead = Lead.objects.filter(pk=lead_id).first()
    if lead is None or lead.status != LeadStatus.RECEIVED or lead.enrichment_status is not None:
        return READY
    now = timezone.now()
    if lead.enrich_after is not None and lead.enrich_after > now:
        return WAIT
    lease = now + dt.timedelta(seconds=provider.timeout_seconds + LEASE_MARGIN_SECONDS)
    claimed = Lead.objects.filter(
        Q(enrich_after__isnull=True) | Q(enrich_after__lte=now),
        pk=lead_id,
        enrichment_status__isnull=True,
        enrichment_attempts=lead.enrichment_attempts,
    ).update(enrichment_attempts=lead.enrichment_attempts + 1, enrich_after=lease)
    if claimed != 1:
        return WAIT
    attempt = lead.enrichment_attempts + 1
    answer = _ask(provider, lead)
    if answer.ok and isinstance(answer.body, dict):
        _apply(lead_id, answer.body)
        return READY
    error = answer.error or "the answer was not a JSON object"
    if answer.ok or not answer.retryable or attempt >= provider.max_attempts:
        logger.warning("Enrichment of lead %s failed for good after %d attempt(s): %s", lead_id, attempt, error)
        Lead.objects.filter(pk=lead_id).update(enrichment_status=EnrichmentStatus.FAILED, enrich_after=None)
        return READY
    wait = http.retry_wait_seconds(
        base=settings.HANDOFF["ENRICHMENT_RETRY_BASE_SECONDS"], attempt=attempt, retry_after=answer.retry_after
    )
    Lead.objects.filter(pk=lead_id).update(enrich_after=timezone.now() + dt.timedelta(seconds=wait))
    logger.info("Enrichment of lead %s failed (%s); attempt %d in %.1f s.", lead_id, error, attempt + 1, wait)
    routing_enqueue([lead_id], countdown=wait)
    return WAIT


def _ask(provider: EnrichmentProvider, lead: Lead) -> http.Answer:
    body = json.dumps({name: getattr(lead, name) for name in SENT}, cls=DjangoJSONEncoder).encode()
    headers = {"Content-Type": "application/json", "User-Agent": "Handoff-Enrichment/1"}
    if provider.auth_value:
        headers[provider.auth_header or "Authorization"] = provider.auth_value
    return http.post(provider.url, content=body, headers=headers, timeout=provider.timeout_seconds)


def _kept_extras(extra: dict) -> dict:
    """The answer's other values that are plain and short: numbers, booleans and text up to
    MAX_EXTRA_TEXT_CHARS, under short keys, at most MAX_EXTRA_KEYS; `dropped` counts the rest."""
    kept = {}
    for key, value in extra.items():
        if len(kept) >= MAX_EXTRA_KEYS or len(key) > MAX_EXTRA_KEY_CHARS or key in ("filled", "dropped"):
            continue
        if value is None or isinstance(value, bool | int | float):
            kept[key] = value
        elif isinstance(value, str) and len(value) <= MAX_EXTRA_TEXT_CHARS:
            kept[key] = value
    if len(kept) < len(extra):
        kept["dropped"] = len(extra) - len(kept)
    return kept


@transaction.atomic
def _apply(lead_id: int, answer: dict) -> None:
    """Fill the lead's missing fields with the provider's values that pass intake validation; the rest of
    the answer is kept under attributes.enrichment for rules and people to read."""
    lead = Lead.objects.select_for_update().get(pk=lead_id)
    filled = {}
    for name in ENRICHABLE:
        if getattr(lead, name) is None and answer.get(name) is not None:
            try:
                clean = LeadIn.model_validate({"lead_id": lead.lead_id, name: answer[name]})
            except ValidationError:
                continue  # a value intake would refuse is not stored either
            filled[name] = getattr(clean, name)
    for name, value in filled.items():
        setattr(lead, name, value)
    extra = _kept_extras({key: value for key, value in answer.items() if key not in ENRICHABLE})
    lead.attributes = {**(lead.attributes or {}), "enrichment": {"filled": sorted(filled), **extra}}
    lead.enrichment_status = EnrichmentStatus.ENRICHED
    lead.enrich_after = None
    lead.save()
