"""Enrichment on the real Celery worker: a lead whose provider fails first waits for its retry, published
for later, and is then routed on the enriched field."""

import pytest

from routing.models import Lead, LeadStatus
from routing.tasks import route_leads
from tests.conftest import wait_until
from tests.factories import EnrichmentProviderFactory, LeadFactory, MembershipFactory, QueueFactory, RuleFactory
from tests.integrations.fake_target import answer, status


@pytest.mark.django_db(transaction=True)
def test_the_worker_retries_enrichment_then_routes_on_the_enriched_field(celery_worker, fake_target):
    EnrichmentProviderFactory(url=fake_target.url)
    queue = QueueFactory(name="Enterprise")
    MembershipFactory(queue=queue, user__username="erin")
    RuleFactory(queue=queue, condition={"field": "company_size", "op": "gte", "value": 1000})
    lead = LeadFactory(company_size=None)
    fake_target.script = [status(503), status(429, Retry_After="1"), answer({"company_size": 5000})]
    route_leads.delay([lead.pk])
    wait_until(
        lambda: Lead.objects.filter(pk=lead.pk, status=LeadStatus.ASSIGNED).exists(),
        what="the lead to be enriched and assigned",
    )
    lead.refresh_from_db()
    assert (lead.company_size, lead.enrichment_attempts, lead.queue.name) == (5000, 3, "Enterprise")
    assert len(fake_target.received) == 3
    assert fake_target.received[2].at - fake_target.received[1].at >= 0.95  # Retry-After honoured
