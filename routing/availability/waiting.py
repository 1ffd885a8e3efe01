"""Leads held because everyone in their queue was away (Queue.when_everyone_away = hold), released when the
first member's hours start.

Routing holds such a lead: it stays `received` with `waiting_until` (routing.services). Each minute the beat
(`waiting_leads_release_task`) claims the leads whose time has come and publishes them on the live lane, where
routing picks again as if they had just come in. Someone in by then gets them; if nobody is (hours edited,
time off added meanwhile), routing holds them again until the next start. The lead row is the source of
truth: a release whose publish is lost leaves the lead `received` with no hold, which the stuck-lead sweeper
publishes again.
"""

import datetime as dt

from django.db import transaction

from routing.dispatch import Lane, routing_enqueue
from routing.models import Lead, LeadStatus

RELEASE_LIMIT = 5000  # leads released per beat tick; the next tick takes the rest


def waiting_leads_release(*, now: dt.datetime, limit: int = RELEASE_LIMIT) -> list[int]:
    """Claim the held leads due at `now` (waiting_until cleared in the same transaction; rows another sweep
    holds are skipped, so two ticks never release one lead twice), then publish their routing on the live
    lane. Returns the ids released."""
    with transaction.atomic():
        lead_ids = list(
            Lead.objects.filter(status=LeadStatus.RECEIVED, waiting_until__lte=now)  # along lead_waiting_until_idx
            .order_by("waiting_until", "id")
            .select_for_update(skip_locked=True, no_key=True)
            .values_list("id", flat=True)[:limit]
        )
        Lead.objects.filter(pk__in=lead_ids).update(waiting_until=None)
    if lead_ids:
        # After the commit: the worker must find them released (routing leaves a held lead alone).
        routing_enqueue(lead_ids, lane=Lane.LIVE)
    return lead_ids
