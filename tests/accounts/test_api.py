"""The accounts API: PUT/DELETE one account, list and read, and the match endpoint (no writes)."""

import pytest
from rest_framework.test import APIClient

from audit.models import AuditAction, AuditEvent
from routing.accounts.models import Account, AccountMatch
from tests.factories import AccountFactory, UserFactory, personal_token

pytestmark = pytest.mark.django_db


def test_put_creates_then_replaces_and_delete_removes(api, sam):
    body = {"name": "Acme Corporation", "domains": "acme.com;acme.co.uk", "country": "us", "owner": "sam"}
    created = api.put("/api/v1/accounts/A-1/", body, format="json")
    assert created.status_code == 201, created.json()
    assert created.json()["domains"] == ["acme.com", "acme.co.uk"] and created.json()["owner"] == "sam"
    replaced = api.put("/api/v1/accounts/A-1/", {"name": "Acme Corp", "domains": ["acme.com"]}, format="json")
    assert replaced.status_code == 200
    assert replaced.json()["owner"] is None and replaced.json()["country"] == ""
    assert api.get("/api/v1/accounts/A-1/").json()["name"] == "Acme Corp"
    assert api.delete("/api/v1/accounts/A-1/").status_code == 204
    gone = [api.delete("/api/v1/accounts/A-1/"), api.get("/api/v1/accounts/A-1/")]
    assert [(r.status_code, r.json()) for r in gone] == [(404, {"detail": "No account 'A-1'."})] * 2
    assert not Account.objects.exists()
    actions = list(AuditEvent.objects.values_list("action", flat=True))
    assert actions.count(AuditAction.ACCOUNT_SAVED) == 2 and AuditAction.ACCOUNT_DELETED in actions


def test_put_names_every_bad_field(api):
    response = api.put(
        "/api/v1/accounts/A-1/", {"name": "Acme", "domains": "co.uk", "country": "ZZ", "owner": "ghost"}, format="json"
    )
    assert response.status_code == 400
    assert set(response.json()) == {"domains", "country", "owner"}


def test_an_owner_given_as_a_number_with_another_bad_field_is_a_400_not_a_crash(api):
    response = api.put("/api/v1/accounts/A-1/", {"name": "Acme", "owner": 7.5, "phone": True}, format="json")
    assert response.status_code == 400
    assert "owner" in response.json()


def test_a_misspelt_field_is_refused_instead_of_emptying_the_account(api):
    response = api.put(
        "/api/v1/accounts/API-1/",
        {"name": "Globo Gym", "domain": "globogym.com", "ownr": "marie", "country": "USA"},
        format="json",
    )
    assert response.status_code == 400
    errors = response.json()
    assert (
        errors["domain"]
        == errors["ownr"]
        == ["Unknown field. Allowed fields: name, domains, phone, country, owner, territory, attributes."]
    )
    assert "country" in errors  # and every other problem, at once
    assert api.get("/api/v1/accounts/API-1/").status_code == 404


def test_an_owner_address_several_people_share_is_refused(api):
    UserFactory(username="alan", email="alan@example.com")
    UserFactory(username="alan3", email="Alan@example.com")
    response = api.put("/api/v1/accounts/A-5/", {"name": "Five", "owner": "alan@example.com"}, format="json")
    assert response.status_code == 400
    assert response.json() == {"owner": ["Several people have the address 'alan@example.com'; give a username."]}
    assert api.put("/api/v1/accounts/A-5/", {"name": "Five", "owner": "alan3"}, format="json").status_code == 201


def test_a_missing_name_is_reported_with_every_other_bad_field(api):
    response = api.put("/api/v1/accounts/A-1/", {"country": "USA", "domains": "co.uk"}, format="json")
    assert response.status_code == 400
    errors = response.json()
    assert set(errors) == {"name", "country", "domains"}
    assert errors["country"] == ["'USA' is not an ISO 3166-1 alpha-2 code (e.g. US, DE)."]
    assert not Account.objects.exists()


def test_put_says_what_it_kept_off_and_what_another_account_shares(api):
    AccountFactory(account_id="A-1", name="Acme Corporation", domains=["acme.com"])
    response = api.put(
        "/api/v1/accounts/A-2/", {"name": "Acme Europe", "domains": ["acme.com", "gmail.com", "acme.eu"]}, format="json"
    )
    assert response.status_code == 201
    assert response.json()["domains"] == ["acme.com", "acme.eu"]
    assert response.json()["notes"] == [
        "gmail.com is a free-mail domain: kept off the account, it never matches",
        "acme.com is also a domain of Acme Corporation (A-1): leads from it are ambiguous unless the company name "
        "or phone tells the accounts apart",
    ]
    alone = api.put("/api/v1/accounts/A-3/", {"name": "Solo", "domains": ["solo.io"]}, format="json")
    assert alone.json()["notes"] == []


