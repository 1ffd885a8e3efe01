"""Finding work: `q` on the item list and `GET /api/v1/exceptions/` finds any part of the lead's email, lead
id, company or names, case ignored, through a trigram index on PostgreSQL."""

import pytest
from django.db import connection
from rest_framework.test import APIClient

from exceptions.filters import LEAD_SEARCH_TEXT
from tests.factories import QueueFactory, open_exception

pytestmark = pytest.mark.django_db


@pytest.fixture
def items(db):
    triage = QueueFactory(name="Triage")
    return {
        "maren": open_exception(queue=triage, email="maren.okafor@lindqvist.example", company="Lindqvist Freight"),
        "jo": open_exception(queue=triage, email="jo@acme.example", company="Acme 100% Corp", lead_id="FORM-77_A"),
        "kim": open_exception(
            queue=triage, email=None, phone="+44 20 7946 0001", first_name="Kim", last_name="Sørensen"
        ),
    }


def found(client, q) -> set[int]:
    answer = client.get("/api/v1/exceptions/", {"q": q})
    assert answer.status_code == 200, answer.json()
    return {row["id"] for row in answer.json()["results"]}


def test_any_part_of_email_lead_id_company_or_name_finds_the_item(items, ops_person):
    api = APIClient()
    api.force_authenticate(ops_person)
    assert found(api, "OKAFOR") == {items["maren"].pk}
    assert found(api, "lindqvist fr") == {items["maren"].pk}
    assert found(api, "form-77") == {items["jo"].pk}
    assert found(api, "sørensen") == {items["kim"].pk}
    assert found(api, ".example") == {items["maren"].pk, items["jo"].pk}
    # LIKE's own signs are searched for as themselves.
    assert found(api, "100%") == {items["jo"].pk}
    assert found(api, "77_a") == {items["jo"].pk}
    assert found(api, "7_a") == {items["jo"].pk} and found(api, "7xa") == set()
    short = api.get("/api/v1/exceptions/", {"q": "jo"})
    assert short.status_code == 400 and "q" in short.json()


def test_the_console_list_searches_too(client, ops_person, items):
    client.force_login(ops_person)
    page = client.get("/console/items/", {"q": "acme"}).content.decode()
    assert "jo@acme.example" in page and "maren.okafor" not in page


def test_the_search_uses_the_trigram_index(items):  # the suite runs on PostgreSQL (README)
    with connection.cursor() as cursor:
        cursor.execute("SET enable_seqscan = off")  # a tiny table would be scanned anyway: ask what it can use
        cursor.execute(f"EXPLAIN SELECT id FROM routing_lead WHERE {LEAD_SEARCH_TEXT} LIKE %s", ["%okafor%"])
        plan = "\n".join(row[0] for row in cursor.fetchall())
        cursor.execute("RESET enable_seqscan")
    assert "lead_search_trgm_idx" in plan, plan
