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
