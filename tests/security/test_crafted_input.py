"""Issue 15, finding 8: crafted input gave 500s. Each input below now answers 400 with what to fix; an API
error that is not handled answers JSON; JSON nested past the intake's limit is refused everywhere."""

import json

import pytest
from django.test import Client
from rest_framework.test import APIClient

from routing.integrations.deadletter import MAX_DEAD_AGE_HOURS
from routing.jsonbounds import MAX_JSON_DEPTH
from routing.models import Rule
from tests.factories import OutboxEventFactory, RuleFactory, UserFactory, open_exception

pytestmark = pytest.mark.django_db

FAR_FUTURE = "9999-12-31T23:59:59-23:59"


@pytest.fixture
def ops_client(client, ops_person):
    client.force_login(ops_person)
    return client


@pytest.fixture
def api_client(ops_person):
    client = APIClient()
    client.force_authenticate(ops_person)
    return client


def nested_json(depth: int) -> str:
    return '{"k": ' * depth + "1" + "}" * depth


def text(response) -> str:
    return response.content.decode()


# Non-ASCII digits: "²".isdigit() is True, int("²") raises.


def test_a_superscript_rule_id_in_the_dashboard_drill_down_is_a_400(ops_client):
    response = ops_client.get("/console/dashboard/leads/?start=2026-11-01&end=2026-11-02&rule=%C2%B2")
    assert response.status_code == 400
    assert "A rule id (digits 0-9), or &#x27;none&#x27;." in text(response)


def test_a_superscript_version_to_compare_on_a_rule_page_is_a_400(ops_client):
    rule = RuleFactory()
    response = ops_client.get(f"/console/rules/{rule.pk}/?a=%C2%B2&b=draft")
    assert response.status_code == 400
    assert text(response) == "a= must be a version number (digits 0-9), e.g. ?a=1&b=2."


def test_a_superscript_item_version_in_an_action_is_a_400(ops_client):
    item = open_exception()
    response = ops_client.post(f"/console/items/{item.pk}/assign_to_me/", {"version": "²"})
    assert response.status_code == 400
    assert "version must be the item's version number (digits 0-9)" in text(response)
    item.refresh_from_db()
    assert item.assignee is None


# Far-future dates and ages.


def test_a_far_future_received_after_in_the_item_list_is_a_400(ops_client):
    response = ops_client.get("/console/items/", {"received_after": FAR_FUTURE})
    assert response.status_code == 400
    assert "Choose a date between 2000-01-01 and 2999-12-31." in text(response)


def test_a_far_future_received_after_in_the_exceptions_api_is_a_400(api_client):
    response = api_client.get("/api/v1/exceptions/", {"received_after": FAR_FUTURE})
    assert response.status_code == 400
    assert "Choose a date between 2000-01-01 and 2999-12-31." in json.dumps(response.json())


def test_a_custom_dashboard_range_in_year_9999_is_a_400(ops_client):
    response = ops_client.get("/console/dashboard/", {"range": "custom", "start": "9999-12-30", "end": "9999-12-31"})
    assert response.status_code == 400
    assert "Choose a date between 2000-01-01 and 2999-12-31." in text(response)


def test_a_dashboard_drill_down_in_year_9999_is_a_400(ops_client):
    response = ops_client.get("/console/dashboard/leads/", {"start": "9999-12-31", "end": "9999-12-31"})
    assert response.status_code == 400
    assert "Choose a date between 2000-01-01 and 2999-12-31." in text(response)


def test_dead_letters_older_than_a_century_is_a_400(ops_client):
    OutboxEventFactory()
    response = ops_client.get("/console/dead-letters/", {"older_than_hours": "99999999999"})
    assert response.status_code == 400
    expected = f"Dead for at least (hours): Ensure this value is less than or equal to {MAX_DEAD_AGE_HOURS}."
    assert expected in text(response)


# Deep JSON.


# NUL: PostgreSQL text cannot hold it, so wherever it reached a query it was a 500.


