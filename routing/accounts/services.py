"""Account writes: upsert and delete one account (API), import a CRM file (all or nothing)."""

import csv
import io
import json
import re
from collections import defaultdict
from dataclasses import dataclass, field

from django.contrib.auth import get_user_model
from django.db import transaction
from django.db.models import Count
from django.utils import timezone
from iso3166 import countries_by_alpha2

from audit.models import AuditAction
from audit.services import audit_record
from routing.accounts import normalize
from routing.accounts.models import Account, AccountDomain, AccountNameKey
from routing.jsonbounds import attribute_shape_problem
from routing.text import refused_character

REQUIRED_COLUMNS = ("account_id", "name", "domains", "phone", "country", "owner")
KNOWN_COLUMNS = (*REQUIRED_COLUMNS, "territory")
MAX_IMPORT_BYTES = 100 * 1024 * 1024
MAX_DOMAINS = 100  # a CRM account with more is a holding list, not a company
MAX_ATTRIBUTES_BYTES = 16 * 1024
_NUMBER = re.compile(r"^-?(0|[1-9]\d{0,14})(\.\d+)?$")
_PHONE_CHARS = set("0123456789+-(). ")


class AccountError(ValueError):
    """An account that cannot be saved: field -> messages."""

    def __init__(self, errors: dict[str, list[str]]):
        self.errors = errors
        super().__init__("; ".join(f"{key}: {' '.join(messages)}" for key, messages in errors.items()))


