"""The dashboard's accounts and identity figures, per origin, from the daily rollup."""

import pytest

from routing.dashboard.rollups import dashboard_rollup_recent
from routing.services import lead_route
from tests.factories import AccountFactory, LeadFactory, MembershipFactory, QueueFactory, RuleFactory, SourceFactory

pytestmark = pytest.mark.django_db


def test_match_rate_ambiguous_and_known_people_per_origin(client, ops_person, rule_owner):
    queue = QueueFactory(name="Sales")
    MembershipFactory(queue=queue)
    RuleFactory(owner=rule_owner, condition={"field": "email", "op": "exists"}, queue=queue)
    AccountFactory(account_id="A", name="Acme Corporation", domains=["acme.com"])
    AccountFactory(account_id="US", name="Delta Freight Inc.", domains=["deltafreight.com"], country="US")
    AccountFactory(account_id="DE", name="Delta Freight GmbH", domains=["deltafreight.de"], country="DE")
    web, chat = SourceFactory(name="web"), SourceFactory(name="chat")
    for origin, email, company in [
        (web, "jo@acme.com", None),
        (web, "jo@acme.com", None),
        (web, "x@gmail.com", "Delta Freight"),
        (chat, "y@nowhere.io", None),
    ]:
        lead = LeadFactory(origin=origin, email=email, company=company, country=None)
        lead_route(lead_id=lead.pk)
    dashboard_rollup_recent()
    client.force_login(ops_person)
    response = client.get("/console/dashboard/")
    rows = {row["origin"]: row for row in response.context["accounts"]["origins"]}
    assert (rows["web"]["checked"], rows["web"]["matched"], rows["web"]["ambiguous"]) == (3, 2, 1)
    assert rows["web"]["known_person"] == 1 and rows["web"]["match_rate"] == 66.7
    assert (rows["chat"]["matched"], rows["chat"]["match_rate"]) == (0, 0.0)
    assert response.context["accounts"]["totals"]["checked"] == 4
    assert 'id="account-matching"' in response.content.decode()
    # Each count opens the leads it counts.
    web_row = rows["web"]
    listed = {}
    for figure in ("checked", "matched", "ambiguous", "known_person"):
        page = client.get(web_row["links"][figure])
        assert page.status_code == 200
        listed[figure] = sorted(lead.email for lead in page.context["page"].object_list)
    assert listed == {
        "checked": ["jo@acme.com", "jo@acme.com", "x@gmail.com"],
        "matched": ["jo@acme.com", "jo@acme.com"],
        "ambiguous": ["x@gmail.com"],
        "known_person": ["jo@acme.com"],
    }
    assert "ambiguous between accounts" in client.get(web_row["links"]["ambiguous"]).content.decode()
    everyone = client.get(response.context["accounts"]["totals"]["links"]["checked"]).context["page"]
    assert len(everyone.object_list) == 4
