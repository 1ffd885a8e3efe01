"""Enrichment against a real local HTTP server: fields filled before routing (and routed on), retries with
their spacing and Retry-After, failure routing on what the lead has (recorded) or, for high intent, an
enrichment_failed exception in the manual-review queue."""

import datetime as dt
import json
import threading
import time

import pytest
from django.utils import timezone

from audit.models import AuditAction, AuditEvent
from exceptions.models import ExceptionReason
from routing.dispatch import Lane
from routing.integrations.enrichment import READY, WAIT, lead_enrich, leads_enrich
from routing.models import Lead, LeadStatus
from routing.services import lead_route
from tests.factories import EnrichmentProviderFactory, LeadFactory, MembershipFactory, QueueFactory, RuleFactory
from tests.integrations.fake_target import DROP, answer, hang, status

pytestmark = pytest.mark.django_db


@pytest.fixture
def provider(fake_target):
    return EnrichmentProviderFactory(url=fake_target.url, auth_header="X-Api-Key", auth_value="key-123")


@pytest.fixture
def big_companies_rule():
    """Routes on a field only enrichment provides: company_size."""
    queue = QueueFactory(name="Enterprise")
    MembershipFactory(queue=queue, user__username="erin")
    return RuleFactory(queue=queue, condition={"field": "company_size", "op": "gte", "value": 1000})


def enrich_until_ready(lead, provider, *, limit=10) -> None:
    for _ in range(limit):
        lead.refresh_from_db()
        if lead.enrich_after is not None:
            time.sleep(max(0.0, lead.enrich_after.timestamp() - time.time()))
        if lead_enrich(lead_id=lead.pk, provider=provider) == READY:
            lead.refresh_from_db()
            return
    raise AssertionError("enrichment never settled")


def decision(lead) -> AuditEvent:
    return AuditEvent.objects.get(lead=lead, action=AuditAction.ROUTING_DECISION)


def test_the_provider_fills_missing_fields_and_the_engine_routes_on_them(provider, fake_target, big_companies_rule):
    lead = LeadFactory(company_size=None, country="GB")
    fake_target.script = [answer({"company_size": 4200, "country": "US", "industry": "logistics"})]
    assert lead_enrich(lead_id=lead.pk, provider=provider) == READY
    lead.refresh_from_db()
    # Fills what was missing; never overwrites what the lead said (country stays GB).
    assert (lead.company_size, lead.country, lead.enrichment_status) == (4200, "GB", "enriched")
    assert lead.attributes["enrichment"] == {"filled": ["company_size"], "industry": "logistics"}
    (request,) = fake_target.received
    assert request.headers["X-Api-Key"] == "key-123"
    assert json.loads(request.body)["lead_id"] == lead.lead_id
    lead_route(lead_id=lead.pk)
    lead.refresh_from_db()
    assert (lead.status, lead.queue.name, lead.assignee.username) == (LeadStatus.ASSIGNED, "Enterprise", "erin")
    assert decision(lead).data["enrichment"] == "enriched"


def test_a_task_asks_the_provider_for_all_its_leads_at_once(provider, fake_target, settings):
    """Calls in flight together: a task of 5 leads costs one answer's wait, not five (the provider answers
    only once all five requests are in; asked one after another, the first would time out)."""
    settings.HANDOFF = {**settings.HANDOFF, "ENRICHMENT_CONCURRENCY": 5}
    leads = LeadFactory.create_batch(5, company_size=None)
    fake_target.together = threading.Barrier(5)
    fake_target.default = answer({"company_size": 300})
    ready = leads_enrich(lead_ids=[lead.pk for lead in leads], provider=provider, lane=Lane.LIVE)
    assert sorted(ready) == sorted(lead.pk for lead in leads)
    assert [request.answered for request in fake_target.received] == [200] * 5
    assert set(Lead.objects.filter(pk__in=ready).values_list("company_size", "enrichment_status")) == {
        (300, "enriched")
    }


def test_values_intake_would_refuse_are_not_stored_and_the_lead_is_marked_invalid(provider, fake_target):
    """The lead then goes to a person (tests/integrations/test_enrichment_receipts.py)."""
    lead = LeadFactory(company_size=None, country=None)
    fake_target.script = [answer({"company_size": -5, "country": "Narnia"})]
    lead_enrich(lead_id=lead.pk, provider=provider)
    lead.refresh_from_db()
    assert (lead.company_size, lead.country, lead.enrichment_status) == (None, None, "invalid")


def test_transient_failures_retry_with_growing_waits_and_retry_after(provider, fake_target, settings):
    settings.HANDOFF = {**settings.HANDOFF, "ENRICHMENT_RETRY_BASE_SECONDS": 0.2}
    provider.timeout_seconds = 0.3
    provider.max_attempts = 6
    provider.save()
    lead = LeadFactory(company_size=None)
    fake_target.script = [status(503), hang(1.0), DROP, status(429, Retry_After="1"), answer({"company_size": 80})]
    enrich_until_ready(lead, provider)
    assert (lead.company_size, lead.enrichment_status, lead.enrichment_attempts) == (80, "enriched", 5)
    arrivals = [r.at for r in fake_target.received]
    gaps = [b - a for a, b in zip(arrivals, arrivals[1:], strict=False)]
    assert 0.16 <= gaps[0] < 0.45, gaps  # 0.2 s ±20%
    assert gaps[-1] >= 0.95, gaps  # Retry-After: 1


