"""Account reads: the candidates the matcher weighs for a lead, the console's list and page, a lead's match."""

import json

from django.contrib.auth import get_user_model
from django.db import connection
from django.db.models import Q

from routing.accounts import normalize
from routing.accounts.matching import (
    AccountFacts,
    LeadSignals,
    MatchResult,
    lead_signals,
    match_account,
)
from routing.accounts.models import Account, AccountDomain, AccountMatch, AccountNameKey

MAX_CANDIDATES = 300


def _select(where: str, *, lead_index: str = "", join: str = "") -> str:
    """The candidate row of each account `where` selects (`_facts`), after `lead_index` if one is given."""
    account, user = Account._meta.db_table, get_user_model()._meta.db_table
    first = f"{lead_index}, " if lead_index else ""
    return (
        f"SELECT {first}a.id, a.account_id, a.name, a.name_key, a.domains, a.phone_key, a.country, a.territory, "
        f"a.attributes, a.owner_id, u.{get_user_model().USERNAME_FIELD}, a.phone FROM {account} a "
        f"LEFT JOIN {user} u ON u.id = a.owner_id {join}WHERE {where}"
    )


def _placeholders(values) -> str:
    return ", ".join(["%s"] * len(values))


def match_candidates(signals: LeadSignals) -> list[AccountFacts]:
    """The accounts the matcher weighs for a lead: every account sharing a strong key with it (the email's
    domain or a parent of it, the exact name, the phone), and, when none of those decides, the accounts in
    its country whose name may be close (they share a close-name key), at most MAX_CANDIDATES of those."""
    return match_candidates_many([signals])[0]


def match_candidates_many(signals: list[LeadSignals]) -> list[list[AccountFacts]]:
    """`match_candidates` for many leads (a routing batch), in the same order, in two queries in all: the
    strong-key lookups of every lead in one UNION of indexed lookups (an OR across them would scan the table;
    SQL by hand, as the ORM's union costs more than the lookups), then the close-name lookups of the leads
    none of those decide, at most MAX_CANDIDATES per lead, in one query."""
    chains = sorted({domain for s in signals for domain in s.chain})
    names = sorted({s.name_key for s in signals if s.name_key})
    phones = sorted({s.phone_key for s in signals if s.phone_key})
    parts, params = [], []
    if chains:
        domains = AccountDomain._meta.db_table
        parts.append(_select(f"a.id IN (SELECT account_id FROM {domains} WHERE domain IN ({_placeholders(chains)}))"))
        params += chains
    if names:
        parts.append(_select(f"a.name_key IN ({_placeholders(names)}) AND a.name_key <> ''"))
        params += names
    if phones:
        parts.append(_select(f"a.phone_key IN ({_placeholders(phones)}) AND a.phone_key <> ''"))
        params += phones
    strong: list[AccountFacts] = []
    with connection.cursor() as cursor:
        if parts:
            cursor.execute(" UNION ".join(parts), params)
            strong = [_facts(row) for row in cursor.fetchall()]
        found: list[dict[int, AccountFacts]] = []
        for s in signals:
            chain = set(s.chain)
            found.append(
                {
                    f.pk: f
                    for f in strong
                    if chain & set(f.domains)
                    or (s.name_key and f.name_key == s.name_key)
                    or (s.phone_key and f.phone_key == s.phone_key)
                }
            )
        wanted = [
            (n, key, s.country)
            for n, (s, facts) in enumerate(zip(signals, found, strict=True))
            if s.name_key and s.country and not _decided(s, facts.values())
            for key in normalize.close_name_keys(s.name_key)
        ]
        if wanted:
            if connection.vendor == "postgresql":  # three arrays: a batch's thousands of keys, parsed cheaply
                params = [[n for n, _, _ in wanted], [k for _, k, _ in wanted], [c for _, _, c in wanted]]
            else:
                params = [v for row in wanted for v in row]
            cursor.execute(_close_name_query(len(wanted)), [*params, MAX_CANDIDATES])
            for row in cursor.fetchall():
                found[row[0]].setdefault(row[1], _facts(row[1:]))
    return [[facts[pk] for pk in sorted(facts)] for facts in found]


