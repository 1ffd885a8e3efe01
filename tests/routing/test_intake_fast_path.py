"""What keeps single-lead intake cheap: the source token is looked up once per process, and routing is
published by a background thread that lets concurrent leads share a task."""

import base64
import json
import threading

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from routing.dispatch import BackgroundPublisher, Lane
from routing.models import Lead
from routing.sources import active_sources
from tests.conftest import broker
from tests.factories import LeadFactory, LeadPayloadFactory
from tests.routing.test_intake_api import INTAKE, post_json


@pytest.fixture(autouse=True)
def empty_token_cache():
    active_sources.clear()
    yield
    active_sources.clear()


@pytest.mark.django_db
class TestSourceTokenCache:
    def test_a_known_token_costs_one_insert_and_no_lookup_after_the_first_request(self, source_client):
        with CaptureQueriesContext(connection) as first:
            assert post_json(source_client, INTAKE, LeadPayloadFactory(lead_id="a")).status_code == 202
        with CaptureQueriesContext(connection) as second:
            assert post_json(source_client, INTAKE, LeadPayloadFactory(lead_id="b")).status_code == 202
        assert ["routing_source" in q["sql"] for q in first.captured_queries] == [True, False]
        assert len(second.captured_queries) == 1  # the insert of the lead and its history row
        assert Lead.objects.filter(origin=source_client.source).count() == 2

    def test_deactivating_a_source_refuses_its_token_at_once_in_this_process(self, source_client):
        assert post_json(source_client, INTAKE, LeadPayloadFactory(lead_id="a")).status_code == 202
        source = source_client.source
        source.is_active = False
        source.save()  # as the admin screen does
        response = post_json(source_client, INTAKE, LeadPayloadFactory(lead_id="b"))
        assert response.status_code == 401
        assert response.json() == {"detail": "Invalid or revoked token."}

    def test_cached_tokens_expire(self, source_client, settings):
        settings.HANDOFF = {**settings.HANDOFF, "SOURCE_TOKEN_CACHE_SECONDS": 0}
        post_json(source_client, INTAKE, LeadPayloadFactory(lead_id="a"))
        with CaptureQueriesContext(connection) as again:
            post_json(source_client, INTAKE, LeadPayloadFactory(lead_id="b"))
        assert any("routing_source" in q["sql"] for q in again.captured_queries)

    def test_an_unknown_token_is_never_cached(self, db):
        from rest_framework.test import APIClient

        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION="Token not-a-real-token")
        for _ in range(2):
            with CaptureQueriesContext(connection) as lookups:
                assert post_json(client, INTAKE, LeadPayloadFactory()).status_code == 401
            assert any("routing_source" in q["sql"] for q in lookups.captured_queries)


def published_lead_ids(lane: Lane = Lane.LIVE) -> list[list[int]]:
    """The lead ids of each routing task waiting in a lane's queue, oldest first."""
    messages = reversed(broker().lrange(lane.queue, 0, -1))
    return [json.loads(base64.b64decode(json.loads(raw)["body"]))[0][0] for raw in messages]


@pytest.mark.django_db
class TestBackgroundPublisher:
    @pytest.fixture(autouse=True)
    def empty_queue(self):
        broker().delete(*(lane.queue for lane in Lane))
        yield
        broker().delete(*(lane.queue for lane in Lane))

    def test_leads_submitted_together_share_a_task_and_each_is_published_once(self, settings):
        settings.HANDOFF = {**settings.HANDOFF, "PUBLISH_LINGER_MS": 200}
        leads = LeadFactory.create_batch(20)
        publisher = BackgroundPublisher()
        start = threading.Barrier(len(leads))

        def submit(lead):
            start.wait()
            publisher.submit([lead.id], Lane.LIVE)

        threads = [threading.Thread(target=submit, args=(lead,)) for lead in leads]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert publisher.flush(timeout=10)

        tasks = published_lead_ids()
        assert sorted(i for task in tasks for i in task) == sorted(lead.id for lead in leads)
        assert len(tasks) < len(leads)  # the linger gathered leads from concurrent submits into shared tasks

    def test_a_lone_lead_is_published_after_the_linger(self, settings):
        settings.HANDOFF = {**settings.HANDOFF, "PUBLISH_LINGER_MS": 1}
        lead = LeadFactory()
        publisher = BackgroundPublisher()
        publisher.submit([lead.id], Lane.LIVE)
        assert publisher.flush(timeout=10)
        assert published_lead_ids() == [[lead.id]]

    def test_flush_reports_a_publish_still_under_way(self, settings):
        settings.HANDOFF = {**settings.HANDOFF, "PUBLISH_LINGER_MS": 2000}
        publisher = BackgroundPublisher()
        publisher.submit([LeadFactory().id], Lane.LIVE)
        assert publisher.flush(timeout=0.05) is False
        assert publisher.flush(timeout=10) is True
        assert len(published_lead_ids()) == 1

    def test_each_lane_gets_its_own_tasks(self, settings):
        settings.HANDOFF = {**settings.HANDOFF, "PUBLISH_LINGER_MS": 200}
        live, bulk = LeadFactory(), LeadFactory.create_batch(3)
        publisher = BackgroundPublisher()
        publisher.submit([lead.id for lead in bulk], Lane.BULK)
        publisher.submit([live.id], Lane.LIVE)  # within the linger: it still travels alone, on its lane
        assert publisher.flush(timeout=10)
        assert published_lead_ids(Lane.LIVE) == [[live.id]]
        assert published_lead_ids(Lane.BULK) == [[lead.id for lead in bulk]]
