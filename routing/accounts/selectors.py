"""Account reads: the candidates the matcher weighs for a lead, the console's list and page, a lead's match."""

from django.db.models import Case, Count, IntegerField, Q, Value, When

from routing.accounts import normalize
from routing.accounts.matching import (
    AccountFacts,
    LeadSignals,
    MatchMethod,
    MatchResult,
    lead_signals,
    match_account,
)
from routing.accounts.models import Account, AccountDomain, AccountMatch

MAX_CANDIDATES = 300
FACT_FIELDS = ("pk", "account_id", "name", "name_key", "domains", "phone_key", "country")


def match_candidates(signals: LeadSignals) -> list[AccountFacts]:
    """Every account sharing a strong key with the lead (the email's domain or a parent of it, the exact name,
    the phone), then accounts in the lead's country whose name starts with the same word
    (close-name candidates, which need the country to agree). One query; strong keys sort first, so the cap
    only ever drops close-name candidates."""
    strong = Q()
    if signals.chain:
        strong |= Q(pk__in=AccountDomain.objects.filter(domain__in=signals.chain).values("account_id"))
    if signals.name_key:
        strong |= Q(name_key=signals.name_key)
    if signals.phone_key:
        strong |= Q(phone_key=signals.phone_key)
    wanted = strong
    if signals.name_key and signals.country:
        wanted |= Q(name_token=normalize.name_token(signals.name_key), country=signals.country)
    if not wanted:
        return []
    rows = (
        Account.objects.filter(wanted)
        .annotate(weak=Case(When(strong, then=Value(0)), default=Value(1), output_field=IntegerField()))
        .order_by("weak", "pk")
        .values_list(*FACT_FIELDS)[:MAX_CANDIDATES]
        if strong
        else Account.objects.filter(wanted).order_by("pk").values_list(*FACT_FIELDS)[:MAX_CANDIDATES]
    )
    return [
        AccountFacts(pk, account_id, name, key, tuple(domains), phone, country)
        for pk, account_id, name, key, domains, phone, country in rows
    ]


def account_match_for(*, email=None, company=None, phone=None, country=None) -> MatchResult:
    """Match a lead's fields against the accounts as they stand (no writes)."""
    signals = lead_signals(email=email, company=company, phone=phone, country=country)
    return match_account(signals, match_candidates(signals))


def account_view(account: Account | None) -> dict | None:
    """The account as rule conditions read it: `account.id`, `.name`, `.owner` (username), `.territory`,
    `.country` and each attribute (a fixed field wins over an attribute of the same name)."""
    if account is None:
        return None
    return {
        **(account.attributes or {}),
        "id": account.account_id,
        "name": account.name,
        "owner": account.owner.get_username() if account.owner_id else None,
        "territory": account.territory or None,
        "country": account.country or None,
    }


def accounts_by_pk(pks) -> dict[int, Account]:
    return {a.pk: a for a in Account.objects.filter(pk__in=list(pks)).select_related("owner")}


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


def matching_by_origin(*, since, until) -> dict:
    """Dashboard: per origin, of the leads received in [since, until) and matched before routing, how many
    matched an account, how many were ambiguous, and how many belonged to a person seen before. Live, from
    the match and identity rows (one grouped query)."""
    from routing.models import Lead

    unmatched = [MatchMethod.NONE, MatchMethod.AMBIGUOUS]
    rows = list(
        Lead.objects.filter(received_at__gte=since, received_at__lt=until, account_match__isnull=False)
        .values("origin__name")
        .annotate(
            routed=Count("id"),
            matched=Count("id", filter=~Q(account_match__method__in=unmatched)),
            ambiguous=Count("id", filter=Q(account_match__method=MatchMethod.AMBIGUOUS)),
            known_person=Count("id", filter=Q(identity__known_person=True)),
        )
        .order_by("origin__name")
    )
    for row in rows:
        row["match_rate"] = _percent(row["matched"], row["routed"])
    totals = {key: sum(row[key] for row in rows) for key in ("routed", "matched", "ambiguous", "known_person")}
    totals["match_rate"] = _percent(totals["matched"], totals["routed"])
    return {"origins": rows, "totals": totals}


def _percent(part: int, whole: int) -> float | None:
    return round(100 * part / whole, 1) if whole else None