def _close_name_query(rows: int) -> str:
    """(lead's index, account row) for each (lead's index, close-name key, country) given, the first
    MAX_CANDIDATES accounts by id per lead (the parameter after the rows)."""
    keys = AccountNameKey._meta.db_table
    if connection.vendor == "postgresql":
        values = "SELECT * FROM unnest(%s::int[], %s::text[], %s::text[])"
    else:
        values = "VALUES " + ", ".join(["(%s, %s, %s)"] * rows)
    return (
        f"WITH wanted(n, key, country) AS ({values}), "
        f"hits AS (SELECT DISTINCT w.n, k.account_id FROM wanted w "
        f"JOIN {keys} k ON k.key = w.key AND k.country = w.country), "
        "ranked AS (SELECT n, account_id, row_number() OVER (PARTITION BY n ORDER BY account_id) AS nth FROM hits) "
        + _select("r.nth <= %s", lead_index="r.n", join="JOIN ranked r ON r.account_id = a.id ")
    )


def _decided(signals: LeadSignals, facts) -> bool:
    """Whether a strong key already decides (then no close-name candidates are added)."""
    return any(
        set(f.domains) & set(signals.chain) or (signals.name_key and f.name_key == signals.name_key) for f in facts
    )


def _json(value):
    return json.loads(value) if isinstance(value, str | bytes) else value


def _facts(row) -> AccountFacts:
    pk, account_id, name, key, domains, phone_key, country, territory, attributes, owner_id, owner, phone = row
    return AccountFacts(
        pk,
        account_id,
        name,
        key,
        tuple(_json(domains) or ()),
        phone_key,
        country,
        territory,
        _json(attributes),
        owner_id,
        owner,
        phone,
    )


def facts_account(facts: AccountFacts) -> Account:
    """An Account instance from the candidate row (no query; `owner` is fetched if read)."""
    return Account(
        pk=facts.pk,
        account_id=facts.account_id,
        name=facts.name,
        domains=list(facts.domains),
        country=facts.country,
        territory=facts.territory,
        attributes=facts.attributes or {},
        owner_id=facts.owner_id,
        name_key=facts.name_key,
        phone_key=facts.phone_key,
    )


def facts_view(facts: AccountFacts) -> dict:
    """The account as rule conditions read it: `account.id` (the CRM's id), `.name`, `.owner` (username),
    `.territory`, `.country` and each attribute (a fixed field wins over an attribute of the same name)."""
    return {
        **(facts.attributes or {}),
        "id": facts.account_id,
        "name": facts.name,
        "owner": facts.owner,
        "territory": facts.territory or None,
        "country": facts.country or None,
    }


def account_match_for(*, email=None, company=None, phone=None, country=None) -> MatchResult:
    """Match a lead's fields against the accounts as they stand (no writes)."""
    signals = lead_signals(email=email, company=company, phone=phone, country=country)
    return match_account(signals, match_candidates(signals))


def account_matches_for(leads: list[dict]) -> list[MatchResult]:
    """`account_match_for` for many leads' fields at once (a routing batch): two queries in all."""
    signals = [
        lead_signals(**{name: lead.get(name) for name in ("email", "company", "phone", "country")}) for lead in leads
    ]
    return [match_account(s, facts) for s, facts in zip(signals, match_candidates_many(signals), strict=True)]


def account_list(*, search: str = ""):
    """The console's list: by name (any part, accents and case ignored), CRM id or domain (a domain typed with
    www., an address, or in its own letters works too)."""
    accounts = Account.objects.select_related("owner").order_by("name", "id")
    search = search.strip()
    if search:
        domain = normalize.clean_domain(search)
        query = Q(name__icontains=search) | Q(account_id__iexact=search)
        if domain:
            query |= Q(
                pk__in=AccountDomain.objects.filter(domain__in=normalize.host_chain(domain) or [domain]).values(
                    "account_id"
                )
            )
        fragment = search.lower()
        if len(fragment) >= 3 and " " not in fragment and "@" not in fragment:
            # Part of a domain ("homedepot" finds homedepot.com); an address or a full domain is matched above.
            query |= Q(pk__in=AccountDomain.objects.filter(domain__contains=fragment).values("account_id"))
        key = normalize.name_key(search)
        if key:
            query |= Q(name_key__contains=key)  # folded: "societe" finds Société Générale
        accounts = accounts.filter(query)
    return accounts


def account_leads(account: Account, *, limit: int = 100):
    """The account's leads, newest first, with how each was routed."""
    return (
        AccountMatch.objects.filter(account=account)
        .select_related("lead__origin", "lead__queue", "lead__assignee", "lead__rule")
        .order_by("-matched_at", "-lead_id")[:limit]
    )
