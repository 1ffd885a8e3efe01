"""Enrichment held to 99%: answers validated as intake validates a lead (a bad field sends the lead to review,
saying what was wrong), a receipt for every call, success rate and P95 latency on /metrics and the dashboard,
and an incident while the provider is below target, during which no lead waits for it. Against a real local
HTTP provider (tests/integrations/fake_target.py)."""

import datetime as dt

import factory
import pytest
import time_machine
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from exceptions.models import (
    ExceptionIncident,
    ExceptionReason,
    ExceptionStatus,
    Notification,
    NotificationKind,
    Resolution,
)
from routing.dispatch import Lane
from routing.integrations.enrichment import READY, lead_enrich, leads_enrich
from routing.integrations.enrichment_health import TITLE, enrichment_figures, enrichment_health_check
from routing.integrations.models import EnrichmentOutcome, EnrichmentReceipt, EnrichmentStatus
from routing.models import Lead, LeadStatus
from routing.reports import metrics
from routing.services import lead_route, leads_route
from tests.factories import EnrichmentProviderFactory, LeadFactory, MembershipFactory, QueueFactory, RuleFactory
from tests.integrations.fake_target import answer, hang, status
from tests.observability.conftest import scrape, value

pytestmark = pytest.mark.django_db

NOW = dt.datetime(2026, 3, 10, 12, 30, tzinfo=dt.UTC)


class EnrichmentReceiptFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = EnrichmentReceipt

    provider = factory.SubFactory(EnrichmentProviderFactory)
    lead = factory.SubFactory(LeadFactory)
    at = factory.LazyFunction(lambda: NOW)
    attempt = 1
    outcome = EnrichmentOutcome.OK
    status_code = 200
    latency_ms = 100


def calls(provider, *, n, outcome=EnrichmentOutcome.OK, at=NOW, latency_ms=100):
    """`n` receipts of one provider (leads shared: the figures count calls, not leads)."""
    lead = LeadFactory(status=LeadStatus.ASSIGNED)
    return EnrichmentReceiptFactory.create_batch(
        n,
        provider=provider,
        lead=lead,
        at=at,
        outcome=outcome,
        status_code=200 if outcome != EnrichmentOutcome.FAILED else 503,
        latency_ms=latency_ms,
    )


@pytest.fixture
def provider(fake_target):
    return EnrichmentProviderFactory(name="Clearbit", url=fake_target.url)


@pytest.fixture
def anyone_rule():
    queue = QueueFactory(name="SDR")
    MembershipFactory(queue=queue)
    return RuleFactory(queue=queue, condition={"field": "email", "op": "exists"})


@pytest.fixture
def fresh_metric_counts():
    metrics.reset()
    yield
    metrics.reset()


# Validation


def test_an_invalid_field_sends_the_lead_to_review_saying_what_was_wrong_and_the_valid_fields_are_kept(
    provider, fake_target, anyone_rule
):
    lead = LeadFactory(company=None, company_size=None, country=None, intent_score=10)
    fake_target.script = [answer({"company": "Initech", "company_size": -5, "country": "Narnia", "industry": "it"})]

    assert lead_enrich(lead_id=lead.pk, provider=provider) == READY
    lead.refresh_from_db()
    assert (lead.enrichment_status, lead.company, lead.company_size, lead.country) == (
        EnrichmentStatus.INVALID,
        "Initech",
        None,
        None,
    )
    assert set(lead.attributes["enrichment"]["invalid"]) == {"company_size", "country"}

    lead_route(lead_id=lead.pk)  # low intent, a rule that matches: a person all the same
    lead.refresh_from_db()
    item = lead.exceptions.get()
    assert (lead.status, item.reason, item.queue.name) == (
        LeadStatus.EXCEPTION,
        ExceptionReason.ENRICHMENT_INVALID,
        "Manual review",
    )
    assert "company_size: Input should be greater than or equal to 0" in item.detail
    assert "country: 'Narnia' is not an ISO 3166-1 alpha-2 country code" in item.detail


def test_an_answer_whose_fields_are_all_valid_enriches_and_routes_as_before(provider, fake_target, anyone_rule):
    lead = LeadFactory(company_size=None, country=None, intent_score=10)
    fake_target.script = [answer({"company_size": 300, "country": "de", "intent_score": 55.5})]
    lead_enrich(lead_id=lead.pk, provider=provider)
    lead_route(lead_id=lead.pk)
    lead.refresh_from_db()
    assert (lead.enrichment_status, lead.company_size, lead.country, lead.status) == (
        EnrichmentStatus.ENRICHED,
        300,
        "DE",
        LeadStatus.ASSIGNED,
    )
    assert "invalid" not in lead.attributes["enrichment"]


