"""API list filters take a queue, person or source by the name the answers show, as well as by id: a newcomer's
`?queue=Triage` on the incident list was a 400 (ids only) although each incident says `"queue": "Triage"`."""

import pytest
from django.conf import settings
from rest_framework.test import APIClient

from exceptions.incident_actions import incident_assign
from exceptions.incidents import Cause
from exceptions.models import ExceptionIncident, ExceptionReason
from exceptions.services import exception_open
from tests.factories import LeadFactory, MembershipFactory, QueueFactory, RuleFactory, UserFactory

pytestmark = pytest.mark.django_db

NOWHERE = "Nothing is named 'Nowhere' here: give its id or its exact name."


@pytest.fixture
def api(ops_person):
    client = APIClient()
    client.force_authenticate(ops_person)
    return client


def outage(queue, name: str) -> ExceptionIncident:
    """Enough items of one cause to open an incident."""
    cause = Cause(f"delivery_failed:1:{name}", f"Deliveries fail: {name}")
    for n in range(settings.HANDOFF["INCIDENT_MIN_ITEMS"]):
        lead = LeadFactory(email=f"{name}{n}@acme.example")
        exception_open(lead=lead, reason=ExceptionReason.DELIVERY_FAILED, queue=queue, cause=cause)
    return ExceptionIncident.objects.get(cause=cause.key)


@pytest.fixture
def incidents(ops_person):
    triage, sales = QueueFactory(name="Triage"), QueueFactory(name="Sales")
    crm, mail = outage(triage, "crm"), outage(sales, "mail")
    incident_assign(incident=crm, to=ops_person, by=ops_person)
    return {"crm": crm, "mail": mail}


def incident_ids(api, **query) -> set[int]:
    response = api.get("/api/v1/incidents/", query)
    assert response.status_code == 200, response.json()
    return {row["id"] for row in response.json()["results"]}


def test_the_incident_list_takes_a_queue_by_name_or_id(api, incidents):
    crm = incidents["crm"]

    assert incident_ids(api, queue="Triage") == {crm.pk}
    assert incident_ids(api, queue=crm.queue_id) == {crm.pk}


def test_the_incident_list_takes_an_assignee_by_username(api, incidents):
    assert incident_ids(api, assignee="olga") == {incidents["crm"].pk}
    assert incident_ids(api, assignee="null") == {incidents["mail"].pk}  # nobody


def test_the_item_list_takes_a_queue_member_who_holds_items_by_username(api, ops_person):
    """Queue members hold items (routing, acknowledging) without being console people: the list a row shows
    `"assignee": "alan"` on must take `?assignee=alan` (it answered 400 "Nothing is named 'alan'")."""
    sales = QueueFactory(name="Sales")
    alan = MembershipFactory(queue=sales, user=UserFactory(username="alan")).user
    held = exception_open(lead=LeadFactory(), reason=ExceptionReason.NO_ELIGIBLE_ASSIGNEE, queue=sales)
    exception_open(lead=LeadFactory(), reason=ExceptionReason.NO_ELIGIBLE_ASSIGNEE, queue=sales)
    held.assignee = alan
    held.save(update_fields=["assignee"])
    response = api.get("/api/v1/exceptions/", {"assignee": "alan"})
    assert response.status_code == 200, response.json()
    assert [row["id"] for row in response.json()["results"]] == [held.pk]
    assert response.json()["results"][0]["assignee"] == "alan"


def test_the_incident_list_refuses_a_name_that_names_nothing(api, incidents):
    response = api.get("/api/v1/incidents/", {"queue": "Nowhere"})

    assert response.status_code == 400
    assert response.json()["queue"] == [NOWHERE]


@pytest.fixture
def rules(db):
    sales, partners = QueueFactory(name="Sales"), QueueFactory(name="Partners")
    ada = UserFactory(username="ada")
    return {
        "sales": RuleFactory(name="Inbound", queue=sales, owner=ada),
        "partners": RuleFactory(name="Partner referrals", queue=partners),
    }


def rule_names(api, **query) -> set[str]:
    response = api.get("/api/v1/rules/", query)
    assert response.status_code == 200, response.json()
    return {row["name"] for row in response.json()}


def test_the_rule_list_takes_a_queue_or_owner_by_name_or_id(api, rules):
    assert rule_names(api) == {"Inbound", "Partner referrals"}
    assert rule_names(api, queue="Sales") == {"Inbound"}
    assert rule_names(api, queue=rules["partners"].queue_id) == {"Partner referrals"}
    assert rule_names(api, owner="ada") == {"Inbound"}


def test_the_rule_list_refuses_a_name_that_names_nothing(api, rules):
    response = api.get("/api/v1/rules/", {"queue": "Nowhere"})

    assert response.status_code == 400
    assert response.json()["queue"] == [NOWHERE]


def test_the_schema_documents_names_for_the_list_filters(api):
    schema = api.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json").json()

    for path, names in (("/api/v1/incidents/", {"queue", "assignee"}), ("/api/v1/rules/", {"queue", "owner"})):
        parameters = {p["name"]: p for p in schema["paths"][path]["get"]["parameters"]}
        for name in names:
            assert {"type": "string", "minLength": 1} in parameters[name]["schema"]["anyOf"], (path, name)
            assert "name" in parameters[name]["description"], (path, name)


def test_assigning_to_a_queue_member_who_cannot_use_the_console_says_how_to_let_them(api):
    sales = QueueFactory(name="Sales")
    MembershipFactory(queue=sales, user=UserFactory(username="alan"))
    item = exception_open(lead=LeadFactory(), reason=ExceptionReason.NO_ELIGIBLE_ASSIGNEE, queue=sales)
    body = {"action": "assign", "ids": [item.pk], "assignee": "alan"}
    response = api.post("/api/v1/exceptions/bulk/", body, format="json")
    assert response.status_code == 400
    (message,) = response.json()["assignee"]
    assert message.startswith("username=alan is not a console person: items go to people in the ops")
    assert "grant_console_access alan --group ops" in message
