"""Enrichment before routing: ask the provider for what the capture system left out, so rules can route
on it (e.g. company_size). It fills in missing fields only; what the lead said itself is never overwritten.

Transient failures (timeouts, connection errors, 5xx, 429 …) retry with exponential backoff and jitter,
honouring Retry-After; the lead waits (`enrich_after`) and its enrichment is published again for then.
Enrichment has a lane of its own (settings.HANDOFF_QUEUES): routing hands a lead that needs it over and
routes it once it is settled, so a slow or dead provider never holds a routing worker.
When the attempts run out the lead routes on what it has, and the decision records that enrichment was
missing; a lead with intent above the threshold goes to a person instead (routing/services.py).

Each value the provider answers is validated as intake would validate it: one it would refuse sends the lead
to a person (`invalid`: enrichment_invalid, what was wrong field by field), keeping the valid ones. Every call
leaves a receipt (EnrichmentReceipt: outcome, latency, fields filled, what was invalid), which /metrics, the
dashboard and the health check read (enrichment_health.py). While an enrichment incident is open (the provider
below its success target), a lead gets one attempt and no waits: a failure sends it to a person whatever its
intent."""

import datetime as dt
import json
import logging
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone
from pydantic import ValidationError

from exceptions.incidents import enrichment_incident_open
from routing.dispatch import Lane, enrichment_enqueue
from routing.intake import LeadIn, validation_errors
from routing.integrations import http
from routing.integrations.models import EnrichmentOutcome, EnrichmentProvider, EnrichmentReceipt, EnrichmentStatus
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
# Keys of attributes.enrichment that are the product's, not the provider's.
OWN_KEYS = ("filled", "invalid", "dropped")
READY, WAIT = "ready", "wait"


def active_provider() -> EnrichmentProvider | None:
    return EnrichmentProvider.objects.filter(is_active=True).order_by("id").first()


def leads_awaiting_enrichment(lead_ids: Sequence[int]) -> list[int]:
    """Those of these leads that the provider has not answered for yet: routing hands them to the enrichment
    lane instead of routing them (one query)."""
    waiting = Lead.objects.filter(pk__in=lead_ids, status=LeadStatus.RECEIVED, enrichment_status__isnull=True)
    return list(waiting.values_list("pk", flat=True))


def lead_enrich(*, lead_id: int, provider: EnrichmentProvider | None, lane: Lane = Lane.BULK) -> str:
    """READY when the lead can be routed now (enriched, failed for good, nothing to do); WAIT when an
    attempt is scheduled for later (or another worker holds it)."""
    return READY if leads_enrich(lead_ids=[lead_id], provider=provider, lane=lane) else WAIT


def leads_enrich(*, lead_ids: Sequence[int], provider: EnrichmentProvider | None, lane: Lane) -> list[int]:
    """One attempt for each of these leads that is due, the provider's calls in flight together (up to
    ENRICHMENT_CONCURRENCY); returns the leads that can be routed now. A lead whose attempt failed but may
    succeed later waits (`enrich_after`) and its enrichment is published again for then, to be routed on
    `lane` once it settles."""
    if provider is None:
        return list(lead_ids)
    if provider_down(provider):
        return leads_skip_enrichment(lead_ids, provider)
    ready, claimed = [], []
    for lead_id in lead_ids:
        state, lead = _claim(lead_id, provider)
        if state == READY:
            ready.append(lead_id)
        elif lead is not None:
            claimed.append(lead)
    if not claimed:
        return ready
    # Only the HTTP calls run in threads; every database read and write stays on this thread's connection.
    with ThreadPoolExecutor(max_workers=min(len(claimed), settings.HANDOFF["ENRICHMENT_CONCURRENCY"])) as pool:
        calls = list(pool.map(lambda lead: (timezone.now(), _ask(provider, lead)), claimed))
    outage = enrichment_incident_open() is not None
    receipts = []
    for lead, (asked_at, answer) in zip(claimed, calls, strict=True):
        state, receipt = _settle(lead, answer, provider, lane, outage=outage)
        receipt.at = asked_at
        receipts.append(receipt)
        if state == READY:
            ready.append(lead.pk)
    EnrichmentReceipt.objects.bulk_create(receipts)
    _breaker_record(provider, [answer.ok and isinstance(answer.body, dict) for _, answer in calls])
    return ready


def provider_down(provider: EnrichmentProvider) -> bool:
    return provider.down_until is not None and provider.down_until > timezone.now()