def test_list_searches_by_name_id_and_domain(api):
    AccountFactory(account_id="A-1", name="Acme Corporation", domains=["acme.com"])
    AccountFactory(account_id="G-1", name="Globex GmbH", domains=["globex.de"])
    names = lambda q: [a["name"] for a in api.get("/api/v1/accounts/", {"q": q}).json()["results"]]  # noqa: E731
    assert names("acme") == ["Acme Corporation"]
    assert names("G-1") == ["Globex GmbH"]
    assert names("www.globex.de") == ["Globex GmbH"]


def test_match_answers_without_writing(api, sam):
    AccountFactory(account_id="A-1", name="Acme Corporation", domains=["acme.com"], owner=sam, territory="West")
    response = api.post("/api/v1/accounts/match/", {"email": "jo@eu.acme.com", "company": "Acme Inc."}, format="json")
    assert response.status_code == 200
    body = response.json()
    assert body["account"] == {"account_id": "A-1", "name": "Acme Corporation", "owner": "sam", "territory": "West"}
    assert body["method"] == "domain" and body["confidence"] > 0.9
    assert "acme.com" in body["why"] and body["candidates"][0]["account_id"] == "A-1"
    nothing = api.post("/api/v1/accounts/match/", {"email": "jo@gmail.com"}, format="json").json()
    assert nothing["account"] is None and nothing["method"] == "none"
    assert not AccountMatch.objects.exists()


def test_match_validates_like_intake(api):
    response = api.post("/api/v1/accounts/match/", {"email": "not an email", "country": "XX"}, format="json")
    assert response.status_code == 400
    assert set(response.json()) == {"email", "country"}


def test_only_console_people_use_it(source_client, outsider):
    assert APIClient().get("/api/v1/accounts/").status_code == 401
    assert source_client.put("/api/v1/accounts/A-1/", {"name": "x"}, format="json").status_code == 403
    client = APIClient()
    client.force_authenticate(outsider)
    assert client.post("/api/v1/accounts/match/", {"email": "a@b.com"}, format="json").status_code == 403


def test_concurrent_puts_of_a_new_account_both_succeed(transactional_db, ops_person):
    import threading

    from django.db import connection

    token = personal_token(ops_person)
    codes = []

    def put(name):
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Token {token}")
        codes.append(
            client.put("/api/v1/accounts/NEW/", {"name": name, "domains": "new.com"}, format="json").status_code
        )
        connection.close()

    threads = [threading.Thread(target=put, args=(f"New {n}",)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(codes)[-1] in (200, 201) and all(code in (200, 201) for code in codes)
    assert Account.objects.filter(account_id="NEW").count() == 1


def test_the_list_api_costs_the_same_queries_for_3_or_30_accounts(api, sam, django_assert_num_queries):
    AccountFactory.create_batch(3, owner=sam)
    api.get("/api/v1/accounts/")
    with django_assert_num_queries(5) as few:  # source token, person token, groups, count, page with owners
        api.get("/api/v1/accounts/")
    AccountFactory.create_batch(27, owner=sam)
    with django_assert_num_queries(len(few.captured_queries)):
        api.get("/api/v1/accounts/")


def test_an_account_id_with_a_slash_is_addressable(api):
    assert api.put("/api/v1/accounts/EMEA/DE/42/", {"name": "Acme GmbH"}, format="json").status_code == 201
    assert api.get("/api/v1/accounts/EMEA/DE/42/").json()["account_id"] == "EMEA/DE/42"
    assert api.get("/api/v1/accounts/EMEA%2FDE%2F42/").json()["name"] == "Acme GmbH"
    assert api.delete("/api/v1/accounts/EMEA/DE/42/").status_code == 204


def test_attributes_are_held_to_the_bounds_of_a_lead(api):
    deep = {"a": {"b": {"c": {"d": {"e": {"f": 1}}}}}}
    big = {f"k{i}": "x" * 100 for i in range(180)}
    answers = [
        api.put("/api/v1/accounts/A-1/", {"name": "Acme", "attributes": attributes}, format="json")
        for attributes in (deep, big, {"industry": "Retail"})
    ]
    assert [a.status_code for a in answers] == [400, 400, 201]
    assert answers[0].json() == {"attributes": ["Nested deeper than 5 levels; flatten it."]}
    assert answers[1].json() == {"attributes": ["At most 16 KiB of further fields."]}