class AccountsFileError(ValueError):
    """Every problem of an accounts file, each naming its line; nothing was written."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("\n".join(problems))


@dataclass
class CleanAccount:
    account_id: str
    name: str
    domains: list[str]
    phone: str
    country: str
    owner_id: int | None
    territory: str
    attributes: dict
    notes: list[str] = field(default_factory=list)  # what was dropped on the way (a free-mail domain)


def _owners_lookup(values) -> dict[str, int]:
    """username or email, lower-cased -> user id, for the people named (a username that differs only in case
    from another's is read exactly)."""
    values = [str(v) for v in values if v]  # a JSON body may name the owner with a number: read as text
    if not any(v.strip() for v in values):
        return {}
    found: dict[str, int] = {}
    by_email: dict[str, set[int]] = defaultdict(set)
    for pk, username, email in get_user_model().objects.order_by("pk").values_list("pk", "username", "email"):
        found.setdefault(username.lower(), pk)
        if email:
            by_email[email.lower()].add(pk)
    for email, pks in by_email.items():
        # An address several people share names nobody: the oldest of them was picked before.
        found.setdefault(email, next(iter(pks)) if len(pks) == 1 else SHARED_ADDRESS)
    return found


SHARED_ADDRESS = 0  # no user has this id


def split_domains(value) -> list[str]:
    if value is None:
        return []
    if isinstance(value, list | tuple):
        return [str(v) for v in value if str(v).strip()]
    return [part for part in re.split(r"[;,\s]+", str(value)) if part.strip()]


def clean_account(data: dict, owners: dict[str, int]) -> tuple[CleanAccount | None, dict[str, list[str]]]:
    """Validate one account's fields (from the API or a file row); (clean, {}) or (None, errors)."""
    errors: dict[str, list[str]] = {}
    account_id = str(data.get("account_id") or "").strip()
    if not account_id:
        errors.setdefault("account_id", []).append("Required: the CRM's id of the account.")
    elif len(account_id) > 128:
        errors.setdefault("account_id", []).append("At most 128 characters.")
    name = str(data.get("name") or "").strip()
    if not name:
        errors.setdefault("name", []).append("Required.")
    elif len(name) > 300:
        errors.setdefault("name", []).append("At most 300 characters.")
    elif refused_character(name):
        errors.setdefault("name", []).append(refused_character(name))
    domains, notes = [], []
    given = split_domains(data.get("domains"))
    if len(given) > MAX_DOMAINS:
        errors.setdefault("domains", []).append(f"{len(given)} domains; at most {MAX_DOMAINS} per account.")
        given = []
    for raw in given:
        host = normalize.clean_domain(raw)
        if host is None:
            errors.setdefault("domains", []).append(f"{raw!r} is not a domain name (e.g. acme.com).")
        elif normalize.registrable(host) is None:
            errors.setdefault("domains", []).append(f"{raw!r} is a public suffix, not a company's domain.")
        elif normalize.is_free_mail(host):
            notes.append(f"{host} is a free-mail domain: kept off the account, it never matches")
        elif host not in domains:
            domains.append(host)
    phone = str(data.get("phone") or "").strip()
    if phone and (len(phone) > 32 or not set(phone) <= _PHONE_CHARS or sum(c.isdigit() for c in phone) < 4):
        errors.setdefault("phone", []).append("Digits, spaces and + - ( ) . only, at least 4 digits, at most 32.")
    country = str(data.get("country") or "").strip().upper()
    if country and country not in countries_by_alpha2:
        errors.setdefault("country", []).append(f"{country!r} is not an ISO 3166-1 alpha-2 code (e.g. US, DE).")
    owner_name = str(data.get("owner") or "").strip()
    owner_id = owners.get(owner_name.lower()) if owner_name else None
    if owner_name and owner_id is None:
        errors.setdefault("owner", []).append(f"No user {owner_name!r} (give a username or an email address).")
    elif owner_id == SHARED_ADDRESS:
        errors.setdefault("owner", []).append(f"Several people have the address {owner_name!r}; give a username.")
    territory = str(data.get("territory") or "").strip()
    if len(territory) > 200:
        errors.setdefault("territory", []).append("At most 200 characters.")
    attributes = data.get("attributes") or {}
    if not isinstance(attributes, dict):
        errors.setdefault("attributes", []).append("Expected an object of further fields.")
    elif problem := attribute_shape_problem(attributes):
        errors.setdefault("attributes", []).append(problem)
    elif len(json.dumps(attributes, default=str)) > MAX_ATTRIBUTES_BYTES:
        errors.setdefault("attributes", []).append(f"At most {MAX_ATTRIBUTES_BYTES // 1024} KiB of further fields.")
    if errors:
        return None, errors
    return CleanAccount(account_id, name, domains, phone, country, owner_id, territory, attributes, notes), {}


def _fill(account: Account, clean: CleanAccount) -> Account:
    account.name, account.domains, account.phone = clean.name, clean.domains, clean.phone
    account.country, account.owner_id, account.territory = clean.country, clean.owner_id, clean.territory
    account.attributes = clean.attributes
    account.name_key = normalize.name_key(clean.name)[:300]
    account.phone_key = normalize.phone_key(clean.phone)
    return account


def _domain_rows(account: Account) -> list[AccountDomain]:
    return [AccountDomain(account=account, domain=domain) for domain in account.domains]


def _name_key_rows(account: Account) -> list[AccountNameKey]:
    if not account.country:
        return []  # a close name needs the country (or the phone, which the phone lookup finds)
    return [
        AccountNameKey(account=account, key=key, country=account.country)
        for key in normalize.close_name_keys(account.name_key)
    ]


def account_errors(*, account_id: str, data: dict) -> dict[str, list[str]]:
    """What is wrong with these fields, field by field (nothing written): for an answer that names every
    problem at once, with the ones a request's shape check found."""
    return clean_account({**data, "account_id": account_id}, _owners_lookup([data.get("owner") or ""]))[1]


def shared_domain_notes(domains: list[str], *, account_id: str) -> list[str]:
    """A domain another account already has makes every lead from it ambiguous between the two: say so."""
    shared = (
        AccountDomain.objects.filter(domain__in=domains)
        .exclude(account__account_id=account_id)
        .values_list("domain", "account__account_id", "account__name")
        .order_by("domain", "account__account_id")
    )
    return [f"{domain} is also a domain of {name} ({other}): {AMBIGUOUS_DOMAIN}" for domain, other, name in shared]


AMBIGUOUS_DOMAIN = "leads from it are ambiguous unless the company name or phone tells the accounts apart"
MAX_SHARED_DOMAIN_NOTES = 50


def _shared_domain_notes(domains: set[str]) -> list[str]:
    """Those of `domains` that more than one account now has, one note each (at most 50, then a count)."""
    shared = AccountDomain.objects.values("domain").annotate(n=Count("id")).filter(n__gt=1).values_list("domain")
    hits = sorted({domain for (domain,) in shared} & domains)
    holders = defaultdict(list)
    listed = AccountDomain.objects.filter(domain__in=hits[:MAX_SHARED_DOMAIN_NOTES]).order_by("account__account_id")
    for domain, account_id in listed.values_list("domain", "account__account_id"):
        holders[domain].append(account_id)
    notes = [f"{d} is a domain of {', '.join(holders[d])}: {AMBIGUOUS_DOMAIN}" for d in hits[:MAX_SHARED_DOMAIN_NOTES]]
    if len(hits) > MAX_SHARED_DOMAIN_NOTES:
        notes.append(f"… and {len(hits) - MAX_SHARED_DOMAIN_NOTES} more domains that several accounts have")
    return notes


def account_upsert(*, account_id: str, data: dict, by=None) -> tuple[Account, bool, list[str]]:
    """Create or replace the account with this CRM id (fields not given are emptied, as a PUT does).
    Raises AccountError naming every bad field. Returns (account, created, notes): what was kept off the
    account (a free-mail domain) and what will not match as the caller may expect (a shared domain)."""
    clean, errors = clean_account({**data, "account_id": account_id}, _owners_lookup([data.get("owner") or ""]))
    if errors:
        raise AccountError(errors)
    notes = clean.notes + shared_domain_notes(clean.domains, account_id=clean.account_id)
    with transaction.atomic():
        # Claim the id first, so two PUTs of a new account at once do not collide on the unique id: one
        # inserts, the other waits for its lock, then updates.
        created = not Account.objects.filter(account_id=clean.account_id).exists()
        if created:
            Account.objects.bulk_create([Account(account_id=clean.account_id, name=clean.name)], ignore_conflicts=True)
        account = Account.objects.select_for_update().get(account_id=clean.account_id)
        account = _fill(account, clean)
        account.save()
        account.domain_rows.all().delete()
        AccountDomain.objects.bulk_create(_domain_rows(account))
        account.name_keys.all().delete()
        AccountNameKey.objects.bulk_create(_name_key_rows(account))
        audit_record(
            action=AuditAction.ACCOUNT_SAVED,
            actor=by,
            outcome="created" if created else "updated",
            data={"account_id": account.account_id, "name": account.name, "notes": notes},
        )
    return account, created, notes


def account_delete(*, account_id: str, by=None) -> bool:
    """Delete the account; its past matches keep what routing saw (AccountMatch.account_view). False when
    there was no such account."""
    with transaction.atomic():
        account = Account.objects.filter(account_id=account_id).first()
        if account is None:
            return False
        name = account.name
        account.delete()
        audit_record(
            action=AuditAction.ACCOUNT_DELETED,
            actor=by,
            outcome="deleted",
            data={"account_id": account_id, "name": name},
        )
    return True


@dataclass
class ImportSummary:
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    notes: list[str] = field(default_factory=list)


def read_accounts_csv(raw: bytes) -> tuple[list[tuple[int, dict]], list[str]]:
    """The file's rows as (line number, {column: value}), and the lines that could not be read; UTF-8 with or
    without a byte-order mark. Header names in any case; `account_id,name,domains,phone,country,owner`
    required, `territory` optional, any other column an attribute. Raises AccountsFileError when the file as
    a whole cannot be read (encoding, header)."""
    if len(raw) > MAX_IMPORT_BYTES:
        raise AccountsFileError([f"The file is larger than {MAX_IMPORT_BYTES // (1024 * 1024)} MiB."])
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise AccountsFileError([f"line {line}: not UTF-8 (byte {exc.start}); save the file as UTF-8."]) from None
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=_delimiter(text))
    try:
        header = next(reader)
    except StopIteration:
        raise AccountsFileError(["The file is empty: the first line names the columns."]) from None
    except csv.Error as exc:
        raise AccountsFileError([f"line 1: {exc}"]) from None
    columns = [column_key(name) for name in header]
    while columns and not columns[-1] and not header[len(columns) - 1].strip():
        columns.pop()  # the empty columns a spreadsheet leaves at the right
    problems = []
    missing = [c for c in REQUIRED_COLUMNS if c not in columns]
    if missing:
        problems.append(f"line 1: missing column(s) {', '.join(missing)}; the header is {', '.join(columns)}")
    duplicated = sorted({c for c in columns if columns.count(c) > 1})
    if duplicated:
        problems.append(f"line 1: column(s) {', '.join(duplicated)} appear twice")
    if "" in columns:
        problems.append(f"line 1: column {columns.index('') + 1} has no name (letters or digits)")
    if problems:
        raise AccountsFileError(problems)
    ended = reader.line_num
    rows = []
    try:
        for values in reader:
            line, ended = ended + 1, reader.line_num  # a quoted cell may span lines: name the row's first
            if not any(v.strip() for v in values):
                continue  # blank lines are not accounts
            if len(values) > len(columns) and not any(v.strip() for v in values[len(columns) :]):
                values = values[: len(columns)]
            if len(values) != len(columns):
                hint = ""
                if any(value.count("\n") > 1 for value in values):
                    hint = f' (a cell spans lines {line}–{reader.line_num}: is a quote " left open?)'
                problems.append(f"line {line}: {len(values)} fields, the header has {len(columns)}{hint}")
                continue
            rows.append((line, dict(zip(columns, values, strict=True))))
    except csv.Error as exc:
        problems.append(f"line {reader.line_num}: {exc}")
    return rows, problems


