"""The intake API contract that capture systems integrate against (README: Intake API)."""

import base64
import json

import pytest
from django.conf import settings
from django.urls import reverse
from rest_framework.test import APIClient

from routing.accounts.selectors import account_match_for
from routing.dispatch import routing_publisher
from routing.models import Lead, LeadStatus, Source
from tests.conftest import broker
from tests.factories import AccountFactory, LeadFactory, LeadPayloadFactory, SourceFactory

pytestmark = pytest.mark.django_db
INTAKE = "/api/v1/leads/"
BATCH = "/api/v1/leads/batch/"


def post_json(client, url, payload, **extra):
    return client.post(url, data=json.dumps(payload), content_type="application/json", **extra)


class TestAuthentication:
    def test_no_token_is_401(self):
        response = post_json(APIClient(), INTAKE, LeadPayloadFactory())
        assert response.status_code == 401
        assert response["WWW-Authenticate"] == "Token"
        assert Lead.objects.count() == 0

    def test_bad_token_is_401_with_message(self, source):
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION="Token not-a-real-token")
        response = post_json(client, INTAKE, LeadPayloadFactory())
        assert response.status_code == 401
        assert response.json() == {"detail": "Invalid or revoked token."}

    def test_malformed_authorization_header_is_401(self, source):
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Token {source.token} extra")
        assert post_json(client, INTAKE, LeadPayloadFactory()).status_code == 401

    def test_revoked_source_is_401(self, source_client):
        Source.objects.filter(pk=source_client.source.pk).update(is_active=False)
        assert post_json(source_client, INTAKE, LeadPayloadFactory()).status_code == 401

    def test_token_is_stored_hashed(self, source):
        stored = Source.objects.get(pk=source.pk)
        assert source.token not in (stored.token_hash, stored.token_prefix + stored.token_hash)
        assert stored.token_hash == Source.hash_token(source.token)

    def test_console_user_cannot_post_leads(self, ops_person):
        client = APIClient()
        client.force_login(ops_person)
        response = post_json(client, INTAKE, LeadPayloadFactory())
        assert response.status_code == 403
        assert "capture sources" in response.json()["detail"]


class TestSingleIntake:
    def test_accepted_lead_is_202_and_stored(self, source_client):
        payload = LeadPayloadFactory(lead_id="form-1", email="Jo@Example.COM", country="gb", lifecycle_stage="MQL")
        response = post_json(source_client, INTAKE, payload)
        assert response.status_code == 202
        body = response.json()
        lead = Lead.objects.get()
        assert body == {
            "id": lead.id,
            "lead_id": "form-1",
            "status": "received",
            "url": f"http://testserver/api/v1/leads/{lead.id}/",
            "schema_version": "2",
            "warnings": {},
        }
        assert lead.origin == source_client.source
        assert (lead.email, lead.country, lead.lifecycle_stage) == ("jo@example.com", "GB", "mql")
        assert lead.status == LeadStatus.RECEIVED
        assert lead.history.count() == 1

    def test_routing_is_queued_after_commit(self, source_client, django_capture_on_commit_callbacks):
        queue = settings.HANDOFF_QUEUES["live"]  # a lead posted alone is routed on the live lane
        broker().delete(queue)
        with django_capture_on_commit_callbacks() as callbacks:
            response = post_json(source_client, INTAKE, LeadPayloadFactory())
            assert broker().llen(queue) == 0  # nothing is published before the commit
        assert response.status_code == 202
        for callback in callbacks:  # what the commit runs: a hand-over to the background publisher
            callback()
        assert routing_publisher.flush(timeout=10)
        (raw,) = broker().lrange(queue, 0, -1)
        message = json.loads(raw)
        args, kwargs, _ = json.loads(base64.b64decode(message["body"]))
        assert message["headers"]["task"] == "routing.tasks.route_leads"
        assert args == [[response.json()["id"]]]

    def test_occurred_at_defaults_to_receipt_and_naive_means_utc(self, source_client):
        post_json(source_client, INTAKE, LeadPayloadFactory(lead_id="a"))
        post_json(source_client, INTAKE, LeadPayloadFactory(lead_id="b", occurred_at="2026-11-20T10:00:00"))
        a, b = Lead.objects.get(lead_id="a"), Lead.objects.get(lead_id="b")
        assert a.occurred_at == a.received_at
        assert b.occurred_at.isoformat() == "2026-11-20T10:00:00+00:00"

    def test_only_lead_id_is_required(self, source_client):
        response = post_json(source_client, INTAKE, {"lead_id": "bare", "email": None, "attributes": None})
        assert response.status_code == 202
        assert Lead.objects.get().attributes == {}

    def test_same_lead_id_again_is_200_with_the_existing_lead(self, source_client, django_capture_on_commit_callbacks):
        first = post_json(source_client, INTAKE, LeadPayloadFactory(lead_id="dup"))
        with django_capture_on_commit_callbacks() as callbacks:
            second = post_json(source_client, INTAKE, LeadPayloadFactory(lead_id="dup", email="other@example.com"))
        assert second.status_code == 200
        assert second.json()["id"] == first.json()["id"]
        assert Lead.objects.count() == 1
        assert callbacks == []  # no second routing

    def test_same_lead_id_from_another_source_is_another_lead(self, source_client):
        other = APIClient()
        other.credentials(HTTP_AUTHORIZATION=f"Token {SourceFactory().token}")
        assert post_json(source_client, INTAKE, LeadPayloadFactory(lead_id="x")).status_code == 202
        assert post_json(other, INTAKE, LeadPayloadFactory(lead_id="x")).status_code == 202
        assert Lead.objects.count() == 2


