"""Who gets the lead: the queue's strategy over its eligible members, following overflow queues.

Fairness is stride scheduling: each member carries a `rotation_pass`, the queue a `virtual_time`
(the lowest pass among the members eligible for the last pick, i.e. the round being served). The available member whose
start tag max(pass, virtual_time) is lowest is served, ties to the earlier member, and its pass moves on
by 1/weight (weight 1 under plain round robin). So the rotation is exact; a member who joins or returns
from unavailability enters the current round in its usual place (no burst to "catch up", no reset of
everyone else's counts); a member who leaves changes nothing for the rest. The queue row is locked for
the pick, so concurrent workers serialise per queue and never hand out the same turn twice.
"""

from dataclasses import dataclass

from django.contrib.auth import get_user_model
from django.db.models import Count

from routing.models import AssignmentStrategy, Lead, LeadStatus, Queue, QueueMembership


@dataclass(frozen=True)
class Pick:
    queue: Queue  # where the lead lands: the rule's queue or an overflow queue
    assignee: object | None  # a user, or None when nobody in the overflow chain is eligible
    overflowed_from: tuple[str, ...] = ()


def pick_assignee(*, queue_id: int, exclude_user_id: int | None = None, follow_overflow: bool = True) -> Pick:
    """Call inside a transaction: locks each queue it tries until commit. `exclude_user_id` skips one
    person (handing an item on to someone else); `follow_overflow=False` stays in this queue."""
    tried: list[Queue] = []
    next_id: int | None = queue_id
    while next_id is not None and next_id not in {q.id for q in tried}:
        queue = Queue.objects.select_for_update().get(pk=next_id)
        member = _pick_in_queue(queue, exclude_user_id)
        if member is not None:
            return Pick(queue=queue, assignee=member.user, overflowed_from=tuple(q.name for q in tried))
        tried.append(queue)
        next_id = queue.overflow_queue_id if follow_overflow else None
    return Pick(queue=tried[0], assignee=None, overflowed_from=tuple(q.name for q in tried[1:]))


def open_lead_counts(user_ids) -> dict[int, int]:
    rows = (
        Lead.objects.filter(status=LeadStatus.ASSIGNED, assignee_id__in=list(user_ids))
        .values("assignee_id")
        .annotate(n=Count("id"))
        .values_list("assignee_id", "n")
    )
    return dict(rows)


def _pick_in_queue(queue: Queue, exclude_user_id: int | None = None) -> QueueMembership | None:
    members = list(
        queue.memberships.filter(is_available=True, user__is_active=True)
        .exclude(user_id=exclude_user_id)
        .select_related("user")
        .order_by("id")
    )
    if not members:
        return None
    cap = queue.max_open_per_member
    least_loaded = queue.strategy == AssignmentStrategy.LEAST_LOADED
    load = open_lead_counts(m.user_id for m in members) if (least_loaded or cap is not None) else {}

    def start(member):
        return max(member.rotation_pass, queue.virtual_time)

    # Members at the cap sit this pick out, and do not hold the round back for everyone else.
    eligible = [m for m in members if cap is None or load.get(m.user_id, 0) < cap]
    if least_loaded:
        order = sorted(eligible, key=lambda m: (load.get(m.user_id, 0), start(m), m.id))
    else:
        order = sorted(eligible, key=lambda m: (start(m), m.id))

    for member in order:
        if cap is not None and not _under_cap(member, cap, load):
            continue
        _advance(queue, member, start(member), eligible)
        return member
    return None


def _under_cap(member: QueueMembership, cap: int, load: dict[int, int]) -> bool:
    if load.get(member.user_id, 0) >= cap:
        return False
    # A member may sit in several queues: lock the person and count again, so two queues routing at
    # once cannot both hand over the last free slot.
    get_user_model().objects.select_for_update().filter(pk=member.user_id).exists()
    return open_lead_counts([member.user_id]).get(member.user_id, 0) < cap


def _advance(queue: Queue, member: QueueMembership, start_tag: float, eligible: list[QueueMembership]) -> None:
    weighted = queue.strategy == AssignmentStrategy.WEIGHTED_ROUND_ROBIN
    member.rotation_pass = start_tag + 1.0 / (member.weight if weighted else 1)
    # An update, not save(): the rotation is bookkeeping, and save() would write a membership history row per lead.
    QueueMembership.objects.filter(pk=member.pk).update(rotation_pass=member.rotation_pass)
    queue.virtual_time = min(max(m.rotation_pass, queue.virtual_time) for m in eligible)
    Queue.objects.filter(pk=queue.pk).update(virtual_time=queue.virtual_time)