def _delimiter(text: str) -> str:
    """Comma, or what the header uses instead when it has no comma: a spreadsheet set to a European locale
    saves `;`, and a copy from one gives tabs."""
    header = text.split("\n", 1)[0]
    if "," not in header:
        for other in (";", "\t"):
            if other in header:
                return other
    return ","


def column_key(name: str) -> str:
    """A header as the key rules read: lower case, anything but letters, digits, `_` and `-` made `_`
    ("Annual Revenue" -> annual_revenue, read as `account.annual_revenue`; a dot would read as nesting)."""
    return re.sub(r"[^a-z0-9_-]+", "_", name.strip().lower()).strip("_")


def _line_number(problem: str) -> int:
    return int(problem.split(":", 1)[0].removeprefix("line "))


def _attribute_value(value: str):
    """CSV text as a rule reads it: plain numbers become numbers (no leading zeros: "02134" stays text)."""
    value = value.strip()
    if _NUMBER.match(value):
        return float(value) if "." in value else int(value)
    return value


def accounts_import(*, raw: bytes, by=None, dry_run: bool = False) -> ImportSummary:
    """Upsert every account of a CRM file by `account_id`, all or nothing: raises AccountsFileError naming every
    bad line, and then writes nothing. Accounts absent from the file are left as they are, and so are the
    territory and attributes of an account when the file has no column for them (an empty cell clears)."""
    rows, problems = read_accounts_csv(raw)
    owners = _owners_lookup([row.get("owner", "") for _, row in rows])
    cleaned, seen = [], {}
    summary = ImportSummary()
    for line, row in rows:
        data = {key: row.get(key) for key in KNOWN_COLUMNS}
        data["attributes"] = {k: _attribute_value(v) for k, v in row.items() if k not in KNOWN_COLUMNS and v.strip()}
        clean, errors = clean_account(data, owners)
        if errors:
            problems += [f"line {line}: {key}: {' '.join(messages)}" for key, messages in errors.items()]
            continue
        if clean.account_id in seen:
            problems.append(
                f"line {line}: account_id {clean.account_id!r} appears again (first on line {seen[clean.account_id]})"
            )
            continue
        seen[clean.account_id] = line
        summary.notes += [f"line {line}: {note}" for note in clean.notes]
        cleaned.append(clean)
    if problems:
        raise AccountsFileError(sorted(problems, key=_line_number))
    with transaction.atomic():
        existing = {}
        ids = [c.account_id for c in cleaned]
        for start in range(0, len(ids), 5000):
            for account in Account.objects.select_for_update().filter(account_id__in=ids[start : start + 5000]):
                existing[account.account_id] = account
        new, changed = [], []
        compared = ("name", "domains", "phone", "country", "owner_id", "territory", "attributes")
        named = set(rows[0][1]) if rows else set()  # the file's columns (every row has them all)
        for clean in cleaned:
            account = existing.get(clean.account_id)
            if account is None:
                new.append(_fill(Account(account_id=clean.account_id), clean))
                continue
            # What the file has no column for stays as it is: a file of some fields updates those fields.
            if "territory" not in named:
                clean.territory = account.territory
            kept = {k: v for k, v in account.attributes.items() if k not in named}
            clean.attributes = {**kept, **clean.attributes}
            before = tuple(getattr(account, f) for f in compared)
            _fill(account, clean)
            if tuple(getattr(account, f) for f in compared) == before:
                summary.unchanged += 1
            else:
                changed.append(account)
        Account.objects.bulk_create(new, batch_size=2000)
        if changed:
            fields = [*compared, "name_key", "phone_key", "updated_at"]
            now = timezone.now()
            for account in changed:
                account.updated_at = now
            Account.objects.bulk_update(changed, fields, batch_size=2000)
            AccountDomain.objects.filter(account__in=changed).delete()
            AccountNameKey.objects.filter(account__in=changed).delete()
        written = (*new, *changed)
        AccountDomain.objects.bulk_create([row for a in written for row in _domain_rows(a)], batch_size=5000)
        AccountNameKey.objects.bulk_create([row for a in written for row in _name_key_rows(a)], batch_size=5000)
        summary.created, summary.updated = len(new), len(changed)
        summary.notes += _shared_domain_notes({domain for clean in cleaned for domain in clean.domains})
        audit_record(
            action=AuditAction.ACCOUNTS_IMPORTED,
            actor=by,
            outcome="dry run" if dry_run else "imported",
            data={"created": summary.created, "updated": summary.updated, "unchanged": summary.unchanged},
        )
        if dry_run:
            transaction.set_rollback(True)
    return summary