@pytest.mark.parametrize(
    ("change", "field", "message"),
    [
        ({"lead_id": None}, "lead_id", "Must be a string."),
        ({"lead_id": ""}, "lead_id", "String should have at least 1 character"),
        ({"lead_id": "x" * 129}, "lead_id", "String should have at most 128 characters"),
        ({"lead_id": 12}, "lead_id", "Must be a string."),
        ({"email": "not-an-email"}, "email", "Enter a valid email address."),
        ({"phone": "call me"}, "phone", "Enter a phone number"),
        ({"company_size": -1}, "company_size", "greater than or equal to 0"),
        ({"company_size": 10.5}, "company_size", "Must be a whole number."),
        ({"company_size": True}, "company_size", "Must be a whole number."),
        ({"country": "XX"}, "country", "not an ISO 3166-1 alpha-2 country code"),
        ({"engagement_score": 101}, "engagement_score", "less than or equal to 100"),
        ({"intent_score": "high"}, "intent_score", "Must be a number."),
        ({"occurred_at": "yesterday"}, "occurred_at", "Use an ISO 8601 date-time string"),
        ({"occurred_at": "2026-13-45T99:00:00Z"}, "occurred_at", "Input should be a valid datetime"),
        ({"occurred_at": 1700000000}, "occurred_at", "Use an ISO 8601 date-time string"),
        ({"occurred_at": "1700000000"}, "occurred_at", "Use an ISO 8601 date-time string"),
        ({"occurred_at": "9999-12-31T23:59:59-23:59"}, "occurred_at", "is out of range (in UTC). Choose a date"),
        ({"occurred_at": "0001-01-01T00:00:00+14:00"}, "occurred_at", "is out of range (in UTC). Choose a date"),
        ({"occurred_at": "1999-12-31T23:59:59Z"}, "occurred_at", "between 2000-01-01 and 2999-12-31"),
        ({"lead_id": "a\x00b"}, "lead_id", "Must not contain NUL"),
        ({"company": "Acme\x00"}, "company", "Must not contain NUL"),
        ({"attributes": {"k\x00": 1}}, "attributes", "Must not contain NUL"),
        ({"attributes": {"notes": ["ok", "bad\x00"]}}, "attributes", "Must not contain NUL"),
        ({"attributes": ["a"]}, "attributes", "Must be a JSON object."),
        ({"attributes": {"a": {"b": {"c": {"d": {"e": {"f": 1}}}}}}}, "attributes", "Nested deeper than 5 levels"),
        ({"favourite_colour": "blue"}, "favourite_colour", "Unknown field."),
    ],
)
def test_invalid_field_is_400_naming_the_field(source_client, change, field, message):
    payload = {**LeadPayloadFactory(), **change}
    response = post_json(source_client, INTAKE, payload)
    assert response.status_code == 400
    errors = response.json()
    assert list(errors) == [field]
    assert message in errors[field][0]
    assert Lead.objects.count() == 0