# Receipts


def test_every_call_leaves_a_receipt_answered_invalid_or_failed_with_its_latency(provider, fake_target):
    provider.timeout_seconds = 0.3
    provider.save()
    answered, invalid, refused, slow = LeadFactory.create_batch(4, company_size=None, country=None)
    fake_target.script = [
        answer({"company_size": 40}),
        answer({"company_size": 41, "country": "XX"}),
        status(401),
        hang(1.0),
    ]
    for lead in (answered, invalid, refused, slow):
        lead_enrich(lead_id=lead.pk, provider=provider)

    receipts = {r.lead_id: r for r in EnrichmentReceipt.objects.filter(provider=provider)}
    assert len(receipts) == 4
    ok, bad, failed, timed_out = (receipts[lead.pk] for lead in (answered, invalid, refused, slow))
    assert (ok.outcome, ok.status_code, ok.fields_filled, ok.invalid, ok.attempt) == (
        "ok",
        200,
        ["company_size"],
        {},
        1,
    )
    assert (bad.outcome, bad.fields_filled) == ("invalid", ["company_size"])
    assert "not an ISO 3166-1 alpha-2 country code" in bad.invalid["country"]
    assert (failed.outcome, failed.status_code, failed.fields_filled) == ("failed", 401, [])
    assert "HTTP 401" in failed.error
    assert (timed_out.outcome, timed_out.status_code) == ("failed", None)
    assert timed_out.error.startswith("timeout")
    assert timed_out.latency_ms >= 250  # it waited for the provider's timeout before giving up
    assert all(r.at is not None and r.latency_ms >= 0 for r in receipts.values())


def test_calls_made_together_leave_their_receipts_in_one_insert(provider, fake_target):
    leads = LeadFactory.create_batch(5, company_size=None)
    fake_target.default = answer({"company_size": 12})
    with CaptureQueriesContext(connection) as queries:
        leads_enrich(lead_ids=[lead.pk for lead in leads], provider=provider, lane=Lane.LIVE)
    table = EnrichmentReceipt._meta.db_table
    assert len([q for q in queries if q["sql"].startswith(f'INSERT INTO "{table}"')]) == 1
    receipts = EnrichmentReceipt.objects.filter(lead__in=leads)
    assert sorted((r.lead_id, r.outcome, r.fields_filled) for r in receipts) == [
        (lead.pk, "ok", ["company_size"]) for lead in sorted(leads, key=lambda lead: lead.pk)
    ]


def test_the_lead_page_lists_its_enrichment_calls(client, ops_person, provider, fake_target):
    lead = LeadFactory(company_size=None, country=None)
    fake_target.script = [status(503), answer({"company_size": 77, "country": "Atlantis"})]
    lead_enrich(lead_id=lead.pk, provider=provider)
    Lead.objects.filter(pk=lead.pk).update(enrich_after=None)  # the retry is due now
    lead_enrich(lead_id=lead.pk, provider=provider)

    client.force_login(ops_person)
    page = client.get(reverse("console:lead", args=[lead.pk])).content.decode()
    section = page[page.index('id="enrichment-receipts"') :]
    section = section[: section.index("</table>")]
    assert section.count("<tr class=") == 2
    assert "Failed (error, timeout or refused) · HTTP 503" in section
    assert "Answered invalid values · HTTP 200" in section
    assert "company_size" in section and "country: &#x27;Atlantis&#x27; is not an ISO 3166-1" in section


# Metrics and dashboard


def test_metrics_count_calls_by_outcome_and_show_the_last_hours_success_and_p95(client, fresh_metric_counts):
    with time_machine.travel(NOW, tick=False):
        clearbit = EnrichmentProviderFactory(name="Clearbit")
        EnrichmentProviderFactory(name="Quiet")
        calls(clearbit, n=18, latency_ms=100)
        calls(clearbit, n=1, latency_ms=2000)
        calls(clearbit, n=1, outcome=EnrichmentOutcome.FAILED, latency_ms=3000)
        calls(
            clearbit, n=2, outcome=EnrichmentOutcome.INVALID, at=NOW - dt.timedelta(hours=3)
        )  # counted, not in the hour
        samples = scrape(client)

    assert value(samples, "handoff_enrichment_calls_total", provider="Clearbit", outcome="ok") == 19
    assert value(samples, "handoff_enrichment_calls_total", provider="Clearbit", outcome="failed") == 1
    assert value(samples, "handoff_enrichment_calls_total", provider="Clearbit", outcome="invalid") == 2
    assert value(samples, "handoff_enrichment_calls_total", provider="Quiet", outcome="ok") == 0
    assert value(samples, "handoff_enrichment_success_ratio", provider="Clearbit") == pytest.approx(19 / 20)
    # percentile_cont over 18 × 100 ms, 2000 ms and 3000 ms: the 95th is between the last two
    assert value(samples, "handoff_enrichment_latency_p95_seconds", provider="Clearbit") == pytest.approx(2.05)
    assert value(samples, "handoff_enrichment_latency_seconds_bucket", provider="Clearbit", le="0.1") == 18
    assert value(samples, "handoff_enrichment_latency_seconds_bucket", provider="Clearbit", le="2.5") == 19
    assert value(samples, "handoff_enrichment_latency_seconds_bucket", provider="Clearbit", le="+Inf") == 20
    assert value(samples, "handoff_enrichment_latency_seconds_count", provider="Clearbit") == 20
    assert value(samples, "handoff_enrichment_latency_seconds_sum", provider="Clearbit") == pytest.approx(6.8)
    assert ("provider", "Quiet") not in {
        label for labels in samples["handoff_enrichment_success_ratio"] for label in labels
    }


