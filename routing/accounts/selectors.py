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
from routing.accounts.models import Account, AccountDomain, AccountMatch

MAX_CANDIDATES = 300


def _select(where: str) -> str:
    account, user = Account._meta.db_table, get_user_model()._meta.db_table
    return (
        f"SELECT a.id, a.account_id, a.name, a.name_key, a.domains, a.phone_key, a.country, a.territory, "
        f"a.attributes, a.owner_id, u.{get_user_model().USERNAME_FIELD} FROM {account} a "
        f"LEFT JOIN {user} u ON u.id = a.owner_id WHERE {where}"
    )


def _placeholders(values) -> str:
    return ", ".join(["%s"] * len(values))


def match_candidates(signals: LeadSignals) -> list[AccountFacts]:
    """The accounts the matcher weighs for a lead: every account sharing a strong key with it (the email's
    domain or a parent of it, the exact name, the phone), in one query of indexed lookups joined by UNION
    (an OR across them would scan the table; SQL by hand, as the ORM's union costs more than the lookups).
    Only when none of those can decide by domain or exact name, a second query adds accounts in the lead's
    country whose name starts alike (close-name candidates, which need the country to agree), at most
    MAX_CANDIDATES."""
    parts, params = [], []
    if signals.chain:
        domains = AccountDomain._meta.db_table
        parts.append(
            _select(f"a.id IN (SELECT account_id FROM {domains} WHERE domain IN ({_placeholders(signals.chain)}))")
        )
        params += signals.chain
    if signals.name_key:
        parts.append(_select("a.name_key = %s AND a.name_key <> ''"))
        params.append(signals.name_key)
    if signals.phone_key:
        parts.append(_select("a.phone_key = %s AND a.phone_key <> ''"))
        params.append(signals.phone_key)
    facts: dict[int, AccountFacts] = {}
    with connection.cursor() as cursor:
        if parts:
            cursor.execute(" UNION ".join(parts), params)
            facts = {row[0]: _facts(row) for row in cursor.fetchall()}
        if not _decided(signals, facts.values()) and signals.name_key and signals.country:
            where = "a.name_token = %s AND a.country = %s AND a.name_token <> '' ORDER BY a.id LIMIT %s"
            cursor.execute(_select(where), [normalize.name_token(signals.name_key), signals.country, MAX_CANDIDATES])
            for row in cursor.fetchall():
                facts.setdefault(row[0], _facts(row))
    return [facts[pk] for pk in sorted(facts)]


def match_candidates_many(signals: list[LeadSignals]) -> list[list[AccountFacts]]:
    """`match_candidates` for a routing batch, in the same order: the strong-key lookups of every lead in one
    UNION query, then, for the leads none of those decide, the close-name lookups of all of them in one query
    (at most MAX_CANDIDATES per name start and country, as one lead's query would take)."""
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
        close = {
            (normalize.name_token(s.name_key), s.country)
            for s, facts in zip(signals, found, strict=True)
            if s.name_key and s.country and not _decided(s, facts.values())
        }
        close.discard(("", ""))
        close = {pair for pair in close if pair[0]}
        by_start: dict[tuple[str, str], list[AccountFacts]] = {}
        if close:
            pairs = ", ".join(["(%s, %s)"] * len(close))
            inner = _select(f"(a.name_token, a.country) IN (VALUES {pairs}) AND a.name_token <> ''").replace(
                "SELECT a.id,",
                "SELECT row_number() OVER (PARTITION BY a.name_token, a.country ORDER BY a.id) AS nth, a.id,",
                1,
            )
            cursor.execute(
                f"SELECT * FROM ({inner}) AS ranked WHERE nth <= %s",
                [value for pair in sorted(close) for value in pair] + [MAX_CANDIDATES],
            )
            for row in cursor.fetchall():
                facts = _facts(row[1:])
                by_start.setdefault((normalize.name_token(facts.name_key), facts.country), []).append(facts)
    result = []
    for s, facts in zip(signals, found, strict=True):
        if s.name_key and s.country and not _decided(s, facts.values()):
            for extra in by_start.get((normalize.name_token(s.name_key), s.country), ()):
                facts.setdefault(extra.pk, extra)
        result.append([facts[pk] for pk in sorted(facts)])
    return result


def _decided(signals: LeadSignals, facts) -> bool:
    """Whether a strong key already decides (then no close-name candidates are added)."""
    return any(
        set(f.domains) & set(signals.chain) or (signals.name_key and f.name_key == signals.name_key) for f in facts
    )


def _json(value):
    return json.loads(value) if isinstance(value, str | bytes) else value


def _facts(row) -> AccountFacts:
    pk, account_id, name, key, domains, phone, country, territory, attributes, owner_id, owner = row
    return AccountFacts(
        pk,
        account_id,
        name,
        key,
        tuple(_json(domains) or ()),
        phone,
        country,
        territory,
        _json(attributes),
        owner_id,
        owner,
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
    """The console's list: by name, CRM id or domain (a domain typed with www. or an address works too)."""
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
        key = normalize.name_key(search)
        if key:
            query |= Q(name_key=key)
        accounts = accounts.filter(query)
    return accounts


def account_leads(account: Account, *, limit: int = 100):
    """The account's leads, newest first, with how each was routed."""
    return (
        AccountMatch.objects.filter(account=account)
        .select_related("lead__origin", "lead__queue", "lead__assignee", "lead__rule")
        .order_by("-matched_at", "-lead_id")[:limit]
    )