def test_missing_lead_id_is_400(source_client):
    payload = LeadPayloadFactory()
    del payload["lead_id"]
    response = post_json(source_client, INTAKE, payload)
    assert response.status_code == 400
    assert response.json() == {"lead_id": ["This field is required."]}


def test_every_invalid_field_is_reported_at_once(source_client):
    response = post_json(source_client, INTAKE, LeadPayloadFactory(email="nope", country="ZZ", company_size=-5))
    assert response.status_code == 400
    assert set(response.json()) == {"email", "country", "company_size"}


def test_malformed_json_is_400_with_detail(source_client):
    response = source_client.post(INTAKE, data='{"lead_id": "x",', content_type="application/json")
    assert response.status_code == 400
    assert response.json()["detail"].startswith("Malformed JSON")
    assert Lead.objects.count() == 0


def test_json_that_is_not_an_object_is_400(source_client):
    response = post_json(source_client, INTAKE, ["lead"])
    assert response.status_code == 400
    assert response.json() == {"non_field_errors": ["Expected a JSON object with the lead's fields."]}


def test_non_json_content_type_is_415(source_client):
    response = source_client.post(INTAKE, data="lead_id=x", content_type="application/x-www-form-urlencoded")
    assert response.status_code == 415
    assert "application/json" in response.json()["detail"]


def test_body_over_64_kib_is_413(source_client):
    payload = LeadPayloadFactory(attributes={"notes": "x" * (64 * 1024)})
    response = post_json(source_client, INTAKE, payload)
    assert response.status_code == 413
    assert response.json() == {"detail": "The body is larger than 65536 bytes; send less per request."}
    assert Lead.objects.count() == 0


class TestBatchIntake:
    def test_mixed_batch_reports_each_item_in_input_order(self, source_client):
        LeadFactory(origin=source_client.source, lead_id="old")
        items = [
            LeadPayloadFactory(lead_id="new-1"),
            LeadPayloadFactory(lead_id="bad", email="nope"),
            LeadPayloadFactory(lead_id="old"),
            LeadPayloadFactory(lead_id="new-1"),
            "not an object",
            LeadPayloadFactory(lead_id="new-2"),
        ]
        response = post_json(source_client, BATCH, items)
        assert response.status_code == 200
        results = response.json()["results"]
        assert [(r["lead_id"], r["status"]) for r in results] == [
            ("new-1", "accepted"),
            ("bad", "invalid"),
            ("old", "duplicate"),
            ("new-1", "duplicate"),
            (None, "invalid"),
            ("new-2", "accepted"),
        ]
        new_1 = Lead.objects.get(lead_id="new-1")
        assert results[0]["id"] == results[3]["id"] == new_1.id
        assert results[1] == {
            "lead_id": "bad",
            "status": "invalid",
            "id": None,
            "errors": {"email": ["Enter a valid email address."]},
            "schema_version": "2",
            "warnings": {},
        }
        assert results[2]["id"] == Lead.objects.get(lead_id="old").id
        assert results[4]["errors"] == {"non_field_errors": ["Expected a JSON object with the lead's fields."]}
        assert Lead.objects.count() == 3

    def test_batch_queues_routing_for_new_leads_only(self, source_client, django_capture_on_commit_callbacks):
        LeadFactory(origin=source_client.source, lead_id="old")
        with django_capture_on_commit_callbacks() as callbacks:
            post_json(source_client, BATCH, [LeadPayloadFactory(lead_id="old"), LeadPayloadFactory()])
        assert len(callbacks) == 1

    def test_an_item_the_database_cannot_store_is_invalid_and_the_rest_are_kept(self, source_client):
        items = [LeadPayloadFactory(lead_id="fine"), LeadPayloadFactory(lead_id="nul", company="bad\x00")]
        results = post_json(source_client, BATCH, items).json()["results"]
        assert [(r["lead_id"], r["status"]) for r in results] == [("fine", "accepted"), ("nul", "invalid")]
        assert list(Lead.objects.values_list("lead_id", flat=True)) == ["fine"]

    def test_500_items_are_accepted(self, source_client):
        response = post_json(source_client, BATCH, LeadPayloadFactory.build_batch(500))
        assert response.status_code == 200
        assert Lead.objects.count() == 500

    def test_over_500_items_is_400_and_nothing_stored(self, source_client):
        response = post_json(source_client, BATCH, LeadPayloadFactory.build_batch(501))
        assert response.status_code == 400
        assert response.json() == {"non_field_errors": ["501 items; send at most 500 per batch."]}
        assert Lead.objects.count() == 0

    def test_batch_that_is_not_a_list_is_400(self, source_client):
        response = post_json(source_client, BATCH, LeadPayloadFactory())
        assert response.status_code == 400
        assert response.json() == {"non_field_errors": ["Expected a JSON list of lead objects."]}

    def test_empty_batch_is_an_empty_result(self, source_client):
        response = post_json(source_client, BATCH, [])
        assert response.status_code == 200
        assert response.json() == {"results": []}

    def test_batch_needs_a_token(self):
        assert post_json(APIClient(), BATCH, [LeadPayloadFactory()]).status_code == 401


