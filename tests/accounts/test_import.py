"""`import_accounts`: upsert by account_id, all or nothing with every bad line named, UTF-8 with or without BOM."""

import io

import pytest
from django.core.management import CommandError, call_command

from audit.models import AuditAction, AuditEvent
from routing.accounts.models import Account, AccountDomain
from routing.accounts.selectors import account_match_for

pytestmark = pytest.mark.django_db

GOOD = (
    "account_id,name,domains,phone,country,owner,territory,Industry,Employees,Zip\n"
    "A-1,Acme Corporation,acme.com;www.acme.co.uk,+1 415 555 0100,us,sam,West,Manufacturing,1200,02134\n"
    'A-2,"Globex, GmbH",https://globex.de/,,DE,sam@ourco.example,,,,\n'
)


def run(tmp_path, text: str, *args, encoding="utf-8"):
    path = tmp_path / "accounts.csv"
    path.write_bytes(text.encode(encoding))
    out, err = io.StringIO(), io.StringIO()
    call_command("import_accounts", str(path), *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def refused(tmp_path, text: str) -> str:
    """What import_accounts says on stderr about a file it refuses."""
    path = tmp_path / "accounts.csv"
    path.write_text(text)
    err = io.StringIO()
    with pytest.raises(CommandError):
        call_command("import_accounts", str(path), stdout=io.StringIO(), stderr=err)
    return err.getvalue()


def test_import_creates_accounts_with_normalised_domains_and_attributes(tmp_path, sam):
    out, _ = run(tmp_path, GOOD)
    assert "2 new, 0 updated" in out
    acme = Account.objects.get(account_id="A-1")
    assert acme.domains == ["acme.com", "acme.co.uk"]
    assert acme.country == "US" and acme.owner == sam and acme.territory == "West"
    assert acme.attributes == {"industry": "Manufacturing", "employees": 1200, "zip": "02134"}
    assert Account.objects.get(account_id="A-2").owner == sam  # by email
    assert set(AccountDomain.objects.values_list("domain", flat=True)) == {"acme.com", "acme.co.uk", "globex.de"}
    assert account_match_for(email="jo@eu.acme.co.uk").account.account_id == "A-1"
    assert AuditEvent.objects.filter(action=AuditAction.ACCOUNTS_IMPORTED).count() == 1


def test_import_accepts_a_byte_order_mark_and_upserts(tmp_path, sam):
    run(tmp_path, GOOD, encoding="utf-8-sig")
    out, _ = run(tmp_path, GOOD.replace("Acme Corporation", "Acme Corp.").replace(";www.acme.co.uk", ""))
    assert "0 new, 1 updated, 1 unchanged" in out
    acme = Account.objects.get(account_id="A-1")
    assert acme.name == "Acme Corp." and acme.domains == ["acme.com"]
    assert account_match_for(email="jo@acme.co.uk").account is None
    assert Account.objects.count() == 2


def test_every_bad_line_is_named_and_nothing_is_written(tmp_path, sam):
    bad = (
        "account_id,name,domains,phone,country,owner\n"
        "A-1,Acme,acme.com,,US,sam\n"
        ",No Id,noid.com,,US,\n"
        "A-3,Bad Domain,co.uk,,US,\n"
        "A-4,Bad Country,bad.com,,XX,\n"
        "A-5,Unknown Owner,owner.com,,US,nobody\n"
        "A-1,Twice,twice.com,,US,\n"
        "A-7,Short,short.com\n"
    )
    with pytest.raises(CommandError, match="6 problem"):
        _, err = run(tmp_path, bad)
    path = tmp_path / "accounts.csv"
    err = io.StringIO()
    with pytest.raises(CommandError):
        call_command("import_accounts", str(path), stdout=io.StringIO(), stderr=err)
    lines = err.getvalue()
    for expected in (
        "line 3: account_id",
        "line 4: domains: 'co.uk' is a public suffix",
        "line 5: country",
        "line 6: owner: No user 'nobody'",
        "line 7: account_id 'A-1' appears again (first on line 2)",
        "line 8: 3 fields, the header has 6",
    ):
        assert expected in lines
    assert Account.objects.count() == 0


def test_missing_columns_and_bad_encoding_are_refused(tmp_path):
    with pytest.raises(CommandError):
        run(tmp_path, "account_id,name\nA-1,Acme\n")
    path = tmp_path / "latin.csv"
    path.write_bytes("account_id,name,domains,phone,country,owner\nA-1,Café,cafe.fr,,FR,\n".encode("latin-1"))
    err = io.StringIO()
    with pytest.raises(CommandError):
        call_command("import_accounts", str(path), stdout=io.StringIO(), stderr=err)
    assert "line 2: not UTF-8" in err.getvalue()


def test_free_mail_domains_are_kept_off_the_account(tmp_path):
    out, _ = run(
        tmp_path, "account_id,name,domains,phone,country,owner\nA-1,Tiny Bakery,gmail.com;tinybakery.com,,GB,\n"
    )
    assert "gmail.com is a free-mail domain" in out
    assert Account.objects.get().domains == ["tinybakery.com"]


def test_a_domain_several_accounts_have_is_named(tmp_path):
    run(tmp_path, "account_id,name,domains,phone,country,owner\nA-1,Acme Corporation,acme.com,,US,\n")
    out, _ = run(
        tmp_path,
        "account_id,name,domains,phone,country,owner\n"
        "A-2,Acme Europe,acme.com;acme.eu,,DE,\nA-3,Acme Asia,acme.asia;acme.eu,,JP,\nA-4,Solo,solo.io,,GB,\n",
    )
    assert "acme.com is a domain of A-1, A-2: leads from it are ambiguous" in out
    assert "acme.eu is a domain of A-2, A-3: leads from it are ambiguous" in out
    assert "solo.io" not in out and Account.objects.count() == 4


def test_dry_run_writes_nothing(tmp_path, sam):
    out, _ = run(tmp_path, GOOD, "--dry-run")
    assert "Would import 2 accounts" in out
    assert Account.objects.count() == 0


def test_a_file_without_a_column_leaves_that_field_as_it_was_and_an_empty_cell_clears(tmp_path, sam):
    run(tmp_path, GOOD)
    out, _ = run(
        tmp_path,
        "account_id,name,domains,phone,country,owner,Industry\nA-1,Acme Corporation,acme.com,,us,sam,\n",
    )
    assert "1 updated" in out
    acme = Account.objects.get(account_id="A-1")
    assert acme.territory == "West"  # no territory column: kept
    assert acme.attributes == {"employees": 1200, "zip": "02134"}  # industry emptied, the others not named: kept


def test_headers_become_keys_a_rule_can_read_and_trailing_empty_columns_are_ignored(tmp_path, sam):
    out, _ = run(
        tmp_path,
        "account_id,name,domains,phone,country,owner,Annual Revenue,Tier.Level,,\n"
        "A-9,Initech,initech.com,,US,sam,5000000,gold,,\n",
    )
    assert "1 new" in out
    assert Account.objects.get(account_id="A-9").attributes == {"annual_revenue": 5000000, "tier_level": "gold"}


def test_a_semicolon_file_from_a_european_spreadsheet_imports(tmp_path, sam):
    out, _ = run(tmp_path, "account_id;name;domains;phone;country;owner\nA-1;Acme, Inc.;acme.com,acme.de;;DE;sam\n")
    assert "1 new" in out
    acme = Account.objects.get(account_id="A-1")
    assert acme.name == "Acme, Inc." and acme.domains == ["acme.com", "acme.de"] and acme.owner == sam


def test_a_bad_row_after_a_cell_spanning_lines_is_named_by_its_first_line(tmp_path):
    text = (
        "account_id,name,domains,phone,country,owner,notes\n"
        'A-1,Acme,acme.com,,US,,"two\nlines"\n'
        "A-2,Globex,globex.com,,XX,,\n"
        'A-3,Initech,initech.com,,US,,"three\nmore\nlines"\n'
        "A-4,Hooli,hooli.com,,YY,,\n"
    )
    err = refused(tmp_path, text)
    assert "line 4: country" in err and "line 8: country" in err


def test_an_account_with_too_many_domains_is_refused(tmp_path):
    domains = ";".join(f"brand{i}.com" for i in range(101))
    err = refused(tmp_path, f"account_id,name,domains,phone,country,owner\nA-1,Holding,{domains},,US,\n")
    assert "line 2: domains: 101 domains; at most 100 per account." in err
    assert not Account.objects.exists()


def test_a_quote_left_open_is_pointed_out(tmp_path):
    text = (
        "account_id,name,domains,phone,country,owner\n"
        'A-1,"Acme,acme.com,,US,\n'
        "A-2,Globex,globex.com,,DE,\n"
        "A-3,Initech,initech.com,,GB,\n"
    )
    err = refused(tmp_path, text)
    assert 'line 2: 2 fields, the header has 6 (a cell spans lines 2–4: is a quote " left open?)' in err
