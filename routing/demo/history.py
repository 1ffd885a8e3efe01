"""Two weeks of demo leads already routed, so the demo's dashboard has figures the moment it opens: the trickle
alone left it at zero until beat's first rollup, five minutes in, and then showed one thin day.

The leads go through the real intake and routing (the demo's own rules decide them); only their times are moved
into the past afterwards, as if they had arrived then. Only leads a production rule matches and that carry an
email are kept: a lead that opened an exception would open it now, two weeks after its arrival, and flood the
demo's desk with one stale incident (the desk has its own current items, routing/demo/desk.py)."""

import datetime as dt
import random

from django.db import transaction
from django.db.models import F
from django.utils import timezone

from routing.accounts.leads import sample_account
from routing.days import day_start
from routing.demo.leads import synthetic_lead
from routing.engine import RuleSet, production_ruleset
from routing.intake import leads_intake, sample_fields
from routing.models import Lead, Source
from routing.services import leads_route

HISTORY_PREFIX = "history-"  # the lead ids of seeded history, so seeding twice adds nothing
HISTORY_DAYS = 14
PER_DAY = (25, 60)  # leads a day, weekdays; weekends get a third
DELAYS = (2, 3, 5, 8, 12, 20, 45, 90, 400, 1900)  # seconds from arrival to assignment
DELAY_WEIGHTS = (12, 12, 12, 12, 12, 12, 12, 12, 3, 1)


def demo_history_seed(*, source: Source, days: int = HISTORY_DAYS, now: dt.datetime | None = None) -> int:
    """Give `source` `days` days of routed leads before today (UTC), unless it has them already. The same leads
    each time (a fixed random seed): the README's screenshots are taken from them. Returns how many it added."""
    if Lead.objects.filter(origin=source, lead_id__startswith=HISTORY_PREFIX).exists():
        return 0
    now = now or timezone.now()
    rng = random.Random(20261101)
    rules = production_ruleset()
    added = 0
    for back in range(days, 0, -1):
        day = (now - dt.timedelta(days=back)).date()
        count = rng.randint(*PER_DAY) // (3 if day.weekday() >= 5 else 1)
        payloads = []
        while len(payloads) < count:
            lead = synthetic_lead(rng)
            if _routes_cleanly(lead, rules):
                lead["lead_id"] = f"{HISTORY_PREFIX}{day.isoformat()}-{len(payloads):03d}"
                payloads.append(lead)
        with transaction.atomic():
            _, ids = leads_intake(source=source, payloads=payloads)
            leads_route(lead_ids=ids, skip_locked=False)
            _move_into(day, ids, rng)
        added += len(ids)
    return added


def _routes_cleanly(lead: dict, rules: RuleSet) -> bool:
    """Whether routing would assign the lead without opening an exception: it has an email and a rule matches."""
    if not lead.get("email"):
        return False
    fields = sample_fields(lead)
    view = Lead.view_from(fields)
    view["account"] = sample_account(fields).view
    return rules.first_match_index(view) >= 0


def _move_into(day: dt.date, ids: list[int], rng: random.Random) -> None:
    """Move the just-routed leads to `day`, keeping how long each took to assign: mostly seconds (the engine's
    own time, plus a worker's wait), one in 25 several minutes or half an hour, so the dashboard's SLA figures
    are not all 100%."""
    opens = day_start(day) + dt.timedelta(hours=7)
    for lead_id in ids:
        received = opens + dt.timedelta(seconds=rng.randint(0, 11 * 3600))
        delay = dt.timedelta(seconds=rng.choices(DELAYS, weights=DELAY_WEIGHTS)[0])
        shift = received - Lead.objects.filter(pk=lead_id).values_list("received_at", flat=True)[0]
        Lead.objects.filter(pk=lead_id).update(
            received_at=received,
            occurred_at=received - dt.timedelta(seconds=rng.randint(0, 30)),
            routed_at=F("routed_at") + shift,
        )
        Lead.objects.filter(pk=lead_id, assigned_at__isnull=False).update(assigned_at=received + delay)