class TestLeadDetail:
    def test_source_reads_its_lead(self, source_client):
        lead_id = post_json(source_client, INTAKE, LeadPayloadFactory(lead_id="mine")).json()["id"]
        body = source_client.get(reverse("lead-detail", args=[lead_id])).json()
        assert body["lead_id"] == "mine"
        assert body["origin"] == "web-form"
        assert body["status"] == "received"
        assert (body["queue"], body["assignee"], body["assigned_at"]) == (None, None, None)
        assert body["decisions"] == [] and body["exceptions"] == [] and body["held_by"] == []
        assert set(body) == {
            "id",
            "lead_id",
            "origin",
            "status",
            "queue",
            "assignee",
            "received_at",
            "assigned_at",
            "waiting_until",
            "decisions",
            "exceptions",
            "held_by",
            "account",
            "identity",
            "handed_off_at",
            "deliveries",
        }
        assert (body["handed_off_at"], body["deliveries"]) == (None, [])  # nothing sent yet
        assert body["waiting_until"] is None  # not held (tests/availability/test_hold.py)

    def test_another_sources_lead_is_404(self, source_client):
        lead = LeadFactory()
        assert source_client.get(reverse("lead-detail", args=[lead.id])).status_code == 404

    def test_unknown_lead_is_404(self, source_client):
        assert source_client.get(reverse("lead-detail", args=[999999])).status_code == 404

    def test_staff_read_any_lead(self, ops_person):
        client = APIClient()
        client.force_login(ops_person)
        assert client.get(reverse("lead-detail", args=[LeadFactory().id])).status_code == 200

    def test_ops_people_read_any_lead_without_being_staff(self, ops_person):
        ops_person.is_staff = False
        ops_person.save()
        client = APIClient()
        client.force_login(ops_person)
        assert client.get(reverse("lead-detail", args=[LeadFactory().id])).status_code == 200

    def test_staff_outside_the_console_groups_cannot_read_leads(self, outsider):
        outsider.is_staff = True
        outsider.save()
        client = APIClient()
        client.force_login(outsider)
        assert client.get(reverse("lead-detail", args=[LeadFactory().id])).status_code == 403

    def test_person_without_console_access_is_403(self, outsider):
        client = APIClient()
        client.force_login(outsider)
        assert client.get(reverse("lead-detail", args=[LeadFactory().id])).status_code == 403

    def test_anonymous_is_401(self):
        assert APIClient().get(reverse("lead-detail", args=[LeadFactory().id])).status_code == 401


def test_batch_body_over_8_mib_is_413(source_client):
    items = [LeadPayloadFactory(attributes={"notes": "x" * 60_000}) for _ in range(150)]
    response = post_json(source_client, BATCH, items)
    assert response.status_code == 413
    assert Lead.objects.count() == 0


