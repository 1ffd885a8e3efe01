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


def test_account_page_shows_owner_and_attributes(client, ops_person, sam):
    account = AccountFactory(name="Acme Corporation", owner=sam, attributes={"tier": "gold"})
    client.force_login(ops_person)
    page = client.get(f"/console/accounts/{account.pk}/").content.decode()
    assert "Sam Seller" in page and "gold" in page and "No leads matched" in page


def test_outsiders_get_403(client, outsider):
    client.force_login(outsider)
    assert client.get("/console/accounts/").status_code == 403
