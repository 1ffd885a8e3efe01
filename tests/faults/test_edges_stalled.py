"""Calls out of the product never hold routing (issue 15, finding 5). With the README's worker layout (routing
workers on the live and bulk lanes, an edges worker on enrichment and deliveries), a delivery target
that never answers holds only the edges worker, and enrichment is only ever asked from the enrichment lane,
whose settled leads come back to the lane they arrived on."""

import pytest
from django.conf import settings

from audit.models import AuditAction, AuditEvent
from routing.models import Lead, LeadStatus
from routing.reports.parity import parity_reconcile
from tests.conftest import broker, wait_until
from tests.factories import DeliveryTargetFactory, EnrichmentProviderFactory, LeadPayloadFactory
from tests.faults.helpers import assert_nothing_lost, post_lead
from tests.integrations.fake_target import FakeTarget, answer, hang

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.celery_worker]

QUEUES = settings.HANDOFF_QUEUES
ROUTING = [QUEUES["live"], QUEUES["bulk"], settings.CELERY_TASK_DEFAULT_QUEUE]
EDGES = [QUEUES["enrichment"], QUEUES["deliveries"]]  # replays have a worker of their own (README)


@pytest.fixture
def target():
    server = FakeTarget().start()
    yield server
    server.stop()


def assigned(ids) -> bool:
    return Lead.objects.filter(pk__in=ids, status=LeadStatus.ASSIGNED).count() == len(ids)


def test_a_target_that_never_answers_holds_only_the_edges_worker_and_live_leads_still_route(
    processes, source, ae_rule, target
):
    target.default = hang(60)  # accepts the connection, never answers in the test's time
    DeliveryTargetFactory(name="CRM", url=target.url, timeout_seconds=45, events=["lead.assigned"])
    processes.worker("routing", queues=ROUTING)
    edges = processes.worker("edges", queues=EDGES, concurrency=1)
    web = processes.web(workers=1, threads=4)

    first = post_lead(web, source.token, LeadPayloadFactory()).json()["id"]
    wait_until(lambda: target.received, what="the first lead's delivery to reach the target")
    # The edges worker's only process now waits on the target; routing goes on beside it.
    later = [post_lead(web, source.token, LeadPayloadFactory()).json()["id"] for _ in range(5)]
    wait_until(lambda: assigned([first, *later]), what="every live lead to be assigned")

    assert [request.answered for request in target.received] == [None]  # still the first call, unanswered
    assert broker().llen(QUEUES["deliveries"]) >= 1  # the later deliveries wait their turn on their own queue
    edges.kill()  # rather than wait out the hanging call; its deliveries stay pending in the outbox
    broker().delete(QUEUES["deliveries"], "unacked", "unacked_index")  # not for the next test's workers
    decided = AuditEvent.objects.filter(action=AuditAction.ROUTING_DECISION, lead__in=[first, *later])
    assert sorted(decided.values_list("lead", flat=True)) == sorted([first, *later])  # each decided once
    # Nothing is lost: the daily parity names exactly the deliveries the dead target still owes.
    report = parity_reconcile(day=Lead.objects.get(pk=first).received_at.date())
    assert report.data["gaps"] == ["web-form → CRM: 0 of 6 assigned leads delivered"]


def test_enrichment_is_asked_only_on_its_own_lane_and_the_lead_comes_back_to_the_live_lane(
    processes, source, ae_rule, target
):
    target.default = answer({"company_size": 4200})
    EnrichmentProviderFactory(url=target.url)
    processes.worker("live-only", queues=[QUEUES["live"]])
    web = processes.web(workers=1, threads=4)

    lead_id = post_lead(web, source.token, LeadPayloadFactory(company_size=None)).json()["id"]
    # The routing worker handed the lead over without calling the provider; nobody serves enrichment yet.
    wait_until(lambda: broker().llen(QUEUES["enrichment"]) == 1, what="the lead's enrichment to be queued")
    assert target.received == []
    assert Lead.objects.get(pk=lead_id).status == LeadStatus.RECEIVED

    processes.worker("enrichment-only", queues=[QUEUES["enrichment"]], concurrency=1)
    # Enriched on its lane, then routed by the live-only worker: the lead kept its lane.
    wait_until(lambda: assigned([lead_id]), what="the enriched lead to be assigned")
    lead = Lead.objects.get(pk=lead_id)
    assert (lead.company_size, lead.enrichment_status, len(target.received)) == (4200, "enriched", 1)
    assert_nothing_lost([lead_id])