def leads_skip_enrichment(lead_ids: Sequence[int], provider: EnrichmentProvider) -> list[int]:
    """The provider counts as down: these leads are not kept waiting for it. Those not yet answered for are
    marked failed (so a high-intent one goes to a person, as after failed attempts) and all route now."""
    waiting = Lead.objects.filter(pk__in=lead_ids, status=LeadStatus.RECEIVED, enrichment_status__isnull=True)
    skipped = waiting.update(enrichment_status=EnrichmentStatus.FAILED, enrich_after=None)
    if skipped:
        logger.warning(
            "Enrichment provider %s is down until %s: %d lead(s) route without it.",
            provider.name,
            provider.down_until.isoformat(),
            skipped,
        )
    return list(lead_ids)


def _breaker_record(provider: EnrichmentProvider, outcomes: list[bool]) -> None:
    """Count failed attempts in a row across leads; at ENRICHMENT_BREAKER_FAILURES the provider counts as
    down for ENRICHMENT_BREAKER_SECONDS, then the next attempt tries it again (and one more failure opens the
    breaker again at once). Any answer closes it."""
    providers = EnrichmentProvider.objects.filter(pk=provider.pk)
    if any(outcomes):
        providers.filter(Q(failures_in_a_row__gt=0) | Q(down_until__isnull=False)).update(
            failures_in_a_row=0, down_until=None
        )
        return
    providers.update(failures_in_a_row=F("failures_in_a_row") + len(outcomes))
    threshold = settings.HANDOFF["ENRICHMENT_BREAKER_FAILURES"]
    until = timezone.now() + dt.timedelta(seconds=settings.HANDOFF["ENRICHMENT_BREAKER_SECONDS"])
    if providers.filter(failures_in_a_row__gte=threshold).update(down_until=until):
        logger.error(
            "Enrichment provider %s failed %d or more times in a row; leads route without it until %s.",
            provider.name,
            threshold,
            until.isoformat(),
        )


def _claim(lead_id: int, provider: EnrichmentProvider) -> tuple[str, Lead | None]:
    """(READY, None): nothing to ask; (WAIT, None): not due yet, or another worker's attempt holds it;
    (WAIT, lead): this worker now holds the attempt (a lease for the provider's timeout and a margin)."""
    lead = Lead.objects.filter(pk=lead_id).first()
    if lead is None or lead.status != LeadStatus.RECEIVED or lead.enrichment_status is not None:
        return READY, None
    now = timezone.now()
    if lead.enrich_after is not None and lead.enrich_after > now:
        return WAIT, None
    if lead.enrichment_attempts >= provider.max_attempts:
        # Its attempts ran out without an answer being stored (a crash between call and write): it routes on
        # what it has, as after the last failed attempt, rather than ask the provider for ever.
        Lead.objects.filter(pk=lead_id, enrichment_status__isnull=True).update(
            enrichment_status=EnrichmentStatus.FAILED, enrich_after=None
        )
        return READY, None
    lease = now + dt.timedelta(seconds=provider.timeout_seconds + LEASE_MARGIN_SECONDS)
    claimed = Lead.objects.filter(
        Q(enrich_after__isnull=True) | Q(enrich_after__lte=now),
        pk=lead_id,
        enrichment_status__isnull=True,
        enrichment_attempts=lead.enrichment_attempts,
    ).update(enrichment_attempts=lead.enrichment_attempts + 1, enrich_after=lease)
    if claimed != 1:
        return WAIT, None
    lead.enrichment_attempts += 1
    return WAIT, lead


