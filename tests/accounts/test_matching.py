"""The matcher's rules, case by case, through the real candidate query (accounts saved with the service)."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from routing.accounts.matching import MatchMethod, close_names
from routing.accounts.normalize import close_name_keys, email_key, host_chain, name_key, phone_key
from routing.accounts.selectors import account_match_for
from tests.factories import AccountFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def acme():
    return AccountFactory(
        account_id="A-1", name="Acme Corporation", domains=["acme.com"], phone="+1 415 555 0100", country="US"
    )


def match(**lead):
    return account_match_for(**lead)


@pytest.mark.parametrize(
    "name, key",
    [
        ("ACME, Inc.", "acme"),
        ("The Acme Company", "acme"),
        ("Acme GmbH & Co. KG", "acme"),
        ("Société Générale S.A.", "societe generale"),
        ("Sony K.K.", "sony"),
        ("K.K. Sony", "sony"),
        ("Ørsted A/S", "orsted"),
        ("O'Brien plc", "obrien"),
        ("Acme Coporation", "acme"),
        ("Acme Dental", "acme dental"),
        ("Inc.", ""),
        ("The Company", ""),
        ("N/A", ""),
    ],
)
def test_names_normalise(name, key):
    assert name_key(name) == key


def test_keys_for_domains_phones_and_emails():
    assert host_chain("eu.mail.acme.co.uk") == ("eu.mail.acme.co.uk", "mail.acme.co.uk", "acme.co.uk")
    assert host_chain("co.uk") == ()
    assert "acme.com" not in host_chain("acme.com.evil.io")
    assert phone_key("+44 20 7946 0000") == phone_key("020 7946 0000")
    assert email_key("Jo.Doe+news@GoogleMail.com") == email_key("jodoe@gmail.com")
    assert close_names("northwnd traders", "northwind traders")
    assert not close_names("acme dental", "acme metal")
    assert not close_names("acme dental", "acme")
    assert not close_names("summit wealth", "summit health")


def test_email_domain_matches_with_subdomains_and_case(acme):
    for email in ("jo@acme.com", "JO@ACME.COM", "jo@eu.mail.acme.com"):
        result = match(email=email)
        assert result.account.account_id == "A-1", email
        assert result.method == MatchMethod.DOMAIN


def test_multi_part_public_suffix():
    AccountFactory(account_id="UK", name="Initech Ltd", domains=["initech.co.uk"])
    AccountFactory(account_id="OTHER", name="Other Ltd", domains=["other.co.uk"])
    assert match(email="peter@mail.initech.co.uk").account.account_id == "UK"
    assert match(email="peter@co.uk").account is None


@pytest.mark.parametrize(
    "email", ["jo@acme.com.evil.io", "jo@notacme.com", "jo@acme.co", "jo@acme-corp.net", "jo@acmecorp.com"]
)
def test_lookalike_domains_never_match_even_with_the_name(acme, email):
    result = match(email=email, company="Acme Corporation", country="US")
    assert result.account is None
    assert result.method == MatchMethod.NONE


def test_free_mail_never_matches_by_domain_but_the_name_can():
    AccountFactory(account_id="G", name="Gmail Fans Inc", domains=["gmail.com", "gmailfans.com"])
    assert match(email="jo@gmail.com").account is None
    assert match(email="jo@gmail.com", company="Gmail Fans").account.account_id == "G"


def test_lookalike_names_do_not_match(acme):
    for company in ("Acme Dental", "Acme Plumbing LLC", "Acme Holdings"):
        result = match(email="jo@gmail.com", company=company, country="US")
        assert result.account is None, company


def test_exact_name_matches_from_free_mail(acme):
    result = match(email="jo@gmail.com", company="ACME, Inc.")
    assert result.account.account_id == "A-1"
    assert result.method == MatchMethod.NAME


def test_close_name_needs_a_supporting_signal(acme):
    assert match(email="jo@gmail.com", company="Acme Corp Intl").account is None
    AccountFactory(account_id="N", name="Northwind Traders", domains=["northwind.com"], country="US")
    assert match(email="jo@gmail.com", company="Northwnd Traders").account is None
    result = match(email="jo@gmail.com", company="Northwnd Traders", country="US")
    assert result.account.account_id == "N"
    assert result.method == MatchMethod.CLOSE_NAME
    # ...but not when the lead writes from another company's domain.
    assert match(email="jo@northwnd.io", company="Northwnd Traders", country="US").account is None


def test_accounts_that_share_only_a_lookup_key_are_not_listed_as_candidates():
    AccountFactory(account_id="P", name="Acme Plumbing", domains=["acmeplumbing.com"], country="US")
    AccountFactory(account_id="C", name="Acme Corporation", domains=["acme.com"], country="US")
    result = match(email="jo@gmail.com", company="Acme Plumbng", country="US")
    assert result.account.account_id == "P"
    assert [c.account.account_id for c in result.candidates] == ["P"]


def test_a_phone_of_another_country_ending_the_same_way_matches_nothing():
    AccountFactory(
        account_id="D", name="Acme Dental", domains=["acmedental.com"], phone="+1 212 555 0000", country="US"
    )
    assert match(phone="+49 30 2555 0000", country="DE").account is None
    assert match(phone="+1 212 555 0000", country="US").account.account_id == "D"
    assert match(phone="+1 212 555 0000").account.account_id == "D"  # no country given: the number decides


def test_a_number_with_another_calling_code_matches_nothing_even_without_a_country():
    AccountFactory(account_id="N1", name="Zyxwv Analytics GmbH", domains=[], phone="+49 40 5555 1212", country="DE")
    AccountFactory(account_id="N2", name="Initech Ltd", domains=[], phone="020 7946 0001", country="GB")
    assert match(phone="+1 555 5555 1212").account is None
    assert match(phone="+1 202 7946 0001").account is None  # the GB account wrote its number nationally
    assert match(phone="0049 40 5555 1212").account.account_id == "N1"
    assert match(phone="+44 20 7946 0001").account.account_id == "N2"
    assert match(phone="040 5555 1212", country="DE").account.account_id == "N1"
    assert match(phone="40 5555 1212").account.account_id == "N1"  # a bare number says no code: the digits decide


def test_the_same_name_and_phone_from_another_companys_domain_is_refused():
    AccountFactory(account_id="U", name="Umbrella Corp", domains=["umbrella.com"], phone="+1 555 010 2030")
    assert match(email="jo@other.com", company="Umbrella Corp", phone="+1 555 010 2030").account is None


def test_a_real_tie_is_ambiguous_and_names_the_candidates():
    AccountFactory(account_id="US", name="Delta Freight Inc.", domains=["deltafreight.com"], country="US")
    AccountFactory(account_id="DE", name="Delta Freight GmbH", domains=["deltafreight.de"], country="DE")
    tie = match(email="d@gmail.com", company="Delta Freight")
    assert tie.account is None
    assert tie.method == MatchMethod.AMBIGUOUS
    assert tie.why.startswith("ambiguous account")
    assert {c.account.account_id for c in tie.candidates} == {"US", "DE"}
    assert match(email="d@gmail.com", company="Delta Freight", country="DE").account.account_id == "DE"


def test_the_most_specific_domain_wins():
    AccountFactory(account_id="H", name="Apex Holdings", domains=["apex-group.com"])
    AccountFactory(account_id="L", name="Apex Logistics", domains=["apex-group.com", "logistics.apex-group.com"])
    assert match(email="ops@logistics.apex-group.com").account.account_id == "L"
    assert match(email="cfo@apex-group.com", company="Apex Holdings").account.account_id == "H"
    assert match(email="ops@apex-group.com").method == MatchMethod.AMBIGUOUS


def test_a_shared_domain_settled_by_the_company_name_says_so():
    AccountFactory(account_id="T1", name="Twin One", domains=["twins.com"])
    AccountFactory(account_id="T2", name="Twin Two", domains=["twins.com"])
    result = match(email="jo@twins.com", company="Twin Two")
    assert result.account.account_id == "T2"
    assert result.why == (
        "Twin Two: the email's domain twins.com is its domain; chosen over Twin One (T1), which shares that "
        "domain, by the exact company name"
    )


def test_generic_names_match_nothing():
    AccountFactory(account_id="I", name="Inc Magazine", domains=["inc.com"])
    for company in ("Inc.", "LLC", "N/A", "Self-employed"):
        assert match(email="jo@gmail.com", company=company, country="GB").account is None, company
    assert match(email="jo@gmail.com", company="Inc.").why == (
        "gmail.com is a free-mail domain and its company 'Inc.' is no name to match; "
        "free-mail domains never match by domain"
    )


def test_phone_alone_matches_only_when_nothing_points_elsewhere(acme):
    assert match(email="jo@gmail.com", phone="(415) 555-0100").method == MatchMethod.PHONE
    assert match(email="jo@gmail.com", phone="(415) 555-0100", company="Globex").account is None
    assert match(email="jo@globex.com", phone="(415) 555-0100").account is None


def test_matching_is_deterministic_whatever_the_order(acme):
    AccountFactory(account_id="A-2", name="Acme Corporation", domains=["acme.org"], country="US")
    answers = {match(email="jo@gmail.com", company="Acme").why for _ in range(5)}
    assert len(answers) == 1


@pytest.mark.parametrize(
    "account, lead",
    [
        ("Stark Industries", "Strak Industries"),  # neighbours swapped in the first word
        ("Globex Holdings", "Glomex Holdings"),  # a consonant typed wrong
        ("Initech Systems", "Inittech Systems"),  # a letter too many
        ("Megawidgets", "Mega Widgets"),  # a space the account's name does not have
        ("Vandelay Industries", "Vandelay Industires"),  # a typo in a later word
        ("Consolidated Widgets", "Consolidtaed Widgets"),  # a word of 9+ letters: two typos allowed
    ],
)
def test_a_close_name_with_the_country_is_found_whatever_the_typo(account, lead):
    found = AccountFactory(name=account, domains=[], country="DE")
    AccountFactory(name="Strand Holdings", domains=[], country="DE")  # the same first letters, not close
    result = match(company=lead, country="DE", email="someone@gmail.com")
    assert (result.account.pk, result.method) == (found.pk, MatchMethod.CLOSE_NAME)
    assert match(company=lead, country="FR", email="someone@gmail.com").account is None  # no support, no match


@given(word=st.text(alphabet="abcdefghijklmnopqrstuvwxyz", min_size=5, max_size=14), data=st.data())
def test_every_close_name_shares_a_lookup_key(word, data):
    """What the close-name lookup finds is at least everything `close_names` accepts: one or two edits."""
    edited = word
    for _ in range(data.draw(st.integers(1, 2))):
        at = data.draw(st.integers(1, len(edited) - 1))
        kind = data.draw(st.sampled_from(["swap", "replace", "insert", "delete"]))
        letter = data.draw(st.sampled_from("abcdefghijklmnopqrstuvwxyz"))
        if kind == "swap" and at < len(edited) - 1:
            edited = edited[:at] + edited[at + 1] + edited[at] + edited[at + 2 :]
        elif kind == "replace":
            edited = edited[:at] + letter + edited[at + 1 :]
        elif kind == "insert":
            edited = edited[:at] + letter + edited[at:]
        elif len(edited) > 5:
            edited = edited[:at] + edited[at + 1 :]
    lead, account = f"{edited} systems", f"{word} systems"
    if close_names(lead, account):
        assert set(close_name_keys(lead)) & set(close_name_keys(account))


def test_an_exact_name_in_another_country_is_not_the_account():
    AccountFactory(account_id="M", name="Müller GmbH", domains=["mueller.de"], country="DE")
    refused = match(email="jo@gmail.com", company="Müller", country="AT")
    assert refused.account is None
    assert [c["note"] for c in refused.as_dict()["candidates"]] == [
        "same name, but the lead is in AT and the account in DE"
    ]
    assert match(email="jo@gmail.com", company="Müller", country="DE").account.account_id == "M"
    assert match(email="jo@gmail.com", company="Müller").account.account_id == "M"  # no country: the name decides
