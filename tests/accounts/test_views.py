"""Console screens: the accounts list with search, and an account's page with its owner and leads."""

import pytest

from tests.factories import AccountFactory

pytestmark = pytest.mark.django_db


def test_list_and_search(client, ops_person, sam):
    AccountFactory(account_id="A-1", name="Acme Corporation", domains=["acme.com"], owner=sam)
    AccountFactory(account_id="G-1", name="Globex GmbH", domains=["globex.de"])
    client.force_login(ops_person)
    page = client.get("/console/accounts/").content.decode()
    assert "Acme Corporation" in page and "Globex GmbH" in page and "Sam Seller" in page
    found = client.get("/console/accounts/", {"q": "jo@acme.com"}).content.decode()
    assert "Acme Corporation" in found and "Globex GmbH" not in found


def test_search_ignores_accents_and_finds_part_of_a_name_and_domains_show_in_their_own_letters(client, ops_person):
    AccountFactory(account_id="S-1", name="Société Générale", domains=["societegenerale.fr"])
    AccountFactory(account_id="M-1", name="Bäckerei München GmbH", domains=["münchen-backt.de"])
    client.force_login(ops_person)

    def found(q):
        return [
            row
            for row in ("Société Générale", "Bäckerei München")
            if row in client.get("/console/accounts/", {"q": q}).content.decode()
        ]

    assert found("societe") == ["Société Générale"]
    assert found("GENERALE") == ["Société Générale"]
    assert found("backerei munchen") == ["Bäckerei München"]
    assert found("münchen-backt.de") == ["Bäckerei München"]
    assert found("societegen") == ["Société Générale"]  # part of a domain
    page = client.get("/console/accounts/").content.decode()
    assert "münchen-backt.de (xn--mnchen-backt-dlb.de)" in page


def test_account_page_shows_owner_and_attributes(client, ops_person, sam):
    account = AccountFactory(
        name="Acme Corporation", owner=sam, attributes={"tier": "gold", "sites": ["Boston", "Köln"], "seats": 1200}
    )
    client.force_login(ops_person)
    page = client.get(f"/console/accounts/{account.pk}/").content.decode()
    assert "Sam Seller" in page and "No leads matched" in page
    # One per line, lists as JSON rather than Python's repr.
    assert "<dt>tier</dt><dd>gold</dd>" in page and "<dt>seats</dt><dd>1200</dd>" in page
    assert "<dt>sites</dt><dd>[&quot;Boston&quot;, &quot;Köln&quot;]</dd>" in page


def test_outsiders_get_403(client, outsider):
    client.force_login(outsider)
    assert client.get("/console/accounts/").status_code == 403


def test_an_exception_item_shows_the_account_and_the_same_person(client, ops_person, rule_owner):
    from exceptions.models import ExceptionItem
    from routing.services import lead_route
    from tests.factories import LeadFactory, QueueFactory, RuleFactory

    QueueFactory(name="Triage")
    RuleFactory(owner=rule_owner, condition={"field": "country", "op": "eq", "value": "FR"})
    AccountFactory(account_id="A-1", name="Acme Corporation", domains=["acme.com"])
    first = LeadFactory(email="jo@acme.com", country="GB", lead_id="first")
    second = LeadFactory(email="jo@acme.com", country="GB", lead_id="second", status="assigned")
    lead_route(lead_id=first.pk)
    from routing.accounts.identity import lead_link_identity

    lead_link_identity(lead=second, at=second.received_at)
    client.force_login(ops_person)
    page = client.get(f"/console/items/{ExceptionItem.objects.get().pk}/").content.decode()
    assert "Acme Corporation" in page and "Same person" in page and ">second<" in page


def test_seed_demo_loads_the_demo_accounts():
    import io

    from django.core.management import call_command

    from routing.accounts.selectors import account_match_for

    call_command("seed_demo", stdout=io.StringIO())
    assert account_match_for(email="ana.ito@acme.example").account.account_id == "DEMO-ACME"


def test_hostile_values_are_escaped(client, ops_person):
    account = AccountFactory(name="<script>alert(1)</script> Ltd", territory="<b>x</b>", attributes={"k": "<i>"})
    client.force_login(ops_person)
    for url in ("/console/accounts/", f"/console/accounts/{account.pk}/"):
        page = client.get(url).content.decode()
        assert "<script>alert(1)" not in page and "&lt;script&gt;alert(1)" in page
    assert "<dd>&lt;i&gt;</dd>" in page


def test_the_list_costs_the_same_queries_for_3_or_30_accounts(client, ops_person, sam, django_assert_num_queries):
    client.force_login(ops_person)
    AccountFactory.create_batch(3, owner=sam)
    client.get("/console/accounts/")
    # session, user, groups, saved views (nav), count, page with owners, queues without owner (staff banner)
    with django_assert_num_queries(7) as few:
        client.get("/console/accounts/")
    AccountFactory.create_batch(27, owner=sam)
    with django_assert_num_queries(len(few.captured_queries)):
        client.get("/console/accounts/")
