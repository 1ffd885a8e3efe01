"""Issue 15, finding 6: SSRF. Delivery and enrichment URLs that resolve to loopback, private, link-local or
metadata addresses are refused when the request is sent (not only when the URL is saved), as a failure
retrying cannot fix, with a reason ops can read; HANDOFF_OUTBOUND_ALLOW opens networks a deployment names.
An error answer's body is never shown to people; an enrichment answer is not stored whole.

The fake CRM is a real server on 127.0.0.1; the test settings allow 127.0.0.0/8 for the other suites, and
these tests take that away (or set it) through the `outbound_allow` fixture."""

import ipaddress

import pytest

from exceptions.models import ExceptionItem, ExceptionReason
from routing.integrations import http
from routing.integrations.delivery import event_deliver
from routing.integrations.enrichment import MAX_EXTRA_TEXT_CHARS, READY, lead_enrich
from routing.integrations.models import DeliveryAttempt, OutboxStatus
from tests.factories import (
    DeliveryTargetFactory,
    EnrichmentProviderFactory,
    LeadFactory,
    OutboxEventFactory,
    UserFactory,
)
from tests.integrations.fake_target import Behaviour, FakeTarget, answer, status

pytestmark = pytest.mark.django_db


@pytest.fixture
def fake_target():
    server = FakeTarget().start()
    yield server
    server.stop()


@pytest.fixture
def outbound_allow(settings):
    def allow(*networks: str):
        settings.HANDOFF = {**settings.HANDOFF, "OUTBOUND_ALLOW": [ipaddress.ip_network(n) for n in networks]}

    allow()  # production's default: public addresses only
    return allow


def deliver_once(url: str):
    event = OutboxEventFactory(target=DeliveryTargetFactory(name="CRM", url=url), lead=LeadFactory())
    return event_deliver(event_id=event.pk)


def test_a_target_on_loopback_is_refused_at_send_time_and_dead_lettered_at_once(outbound_allow, fake_target):
    event = deliver_once(fake_target.url)
    assert fake_target.received == []  # nothing was sent
    assert (event.status, event.attempts) == (OutboxStatus.DEAD, 1)  # not retryable: no second attempt
    assert event.last_error.startswith(
        "refused: 127.0.0.1 resolves to 127.0.0.1, a loopback address; outbound requests go to public addresses only"
    )
    item = ExceptionItem.objects.get(lead=event.lead)
    assert item.reason == ExceptionReason.DELIVERY_FAILED
    assert "failed (not retryable): refused: 127.0.0.1 resolves to 127.0.0.1" in item.detail


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://169.254.169.254/latest/meta-data/", "a cloud metadata address"),
        ("http://[fd00:ec2::254]/latest/meta-data/", "a cloud metadata address"),
        ("http://169.254.10.10/", "a link-local address"),
        ("http://10.0.0.5:8080/hook", "a private address"),
        ("http://192.168.1.20/hook", "a private address"),
        ("http://172.16.0.1/hook", "a private address"),
        ("http://[::1]:9000/hook", "a loopback address"),
        ("http://[::ffff:127.0.0.1]/hook", "a loopback address"),
        ("http://0.0.0.0/hook", "the unspecified address"),
        ("http://100.64.0.1/hook", "not a public address"),
        ("http://localhost:8000/hook", "a loopback address"),
        ("http://0x7f.1/hook", "a loopback address"),  # resolved as the C library reads it: 127.0.0.1
    ],
)
def test_internal_addresses_are_refused_with_the_reason(outbound_allow, url, reason):
    answer_ = http.post(url, content=b"{}", headers={}, timeout=1.0)
    assert answer_.refused and not answer_.retryable
    assert reason in answer_.error


def test_a_url_saved_while_allowed_is_refused_once_the_allow_list_no_longer_covers_it(outbound_allow, fake_target):
    outbound_allow("127.0.0.0/8")
    target = DeliveryTargetFactory(url=fake_target.url)
    first = OutboxEventFactory(target=target)
    assert event_deliver(event_id=first.pk).status == OutboxStatus.DELIVERED
    outbound_allow()  # the check is made at every send, not kept from the first one
    second = event_deliver(event_id=OutboxEventFactory(target=target).pk)
    assert second.status == OutboxStatus.DEAD and second.last_error.startswith("refused:")
    assert len(fake_target.received) == 1


