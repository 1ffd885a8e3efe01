"""Which account a lead belongs to: a pure, deterministic decision over the lead's fields and the candidate
accounts the selector found (routing/accounts/selectors.py), with the reason in words.

Signals, per candidate account:
- **domain**: the email's host, or a parent of it, is one of the account's domains (`eu.acme.com` → `acme.com`;
  `acme.co.uk` is one registrable name, never `co.uk`). Free-mail addresses give no domain signal.
- **name**: the normalised company names are equal (exact), or close: same number of words, each word equal
  or one typo apart (two in words of 9+ letters; never in words under 5 letters, nor in the first letter),
  at most two typos in all, or equal once spaces are dropped. "Acme Dental" is neither exact nor close to
  "Acme", nor "Summit Wealth" to "Summit Health".
- **phone** (last 8 digits equal, and not when the lead's and the account's countries or the numbers' calling
  codes differ) and **country**.

Who may match (false matches are worse than misses):
- a domain match always;
- an exact name, unless the lead writes from a company domain that is not the account's (the account has
  domains, the email's is none of them: `acme.co`, `notacme.com` and `acme.com.evil.io` are not `acme.com`);
  a name of two letters or less needs the phone or the country too; never when the lead's country is
  another than the account's (Müller GmbH in AT is not Müller GmbH in DE);
- a close name only with the phone, or with the country when no company domain contradicts it;
- a phone alone when neither the email's company domain nor the company name point elsewhere.

Tie order, among accounts that may match: the most specific matching domain (a subdomain entry beats its
parent), then exact name over close name over none, then phone, then country. Two
accounts equal on all of these are a real tie: no account, method `ambiguous`, with the candidates. So is an
account chosen without an exact name while another that may match has one (the email says one company, the
name another).
"""

from dataclasses import dataclass, field

from django.db import models

from routing.accounts import normalize


class MatchMethod(models.TextChoices):
    DOMAIN = "domain", "Email domain"
    NAME = "name", "Company name"
    CLOSE_NAME = "close_name", "Close company name with a supporting signal"
    PHONE = "phone", "Phone number"
    AMBIGUOUS = "ambiguous", "Ambiguous account"
    NONE = "none", "No account"


@dataclass(frozen=True)
class AccountFacts:
    """What the matcher knows of one account (built by the selector from a row)."""

    pk: int
    account_id: str
    name: str
    name_key: str
    domains: tuple[str, ...]
    phone_key: str = ""
    country: str = ""
    # Not read by the matcher: what routing shows the rules once the account is chosen.
    territory: str = ""
    attributes: dict | None = None
    owner_id: int | None = None
    owner: str | None = None  # username
    phone: str = ""  # as written: its calling code (+49) must not contradict the lead's


@dataclass(frozen=True)
class LeadSignals:
    host: str | None
    chain: tuple[str, ...]  # the host and its parents down to the registrable domain
    free_mail: bool
    name_key: str
    phone_key: str
    country: str
    company: str = ""  # as written, for explanations: a name of only legal forms or generic words has no key
    phone_code: int | None = None  # the number's country calling code, when the number or the country says

    @property
    def company_domain(self) -> bool:
        """The lead writes from an address that names a company (not free mail)."""
        return bool(self.chain) and not self.free_mail


def lead_signals(*, email=None, company=None, phone=None, country=None) -> LeadSignals:
    host = normalize.email_host(email)
    chain = normalize.host_chain(host) if host else ()
    free = bool(host) and normalize.is_free_mail(host)
    return LeadSignals(
        host=host,
        chain=() if free else chain,
        free_mail=free,
        name_key=normalize.name_key(company),
        phone_key=normalize.phone_key(phone),
        country=(country or "").upper(),
        company=(company or "").strip()[:200],
        phone_code=normalize.calling_code(phone, country) if phone else None,
    )