def test_a_lead_waiting_for_its_next_attempt_is_not_routed_yet(provider, fake_target):
    lead = LeadFactory(company_size=None)
    fake_target.script = [status(500)]
    assert lead_enrich(lead_id=lead.pk, provider=provider) == WAIT
    assert lead_enrich(lead_id=lead.pk, provider=provider) == WAIT  # not due yet: no second request
    assert len(fake_target.received) == 1


def test_when_enrichment_fails_for_good_an_ordinary_lead_routes_on_what_it_has_and_says_so(
    provider, fake_target, settings
):
    settings.HANDOFF = {**settings.HANDOFF, "ENRICHMENT_RETRY_BASE_SECONDS": 0.01}
    provider.max_attempts = 2
    provider.save()
    queue = QueueFactory(name="SDR")
    MembershipFactory(queue=queue)
    RuleFactory(queue=queue, condition={"field": "email", "op": "exists"})
    lead = LeadFactory(company_size=None, intent_score=20)
    fake_target.default = status(500)
    enrich_until_ready(lead, provider)
    assert lead.enrichment_status == "failed" and len(fake_target.received) == 2
    lead_route(lead_id=lead.pk)
    lead.refresh_from_db()
    assert (lead.status, lead.queue.name) == (LeadStatus.ASSIGNED, "SDR")
    assert decision(lead).data["enrichment"] == "failed"


def test_a_high_intent_lead_whose_enrichment_failed_goes_to_manual_review(provider, fake_target, settings):
    settings.HANDOFF = {**settings.HANDOFF, "ENRICHMENT_REVIEW_INTENT": 70}
    RuleFactory(condition={"field": "email", "op": "exists"})
    lead = LeadFactory(company_size=None, intent_score=90)
    fake_target.script = [status(401)]  # not retryable: fails at once
    assert lead_enrich(lead_id=lead.pk, provider=provider) == READY
    lead_route(lead_id=lead.pk)
    lead = Lead.objects.get(pk=lead.pk)
    item = lead.exceptions.get()
    assert (lead.status, item.reason, item.queue.name, item.queue.ack_sla_minutes) == (
        LeadStatus.EXCEPTION,
        ExceptionReason.ENRICHMENT_FAILED,
        "Manual review",
        30,
    )
    assert "Enrichment failed and intent is 90" in item.detail


def test_without_a_provider_enrichment_is_skipped_and_the_decision_says_not_tried():
    queue = QueueFactory()
    MembershipFactory(queue=queue)
    RuleFactory(queue=queue, condition={"field": "email", "op": "exists"})
    lead = LeadFactory()
    assert lead_enrich(lead_id=lead.pk, provider=None) == READY
    lead_route(lead_id=lead.pk)
    assert decision(lead).data["enrichment"] == "not tried"


def test_a_provider_failing_again_and_again_counts_as_down_and_leads_route_without_waiting(
    provider, fake_target, settings
):
    """The circuit breaker: after ENRICHMENT_BREAKER_FAILURES failed attempts in a row (any leads) the leads
    stop waiting for the provider; once ENRICHMENT_BREAKER_SECONDS have passed the next attempt tries it
    again, and an answer closes the breaker."""
    settings.HANDOFF = {**settings.HANDOFF, "ENRICHMENT_BREAKER_FAILURES": 3, "ENRICHMENT_BREAKER_SECONDS": 60}
    fake_target.default = status(503)
    first = LeadFactory.create_batch(3, company_size=None)
    assert leads_enrich(lead_ids=[lead.pk for lead in first], provider=provider, lane=Lane.LIVE) == []
    provider.refresh_from_db()
    assert provider.failures_in_a_row == 3 and provider.down_until is not None
    assert len(fake_target.received) == 3

    later = LeadFactory(company_size=None)
    assert leads_enrich(lead_ids=[later.pk], provider=provider, lane=Lane.LIVE) == [later.pk]
    later.refresh_from_db()
    assert (later.enrichment_status, later.enrichment_attempts, len(fake_target.received)) == ("failed", 0, 3)
    # The first three leads' retries come due while it is down: they route now, without another call.
    Lead.objects.filter(pk__in=[lead.pk for lead in first]).update(enrich_after=None)
    assert sorted(leads_enrich(lead_ids=[lead.pk for lead in first], provider=provider, lane=Lane.LIVE)) == sorted(
        lead.pk for lead in first
    )
    assert len(fake_target.received) == 3

    # The minute is over: the next lead's attempt asks again, and an answer closes the breaker.
    provider.down_until = timezone.now() - dt.timedelta(seconds=1)
    provider.save()
    fake_target.default = answer({"company_size": 40})
    probe = LeadFactory(company_size=None)
    assert leads_enrich(lead_ids=[probe.pk], provider=provider, lane=Lane.LIVE) == [probe.pk]
    provider.refresh_from_db()
    assert (provider.failures_in_a_row, provider.down_until) == (0, None)