@pytest.mark.parametrize(
    "address",
    ["/api/v1/accounts/?q=a%00b", "/api/v1/accounts/a%00/", "/api/v1/exceptions/?q%00=1", "/api/v1/leads/1%00/"],
)
def test_a_nul_in_an_api_address_is_a_json_400(api_client, address):
    response = api_client.get(address)
    assert response.status_code == 400
    assert response.json() == {"detail": "The address contains a NUL (%00) character; remove it."}


def test_a_nul_in_a_console_search_is_a_400(ops_client):
    response = ops_client.get("/console/accounts/?q=a%00")
    assert response.status_code == 400
    assert text(response) == "The address contains a NUL (%00) character; remove it."


def test_a_nul_in_an_accounts_attributes_is_a_400_and_nothing_is_saved(api_client):
    body = {"name": "Acme", "domains": ["acme.example"], "attributes": {"tier": ["gold", "\u0000"]}}
    response = api_client.put("/api/v1/accounts/acc1/", body, format="json")
    assert response.status_code == 400
    assert response.json()["attributes"] == ["Must not contain NUL (\\u0000) characters."]
    assert api_client.get("/api/v1/accounts/acc1/").status_code == 404


@pytest.mark.parametrize("occurred_at", [FAR_FUTURE, "0001-01-01T00:00:00+14:00"])
def test_an_out_of_range_occurred_at_in_the_routing_preview_is_a_400(api_client, occurred_at):
    lead = {"email": "a@example.com", "occurred_at": occurred_at}
    response = api_client.post("/api/v1/rules/preview/", {"lead": lead}, format="json")
    assert response.status_code == 400
    assert "is out of range (in UTC)" in text(response)


@pytest.mark.parametrize("depth", [MAX_JSON_DEPTH + 1, 5000])
def test_deep_json_to_the_console_api_is_a_400_with_the_limit(api_client, depth):
    response = api_client.post("/api/v1/rules/preview/", data=nested_json(depth), content_type="application/json")
    assert response.status_code == 400
    assert response["Content-Type"] == "application/json"
    detail = response.json()["detail"]
    assert f"nested deeper than {MAX_JSON_DEPTH} levels" in detail or "depth limit exceeded" in detail


def test_json_at_the_limit_still_parses(api_client):
    lead = json.loads(nested_json(MAX_JSON_DEPTH - 2))  # {"lead": {"attributes"-like nesting}} stays legal
    response = api_client.post("/api/v1/rules/preview/", data={"lead": lead}, format="json")
    assert response.status_code == 400  # refused by the preview's own validation, not by the parser
    assert "nested deeper" not in json.dumps(response.json())


def test_deep_json_in_the_rule_editor_is_a_400_with_the_limit(client, rule_owner):
    client.force_login(rule_owner)
    form = {"name": "Deep", "priority": 10, "condition": nested_json(5000), "test_cases": ""}
    response = client.post("/console/rules/new/", form)
    assert response.status_code == 400
    assert "Malformed JSON: depth limit exceeded" in text(response) or "nested deeper" in text(response)
    assert not Rule.objects.filter(name="Deep").exists()


def test_deep_json_in_the_admin_rule_form_is_refused(client):
    admin = UserFactory(is_staff=True, is_superuser=True)
    client.force_login(admin)
    rule = RuleFactory()
    response = client.post(
        f"/admin/routing/rule/{rule.pk}/change/",
        {"name": rule.name, "priority": rule.priority, "condition": nested_json(3000), "test_cases": "[]"},
    )
    assert response.status_code == 200  # the admin shows the form again with the error
    assert "Not valid JSON" in text(response)


# Unhandled errors.


@pytest.mark.urls("tests.security.boom_urls")
def test_an_unhandled_api_error_answers_json():
    response = Client(raise_request_exception=False).get("/api/v1/boom/")
    assert response.status_code == 500
    assert response["Content-Type"] == "application/json"
    assert response.json() == {
        "detail": "Server error: the request was not completed; try again, or report it if it persists."
    }


@pytest.mark.urls("tests.security.boom_urls")
def test_an_unhandled_console_error_still_answers_html():
    response = Client(raise_request_exception=False).get("/console/boom/")
    assert response.status_code == 500
    assert response["Content-Type"].startswith("text/html")