@dataclass(frozen=True)
class Candidate:
    account: AccountFacts
    domain: str | None  # the account domain the email matched
    name: str  # "exact", "close" or ""
    phone: bool
    country: bool
    eligible: bool
    note: str  # why it may or may not match, in words

    @property
    def rank(self) -> tuple:
        """The documented tie order, as a sort key (higher is better)."""
        depth = self.domain.count(".") + 1 if self.domain else 0
        return (depth, {"exact": 2, "close": 1}.get(self.name, 0), self.phone, self.country)

    def as_dict(self) -> dict:
        return {
            "account_id": self.account.account_id,
            "name": self.account.name,
            "domain": self.domain,
            "name_match": self.name or None,
            "phone": self.phone,
            "country": self.country,
            "eligible": self.eligible,
            "note": self.note,
        }


@dataclass(frozen=True)
class MatchResult:
    account: AccountFacts | None
    method: str
    confidence: float
    why: str
    candidates: tuple[Candidate, ...] = field(default=())

    def as_dict(self) -> dict:
        return {
            "account_id": self.account.account_id if self.account else None,
            "method": self.method,
            "confidence": self.confidence,
            "why": self.why,
            "candidates": [c.as_dict() for c in self.candidates],
        }


def close_names(a: str, b: str) -> bool:
    """Two different name keys that are one or two typos apart (see the module docstring)."""
    if not a or not b or a == b:
        return False
    if a.replace(" ", "") == b.replace(" ", ""):
        return True
    left, right = a.split(), b.split()
    if len(left) != len(right):
        return False
    edits = 0
    for x, y in zip(left, right, strict=True):
        if x == y:
            continue
        shortest = min(len(x), len(y))
        allowed = 2 if shortest >= 9 else 1 if shortest >= 5 else 0
        # Typos rarely hit the first letter; other words often differ just there ("health", "wealth").
        if allowed == 0 or x[0] != y[0] or x.isdigit() or y.isdigit():
            return False
        distance = normalize.osa_distance(x, y, allowed)
        if distance > allowed:
            return False
        edits += distance
    return edits <= 2


def _candidate(lead: LeadSignals, account: AccountFacts) -> Candidate:
    domains = set(account.domains)
    domain = next((host for host in lead.chain if host in domains), None)
    name = ""
    if lead.name_key and account.name_key:
        name = (
            "exact"
            if lead.name_key == account.name_key
            else "close"
            if close_names(lead.name_key, account.name_key)
            else ""
        )
    country = bool(lead.country) and lead.country == account.country
    # The phone key is the last 8 digits: a number of another country can end the same way.
    other_country = bool(lead.country) and bool(account.country) and not country
    phone = bool(lead.phone_key) and lead.phone_key == account.phone_key and not other_country
    if phone and lead.phone_code:
        # Or the numbers' calling codes differ (+1 … 5555 1212 is not +49 40 5555 1212), country given or not.
        account_code = normalize.calling_code(account.phone, account.country)
        phone = account_code is None or account_code == lead.phone_code
    # The email is from a company, the account has domains, and the email's is none of them.
    elsewhere = lead.company_domain and bool(domains) and domain is None
    if domain is not None:
        where = "is its domain" if domain == lead.host else f"is under its domain {domain}"
        eligible, note = True, f"the email's domain {lead.host} {where}"
    elif name == "exact":
        if elsewhere:
            eligible, note = False, f"same name, but the email's domain {lead.host} is not one of its domains"
        elif len(lead.name_key.replace(" ", "")) <= 2 and not (phone or country):
            eligible, note = False, "same name, but a name this short needs the phone or the country to agree"
        elif other_country:
            # Müller GmbH in Austria is not Müller GmbH in Germany: a common name needs more than itself.
            eligible, note = False, f"same name, but the lead is in {lead.country} and the account in {account.country}"
        else:
            eligible, note = True, "same company name" + _support(phone, country)
    elif name == "close":
        if phone or (country and not elsewhere):
            eligible, note = True, "close company name" + _support(phone, country)
        elif elsewhere:
            eligible, note = False, f"close company name, but the email's domain {lead.host} is not one of its domains"
        else:
            eligible, note = False, "close company name, but neither the phone nor the country agrees"
    elif phone:
        if elsewhere:
            eligible, note = False, f"same phone, but the email's domain {lead.host} is not one of its domains"
        elif lead.name_key:
            eligible, note = False, "same phone, but the company name is another"
        else:
            eligible, note = True, "same phone number"
    else:
        eligible, note = False, "nothing but a weak signal agrees"
    return Candidate(account, domain, name, phone, country, eligible, note)


