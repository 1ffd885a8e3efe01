"""Accounts and identity on the real routing path: posted over HTTP, routed by a Celery worker process."""

import json

import pytest

from routing.models import AssignTo, Lead, LeadStatus
from tests.conftest import wait_until
from tests.factories import AccountFactory, LeadPayloadFactory, MembershipFactory, QueueFactory, RuleFactory

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.celery_worker]


def test_a_posted_lead_goes_to_its_account_owner_and_the_next_sticks(celery_worker, source_client, rule_owner, sam):
    queue = QueueFactory(name="Key accounts")
    MembershipFactory(queue=queue, user__username="rota")
    RuleFactory(
        owner=rule_owner,
        condition={"field": "account.id", "op": "exists"},
        queue=queue,
        assign_to=AssignTo.ACCOUNT_OWNER,
    )
    AccountFactory(account_id="A-1", name="Acme Corporation", domains=["acme.co.uk"], owner=sam)

    def post(payload):
        response = source_client.post("/api/v1/leads/", data=json.dumps(payload), content_type="application/json")
        assert response.status_code == 202
        return response.json()

    first = post(LeadPayloadFactory(email="jo@mail.acme.co.uk"))
    second = post(LeadPayloadFactory(email="JO@mail.acme.co.uk", company="Acme"))
    for lead in (first, second):
        wait_until(
            lambda lead=lead: Lead.objects.filter(pk=lead["id"], status=LeadStatus.ASSIGNED).exists(),
            what="the worker to assign the lead",
        )
    body = source_client.get(f"/api/v1/leads/{second['id']}/").json()
    assert body["assignee"] == "sam" and body["queue"] == "Key accounts"
    assert body["account"]["account_id"] == "A-1" and body["account"]["method"] == "domain"
    assert [other["id"] for other in body["identity"]] == [first["id"]]  # both from this source