def test_the_dashboard_shows_each_providers_success_rate_and_p95_over_the_hour_and_the_day(client, ops_person):
    with time_machine.travel(NOW, tick=False):
        clearbit = EnrichmentProviderFactory(name="Clearbit")
        calls(clearbit, n=9, latency_ms=200)
        calls(clearbit, n=1, outcome=EnrichmentOutcome.FAILED, latency_ms=1000)
        calls(clearbit, n=10, at=NOW - dt.timedelta(hours=5), latency_ms=200)
        client.force_login(ops_person)
        page = client.get("/console/dashboard/").content.decode()

    row = page[page.index('data-provider="Clearbit"') :]
    row = row[: row.index("</tr>")]
    assert '<td class="num">10</td>' in row and '<td class="num">20</td>' in row  # calls in 1 h and in 24 h
    assert 'data-figure="success-hour">90.0%<' in row and 'data-figure="success-day">95.0%<' in row
    assert 'class="num breached" data-figure="success-hour"' in row  # below the 99% target
    assert 'data-figure="p95-hour">640 ms<' in row  # 9 × 200 ms and 1000 ms: interpolated
    assert 'data-figure="p95-day">240 ms<' in row  # 19 × 200 ms and 1000 ms
    (figures,) = enrichment_figures(now=NOW)
    assert (figures.hour.calls, figures.hour.ok, figures.day.calls, figures.day.ok) == (10, 9, 20, 19)


# Degradation


def degraded(provider, *, ok=19, failed=2, at=NOW):
    calls(provider, n=ok, at=at)
    calls(provider, n=failed, outcome=EnrichmentOutcome.FAILED, at=at)


def test_too_few_calls_are_not_judged(provider, settings):
    settings.HANDOFF = {**settings.HANDOFF, "ENRICHMENT_MIN_CALLS": 20}
    with time_machine.travel(NOW, tick=False):
        degraded(provider, ok=10, failed=9)
        check = enrichment_health_check(provider=provider)
    assert (check.below_target, check.incident) == (False, None)
    assert not ExceptionIncident.objects.exists()


def test_below_target_an_incident_opens_and_notifies_and_waiting_leads_go_to_review_within_the_window(
    provider, anyone_rule, settings, client, ops_person
):
    settings.HANDOFF = {
        **settings.HANDOFF,
        "ENRICHMENT_SUCCESS_TARGET": 0.99,
        "ENRICHMENT_MIN_CALLS": 20,
        "ENRICHMENT_FALLBACK_MINUTES": 15,
    }
    with time_machine.travel(NOW, tick=False) as clock:
        degraded(provider)  # 19 of 21 answered: 90.5%
        waiting_long = LeadFactory(received_at=NOW - dt.timedelta(minutes=14, seconds=30), intent_score=5)
        waiting_briefly = LeadFactory(received_at=NOW - dt.timedelta(minutes=2), intent_score=5)
        check = enrichment_health_check(provider=provider)

        assert check.below_target and check.opened
        incident = check.incident
        assert (incident.reason, incident.queue.name, incident.status) == (
            ExceptionReason.ENRICHMENT_FAILED,
            "Manual review",
            ExceptionStatus.OPEN,
        )
        assert incident.title.startswith(TITLE) and "19 of 21 calls" in incident.title
        assert Notification.objects.filter(incident=incident, kind=NotificationKind.INCIDENT).count() == 1
        # The one that would pass 15 minutes before the next tick goes now; the other waits.
        assert check.sent_to_review == (waiting_long.pk,)
        leads_route(lead_ids=list(check.sent_to_review))
        waiting_long.refresh_from_db()
        item = waiting_long.exceptions.get()
        assert (waiting_long.status, item.reason, item.incident_id) == (
            LeadStatus.EXCEPTION,
            ExceptionReason.ENRICHMENT_FAILED,
            incident.pk,
        )
        assert "below its success target" in item.detail  # intent 5: sent because of the incident

        clock.move_to(NOW + dt.timedelta(minutes=12))  # 14 minutes after it came in
        again = enrichment_health_check(provider=provider)
        assert (again.opened, again.incident.pk, again.sent_to_review) == (False, incident.pk, (waiting_briefly.pk,))
        leads_route(lead_ids=list(again.sent_to_review))
        waiting_briefly.refresh_from_db()
        assert waiting_briefly.status == LeadStatus.EXCEPTION
        assert Notification.objects.filter(kind=NotificationKind.INCIDENT).count() == 1  # one incident, one notice

        client.force_login(ops_person)
        page = client.get(reverse("console:incident", args=[incident.pk]))
        assert page.status_code == 200 and TITLE in page.content.decode()