def _support(phone: bool, country: bool) -> str:
    signals = [word for word, on in (("phone", phone), ("country", country)) if on]
    return f", with the same {' and '.join(signals)}" if signals else ""


def _method_and_confidence(best: Candidate) -> tuple[str, float]:
    if best.domain is not None:
        return MatchMethod.DOMAIN, 0.97 if best.name else 0.93
    if best.name == "exact":
        return MatchMethod.NAME, 0.9 if (best.phone or best.country) else 0.8
    if best.name == "close":
        return MatchMethod.CLOSE_NAME, 0.8 if best.phone else 0.7
    return MatchMethod.PHONE, 0.7


def match_account(lead: LeadSignals, accounts) -> MatchResult:
    """Decide among `accounts` (AccountFacts the selector fetched for this lead). Deterministic: the same lead
    and accounts always give the same answer, whatever order the accounts come in."""
    candidates = sorted(
        (_candidate(lead, account) for account in accounts),
        key=lambda c: (not c.eligible, tuple(-x for x in c.rank), c.account.account_id),
    )
    eligible = [c for c in candidates if c.eligible]
    # Accounts fetched on a lookup key alone (a shared first word, say) with nothing agreeing are not shown.
    shown = tuple([c for c in candidates if c.domain or c.name or c.phone][:10])
    if not eligible:
        if lead.free_mail and not lead.name_key and not lead.phone_key:
            named = f"its company {lead.company!r} is no name to match" if lead.company else "the lead names no company"
            why = f"{lead.host} is a free-mail domain and {named}"
        elif not candidates or not any(c.domain or c.name or c.phone for c in candidates):
            why = "no account shares its email domain, company name or phone"
        else:
            best = candidates[0]
            why = f"closest was {best.account.name} ({best.account.account_id}): {best.note}"
        if lead.free_mail:
            why += "; free-mail domains never match by domain"
        return MatchResult(None, MatchMethod.NONE, 0.0, why, shown)
    best = eligible[0]
    tied = [c for c in eligible if c.rank == best.rank]
    if len(tied) > 1:
        names = ", ".join(f"{c.account.name} ({c.account.account_id})" for c in tied)
        return MatchResult(
            None, MatchMethod.AMBIGUOUS, 0.0, f"ambiguous account: {names} match equally ({best.note})", shown
        )
    named = [c for c in eligible if c.name == "exact" and c is not best]
    if best.name != "exact" and named:
        other = named[0].account
        return MatchResult(
            None,
            MatchMethod.AMBIGUOUS,
            0.0,
            f"ambiguous account: {best.account.name} ({best.note}), but the company name is {other.name}'s",
            shown,
        )
    method, confidence = _method_and_confidence(best)
    why = f"{best.account.name}: {best.note}"
    beaten = [c for c in eligible[1:] if c.domain and c.domain == best.domain]
    if beaten:  # a domain several accounts share: say what told them apart
        others = ", ".join(f"{c.account.name} ({c.account.account_id})" for c in beaten)
        why += f"; chosen over {others}, which {'share' if len(beaten) > 1 else 'shares'} that domain, by {_edge(best)}"
    return MatchResult(best.account, method, confidence, why, shown)


def _edge(best: Candidate) -> str:
    """What a candidate has beyond the domain it shares with others (it ranked first on it)."""
    signals = [
        label
        for label, on in (
            (f"the {best.name} company name", bool(best.name)),
            ("the phone", best.phone),
            ("the country", best.country),
        )
        if on
    ]
    return " and ".join(signals) or "its account id"