class TestQueryCounts:
    def test_single_intake_is_one_lookup_and_one_insert(self, source_client, django_assert_num_queries):
        # token lookup; the insert of lead and history row is one statement (inside the test's transaction)
        with django_assert_num_queries(2):
            assert post_json(source_client, INTAKE, LeadPayloadFactory()).status_code == 202

    def test_batch_intake_costs_the_same_for_500_leads(self, source_client, django_assert_num_queries, monkeypatch):
        monkeypatch.setattr("routing.intake._waiting_cache", None)  # counted at most once a second per process
        with django_assert_num_queries(3):  # the leads waiting for routing (back-pressure), then as a single lead
            assert post_json(source_client, BATCH, LeadPayloadFactory.build_batch(500)).status_code == 200

    def test_lead_detail_query_count_does_not_grow_with_decisions(self, source_client, django_assert_num_queries):
        from audit.models import AuditAction
        from audit.services import audit_record

        lead = LeadFactory(origin=source_client.source)
        for _ in range(5):
            audit_record(action=AuditAction.ROUTING_DECISION, lead=lead, outcome="no_matching_rule")
        # token, lead with origin/queue/assignee/account match, audit events with rules, exceptions, the items
        # holding it, its deliveries with their targets, same person
        with django_assert_num_queries(7):
            body = source_client.get(reverse("lead-detail", args=[lead.id])).json()
        assert len(body["decisions"]) == 5


@pytest.mark.django_db
def test_a_lead_without_attributes_is_stored_with_empty_attributes(source_client):
    assert post_json(source_client, INTAKE, {"lead_id": "bare"}).status_code == 202
    assert Lead.objects.get().attributes == {}


@pytest.mark.django_db
def test_an_unrouted_api_url_answers_json_404(source_client):
    response = source_client.get("/api/v1/leads/not-a-number/")
    assert response.status_code == 404
    assert response.json() == {"detail": "Not found."}


@pytest.mark.django_db
class TestLanesAndBackPressure:
    """Leads posted alone are routed on the live lane, batches on the bulk lane; a bulk backlog over the limit
    refuses batches (429, nothing stored) and never single leads."""

    @pytest.fixture(autouse=True)
    def fresh_count(self, monkeypatch):
        monkeypatch.setattr("routing.intake._waiting_cache", None)  # the per-process second-long count

    def test_a_batch_is_routed_on_the_bulk_lane(self, source_client, django_capture_on_commit_callbacks):
        live, bulk = settings.HANDOFF_QUEUES["live"], settings.HANDOFF_QUEUES["bulk"]
        broker().delete(live, bulk)
        with django_capture_on_commit_callbacks(execute=True):
            response = post_json(source_client, BATCH, LeadPayloadFactory.create_batch(3))
        assert response.status_code == 200
        assert routing_publisher.flush(timeout=10)
        assert (broker().llen(live), broker().llen(bulk)) == (0, 1)

    def test_a_batch_is_refused_while_too_many_leads_wait_and_nothing_is_stored(self, source_client, settings):
        settings.HANDOFF = {**settings.HANDOFF, "BULK_BACKLOG_LIMIT": 2}
        LeadFactory.create_batch(3)  # received, waiting for routing
        response = post_json(source_client, BATCH, LeadPayloadFactory.create_batch(2))
        assert response.status_code == 429
        assert response["Retry-After"] == "30"
        assert response.json()["detail"].startswith("3 leads are waiting for routing (limit 2); nothing from this")
        assert Lead.objects.count() == 3

    def test_a_single_lead_is_accepted_whatever_the_bulk_backlog(self, source_client, settings):
        settings.HANDOFF = {**settings.HANDOFF, "BULK_BACKLOG_LIMIT": 2}
        LeadFactory.create_batch(3)
        assert post_json(source_client, INTAKE, LeadPayloadFactory()).status_code == 202

    def test_a_batch_is_accepted_at_the_limit(self, source_client, settings):
        settings.HANDOFF = {**settings.HANDOFF, "BULK_BACKLOG_LIMIT": 3}
        LeadFactory.create_batch(3)
        assert post_json(source_client, BATCH, LeadPayloadFactory.create_batch(2)).status_code == 200


def test_an_internationalised_email_domain_is_accepted_and_matches_its_account(source_client):
    AccountFactory(account_id="M-1", name="München Test GmbH", domains=["münchen-test.de"], country="DE")
    response = post_json(source_client, INTAKE, LeadPayloadFactory(lead_id="idn-1", email="Jo@München-Test.de"))
    assert response.status_code == 202
    lead = Lead.objects.get(lead_id="idn-1")
    assert lead.email == "jo@münchen-test.de"
    assert account_match_for(email=lead.email).account.account_id == "M-1"