def test_during_the_incident_a_failed_call_does_not_wait_for_a_retry_whatever_the_intent(
    provider, fake_target, anyone_rule, settings
):
    settings.HANDOFF = {**settings.HANDOFF, "ENRICHMENT_MIN_CALLS": 20}
    degraded(provider, at=dt.datetime.now(dt.UTC))
    incident = enrichment_health_check(provider=provider).incident
    lead = LeadFactory(company_size=None, intent_score=1)
    fake_target.script = [status(503)]  # retryable, attempts left: it would wait, without the incident

    assert lead_enrich(lead_id=lead.pk, provider=provider) == READY
    lead_route(lead_id=lead.pk)
    lead.refresh_from_db()
    item = lead.exceptions.get()
    assert (lead.enrichment_status, lead.enrichment_attempts, item.reason, item.incident_id) == (
        EnrichmentStatus.FAILED,
        1,
        ExceptionReason.ENRICHMENT_FAILED,
        incident.pk,
    )


def test_when_the_rate_recovers_the_incident_resolves_and_its_items_stay_with_people(provider, anyone_rule, settings):
    settings.HANDOFF = {**settings.HANDOFF, "ENRICHMENT_MIN_CALLS": 20}
    with time_machine.travel(NOW, tick=False) as clock:
        degraded(provider)
        waiting = LeadFactory(received_at=NOW - dt.timedelta(minutes=20))
        check = enrichment_health_check(provider=provider)
        leads_route(lead_ids=list(check.sent_to_review))
        item = waiting.exceptions.get()

        clock.move_to(NOW + dt.timedelta(minutes=30))
        calls(provider, n=100, at=NOW + dt.timedelta(minutes=29))  # 119 of 121: still below 99%
        assert enrichment_health_check(provider=provider).resolved is None

        clock.move_to(NOW + dt.timedelta(minutes=61))  # the failures left the hour: 100 of 100
        recovered = enrichment_health_check(provider=provider)

    assert recovered.resolved is not None and recovered.incident is None
    incident = ExceptionIncident.objects.get(pk=check.incident.pk)
    assert (incident.status, incident.resolution) == (ExceptionStatus.RESOLVED, Resolution.FIXED_UPSTREAM)
    assert "100 of 100 calls" in incident.resolution_note
    item.refresh_from_db()
    assert (item.status, item.incident_id) == (ExceptionStatus.OPEN, None)  # the lead still needs a person


def test_a_nul_in_an_answers_other_values_is_dropped_and_the_lead_still_settles(provider, fake_target):
    """PostgreSQL keeps no NUL in JSON: kept, it failed the batch's write, lost its receipts, and the lead was
    asked again for ever (second reader's F1)."""
    lead = LeadFactory(company_size=None)
    fake_target.script = [answer({"industry": "a\x00b", "ta\x00g": "x", "company_size": 5})]
    assert lead_enrich(lead_id=lead.pk, provider=provider) == READY
    lead.refresh_from_db()
    assert (lead.enrichment_status, lead.company_size) == (EnrichmentStatus.ENRICHED, 5)
    assert EnrichmentReceipt.objects.filter(lead=lead, outcome=EnrichmentOutcome.OK).count() == 1


def test_a_lead_whose_attempts_ran_out_unrecorded_routes_on_what_it_has(provider):
    lead = LeadFactory(enrichment_attempts=provider.max_attempts)
    assert lead_enrich(lead_id=lead.pk, provider=provider) == READY
    lead.refresh_from_db()
    assert lead.enrichment_status == EnrichmentStatus.FAILED