def _settle(
    lead: Lead, answer: http.Answer, provider: EnrichmentProvider, lane: Lane, *, outage: bool
) -> tuple[str, EnrichmentReceipt]:
    """Store what the attempt brought: the answer (valid or not), a failure for good, or the next attempt's
    time; and the call's receipt (saved by the caller, with the others of the batch). During an outage a
    failure is for good at once: the lead goes to a person rather than wait."""
    receipt = EnrichmentReceipt(
        provider=provider,
        lead_id=lead.pk,
        attempt=lead.enrichment_attempts,
        status_code=answer.status_code,
        latency_ms=max(answer.latency_ms, 0),
    )
    if answer.ok and isinstance(answer.body, dict):
        filled, invalid = _apply(lead.pk, answer.body)
        receipt.outcome = EnrichmentOutcome.INVALID if invalid else EnrichmentOutcome.OK
        receipt.fields_filled, receipt.invalid = filled, invalid
        return READY, receipt
    attempt = lead.enrichment_attempts
    error = answer.error or "the answer was not a JSON object"
    receipt.outcome, receipt.error = EnrichmentOutcome.FAILED, error[:2000]
    if answer.ok or not answer.retryable or attempt >= provider.max_attempts or outage:
        why = " (an enrichment incident is open: no waiting)" if outage else ""
        logger.warning("Enrichment of lead %s failed for good after %d attempt(s)%s: %s", lead.pk, attempt, why, error)
        Lead.objects.filter(pk=lead.pk, enrichment_status__isnull=True).update(
            enrichment_status=EnrichmentStatus.FAILED, enrich_after=None
        )
        return READY, receipt
    wait = http.retry_wait_seconds(
        base=settings.HANDOFF["ENRICHMENT_RETRY_BASE_SECONDS"], attempt=attempt, retry_after=answer.retry_after
    )
    Lead.objects.filter(pk=lead.pk).update(enrich_after=timezone.now() + dt.timedelta(seconds=wait))
    logger.info("Enrichment of lead %s failed (%s); attempt %d in %.1f s.", lead.pk, error, attempt + 1, wait)
    enrichment_enqueue([lead.pk], lane=lane, countdown=wait)
    return WAIT, receipt


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
        if len(kept) >= MAX_EXTRA_KEYS or len(key) > MAX_EXTRA_KEY_CHARS or key in OWN_KEYS or "\x00" in key:
            continue  # PostgreSQL stores no NUL in JSON: one would fail the whole batch's write
        if value is None or isinstance(value, bool | int | float):
            kept[key] = value
        elif isinstance(value, str) and len(value) <= MAX_EXTRA_TEXT_CHARS and "\x00" not in value:
            kept[key] = value
    if len(kept) < len(extra):
        kept["dropped"] = len(extra) - len(kept)
    return kept


def answer_check(*, lead_id: str, answer: dict) -> tuple[dict, dict[str, str]]:
    """The provider's values for the enrichable fields, validated as intake validates a lead (LeadIn): (the
    valid ones, cleaned; field -> what was wrong with each of the others). A field answered null or blank is
    not an answer."""
    answered = {name: answer[name] for name in ENRICHABLE if answer.get(name) is not None}
    try:
        clean = LeadIn.model_validate({"lead_id": lead_id, **answered})
        invalid = {}
    except ValidationError as exc:
        invalid = {name: " ".join(messages) for name, messages in validation_errors(exc).items() if name in answered}
        # The rest validated alone: a field's validators read only that field, so what passed above passes here.
        clean = LeadIn.model_validate({"lead_id": lead_id, **{k: v for k, v in answered.items() if k not in invalid}})
    valid = {name: getattr(clean, name) for name in answered if name not in invalid}
    return {name: value for name, value in valid.items() if value is not None}, invalid


@transaction.atomic
def _apply(lead_id: int, answer: dict) -> tuple[list[str], dict[str, str]]:
    """Fill the lead's missing fields with the provider's values that pass intake validation; the rest of the
    answer is kept under attributes.enrichment for rules and people to read, with what was invalid. Any invalid
    value makes the lead `invalid` (a person reviews it, routing/services.py). Returns (fields filled, invalid).
    An answer that comes after the lead stopped waiting (an outage sent it to a person) is only recorded."""
    lead = Lead.objects.select_for_update().get(pk=lead_id)
    valid, invalid = answer_check(lead_id=lead.lead_id, answer=answer)
    if lead.enrichment_status is not None:
        return [], invalid
    filled = {name: value for name, value in valid.items() if getattr(lead, name) is None}
    for name, value in filled.items():
        setattr(lead, name, value)
    extra = _kept_extras({key: value for key, value in answer.items() if key not in ENRICHABLE})
    found = {"filled": sorted(filled), **({"invalid": invalid} if invalid else {}), **extra}
    lead.attributes = {**(lead.attributes or {}), "enrichment": found}
    lead.enrichment_status = EnrichmentStatus.INVALID if invalid else EnrichmentStatus.ENRICHED
    lead.enrich_after = None
    lead.save()
    if invalid:
        logger.warning("Enrichment of lead %s answered invalid values: %s", lead_id, invalid)
    return sorted(filled), invalid
