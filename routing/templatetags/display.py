"""How the console shows free-form values (a lead's attributes, an account's CRM columns)."""

import json

from django import template

register = template.Library()


@register.filter
def field_value(value) -> str:
    """A scalar as it is, a list or object as compact JSON (not Python's repr), nothing as '—'."""
    if value is None or value == "":
        return "—"
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False, sort_keys=True, default=str)
    return str(value)


@register.filter
def domains_shown(domains) -> str:
    """Account domains as people write them: an internationalised one (stored as DNS writes it,
    xn--mnchen-3ya.de) in its own letters with the DNS form after it, "münchen.de (xn--mnchen-3ya.de)"."""
    shown = []
    for domain in domains or []:
        try:
            readable = domain.encode("ascii").decode("idna") if "xn--" in domain else domain
        except UnicodeError:
            readable = domain  # not valid IDNA after all: show it as stored
        shown.append(domain if readable == domain else f"{readable} ({domain})")
    return ", ".join(shown)
