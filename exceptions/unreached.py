"""Escalations that reached nobody: what the checklist and the console show of them.

The SLA sweep (exceptions.sweep) writes them: an item whose escalation had no active person to go to (a queue
without owner or escalation contact, routing.queue_owners) gets `escalation_problem` and an UNREACHED SLA
event instead of a notification; the next escalation that lands clears the problem.
"""

import datetime as dt
from dataclasses import dataclass

from django.urls import reverse

from exceptions.models import UNRESOLVED, ExceptionItem, SlaEvent, SlaEventKind
from routing.queue_owners import queues_without_owner


@dataclass(frozen=True)
class UnreachedEscalations:
    open_items: int  # unresolved items whose last escalation reached nobody, right now
    in_week: int  # items with an escalation that reached nobody during the week reviewed
    ownerless_queues: int  # queues lacking an active owner or escalation contact, right now
    link: str  # the item list, filtered to the open ones

    @property
    def failing(self) -> bool:
        return bool(self.open_items or self.in_week or self.ownerless_queues)


def unreached_escalations(*, start: dt.datetime, end: dt.datetime) -> UnreachedEscalations:
    """Three counts for the Monday checklist (one query each)."""
    open_items = ExceptionItem.objects.filter(UNRESOLVED).exclude(escalation_problem="").count()
    in_week = (
        SlaEvent.objects.filter(kind=SlaEventKind.UNREACHED, at__gte=start, at__lt=end)
        .values("item_id")
        .distinct()
        .count()
    )
    return UnreachedEscalations(
        open_items=open_items,
        in_week=in_week,
        ownerless_queues=queues_without_owner().count(),
        link=reverse("console:items") + "?unreached=true",
    )