def test_an_allowed_network_is_reached_by_name_at_the_checked_address(outbound_allow, fake_target):
    outbound_allow("127.0.0.0/8", "::1/128")
    port = fake_target.server.server_address[1]
    event = deliver_once(f"http://localhost:{port}/hooks/handoff")
    assert event.status == OutboxStatus.DELIVERED
    (request,) = fake_target.received
    assert request.headers["Host"] == f"localhost:{port}"  # the name kept, the connection to 127.0.0.1


def test_redirects_are_not_followed(outbound_allow, fake_target):
    outbound_allow("127.0.0.0/8")
    fake_target.script = [Behaviour(302, {"Location": "http://169.254.169.254/latest/meta-data/"})]
    event = deliver_once(fake_target.url)
    assert event.status == OutboxStatus.DEAD
    assert event.last_error == "HTTP 302 Found (answer of 2 bytes not shown)"
    assert len(fake_target.received) == 1


def test_an_error_answer_body_is_never_shown_to_people(outbound_allow, fake_target, client, ops_person):
    outbound_allow("127.0.0.0/8")
    secret_page = b"<h1>Internal admin</h1> db_password=hunter2"
    fake_target.script = [Behaviour(422, body=secret_page)]
    event = deliver_once(fake_target.url)
    assert event.last_error == f"HTTP 422 Unprocessable Entity (answer of {len(secret_page)} bytes not shown)"
    assert DeliveryAttempt.objects.get(event=event).error == event.last_error
    client.force_login(ops_person)
    page = client.get("/console/dead-letters/").content.decode()
    assert "HTTP 422 Unprocessable Entity" in page
    assert "hunter2" not in page and "Internal admin" not in page
    assert "hunter2" not in ExceptionItem.objects.get(lead=event.lead).detail


def test_an_enrichment_provider_on_loopback_is_refused_and_the_lead_routes_without_it(outbound_allow, fake_target):
    provider = EnrichmentProviderFactory(url=fake_target.url, max_attempts=4)
    lead = LeadFactory(company_size=None)
    assert lead_enrich(lead_id=lead.pk, provider=provider) == READY  # failed for good at once, no retries
    lead.refresh_from_db()
    assert (lead.enrichment_status, lead.enrichment_attempts) == ("failed", 1)
    assert fake_target.received == []


def test_an_enrichment_answer_is_not_stored_whole(outbound_allow, fake_target):
    outbound_allow("127.0.0.0/8")
    provider = EnrichmentProviderFactory(url=fake_target.url)
    lead = LeadFactory(company_size=None)
    fake_target.script = [
        answer(
            {
                "company_size": 300,
                "industry": "logistics",
                "page": "x" * (MAX_EXTRA_TEXT_CHARS + 1),  # e.g. an internal page the URL reached
                "nested": {"a": {"b": [1, 2, 3]}},
                **{f"key{i}": i for i in range(60)},
            }
        )
    ]
    assert lead_enrich(lead_id=lead.pk, provider=provider) == READY
    lead.refresh_from_db()
    stored = lead.attributes["enrichment"]
    assert stored["industry"] == "logistics" and stored["filled"] == ["company_size"]
    assert "page" not in stored and "nested" not in stored
    assert len(stored) == 1 + 50 + 1  # filled, 50 plain values, dropped
    assert stored["dropped"] == 63 - 50


def test_the_admin_refuses_a_target_url_at_a_metadata_address(outbound_allow, client):
    client.force_login(UserFactory(is_staff=True, is_superuser=True))
    response = client.post(
        "/admin/routing/deliverytarget/add/",
        {
            "name": "Sneaky",
            "url": "http://169.254.169.254/latest/meta-data/",
            "secret": "s3cret-value",
            "events": ["lead.assigned"],
            "is_active": "on",
            "max_attempts": 8,
            "timeout_seconds": 10,
        },
    )
    assert response.status_code == 200
    assert "Refused: 169.254.169.254 resolves to 169.254.169.254, a cloud metadata address" in response.content.decode()


def test_a_real_response_too_large_is_cut_and_not_parsed(outbound_allow, fake_target):
    outbound_allow("127.0.0.0/8")
    fake_target.script = [Behaviour(200, body=b'{"k": "' + b"x" * http.MAX_ANSWER_BYTES + b'"}')]
    result = http.post(fake_target.url, content=b"{}", headers={}, timeout=5.0)
    assert result.ok and result.body is None


def test_status_codes_stay_retryable_as_before(outbound_allow, fake_target):
    outbound_allow("127.0.0.0/8")
    fake_target.script = [status(503)]
    result = http.post(fake_target.url, content=b"{}", headers={}, timeout=5.0)
    assert result.retryable and not result.refused
