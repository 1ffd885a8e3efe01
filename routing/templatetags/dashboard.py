"""Formatting for the dashboard's figures."""

from django import template

register = template.Library()


@register.filter
def minutes(value) -> str:
    """Minutes from the selectors: '—' with nothing counted, '≥ 7 d' in the open bucket, '< N s' under a
    minute (a percentile is its bucket's upper bound: sub-second routing is "< 1 s", not "0.02 min"), else
    '4.5 min'/'2.1 h'."""
    if value is None:
        return "—"
    if value == "inf":
        return "≥ 7 d"
    if value < 1:
        return f"< {round(value * 60)} s"
    if value >= 120:
        return f"{value / 60:.1f} h"
    return f"{value:g} min"


@register.filter
def pct(value) -> str:
    return "—" if value is None else f"{value:g}%"


@register.filter
def pct_share(value) -> str:
    """A share from 0 to 1 as a percentage with one decimal ('99.5%'): targets like 99% need the decimal."""
    return "—" if value is None else f"{value * 100:.1f}%"


@register.filter
def ms(value) -> str:
    """Milliseconds: '—' with nothing counted, '340 ms', '2.5 s'."""
    if value is None:
        return "—"
    return f"{value:.0f} ms" if value < 1000 else f"{value / 1000:.1f} s"
