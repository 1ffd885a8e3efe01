"""Who gets the lead: the queue's strategy over its eligible members, following overflow queues.

Fairness is stride scheduling: each member carries a `rotation_pass`, the queue a `virtual_time`
(the lowest pass among the members eligible for the last pick, i.e. the round being served). The available member whose
start tag max(pass, virtual_time) is lowest is served, ties to the earlier member, and its pass moves on
by 1/weight (weight 1 under plain round robin). So the rotation is exact; a member who joins or returns
from unavailability enters the current round in its usual place (no burst to "catch up", no reset of
everyone else's counts); a member who leaves changes nothing for the rest. The queue row is locked for
the pick, so concurrent workers serialise per queue and never hand out the same turn twice.

A batch of leads for one queue is served under one lock: the picks are made one after another in memory,
exactly as separate picks would be, and the rotation is written once (`pick_assignees`).
"""

import datetime as dt
from dataclasses import dataclass

from django.contrib.auth import get_user_model
from django.db import connection, transaction
from django.db.models import Sum

from routing.models import AssignmentStrategy, OpenLeadCount, Queue, QueueMembership


@dataclass(frozen=True)
class Pick:
    queue: Queue  # where the lead lands: the rule's queue or an overflow queue
    assignee: object | None  # a user, or None when nobody in the overflow chain is eligible
    overflowed_from: tuple[str, ...] = ()
    # Nobody eligible because everyone is away or out of hours and the queue holds (when_everyone_away = hold):
    # the lead waits until then, the first member's hours start.
    hold_until: dt.datetime | None = None
    why_nobody: str = ""  # who was skipped and why, in words, when assignee is None


def pick_assignee(*, queue_id: int, exclude_user_id: int | None = None, follow_overflow: bool = True) -> Pick:
    """Call inside a transaction: locks each queue it tries until commit. `exclude_user_id` skips one
    person (handing an item on to someone else); `follow_overflow=False` stays in this queue."""
    (pick,) = pick_assignees(
        queue_id=queue_id, count=1, exclude_user_id=exclude_user_id, follow_overflow=follow_overflow
    )
    return pick


def pick_assignees(
    *, queue_id: int, count: int, exclude_user_id: int | None = None, follow_overflow: bool = True
) -> list[Pick]:
    """`count` picks in a row, as `count` calls of pick_assignee would make them, under one lock per queue
    tried. Call inside a transaction."""
    picks: list[Pick] = []
    tried: list[Queue] = []
    next_id: int | None = queue_id
    while len(picks) < count and next_id is not None and next_id not in {q.id for q in tried}:
        # NO KEY: PostgreSQL checks Django's (deferred) foreign keys at commit with FOR KEY SHARE on the row they
        # name, which a plain FOR UPDATE blocks: every transaction writing a lead or an item of this queue would
        # wait for whoever holds the queue. The rotation changes no key, so NO KEY UPDATE is the lock it needs.
        queue = Queue.objects.select_for_update(no_key=True).get(pk=next_id)
        rotation = _Rotation(queue, exclude_user_id)
        overflowed_from = tuple(q.name for q in tried)
        while len(picks) < count and (member := rotation.pick()) is not None:
            picks.append(Pick(queue=queue, assignee=member.user, overflowed_from=overflowed_from))
        rotation.save()
        tried.append(queue)
        next_id = queue.overflow_queue_id if follow_overflow else None
    nobody = Pick(queue=tried[0], assignee=None, overflowed_from=tuple(q.name for q in tried[1:]))
    return picks + [nobody] * (count - len(picks))


def open_lead_counts(user_ids) -> dict[int, int]:
    """Assigned leads per person: the sum of the changes the database recorded (OpenLeadCount), a few rows
    per person however many leads they were ever given."""
    return _totals(OpenLeadCount.objects.filter(assignee_id__in=list(user_ids)))


def _totals(changes) -> dict[int, int]:
    """person -> the sum of these recorded changes, leaving out the people it comes to 0 for."""
    rows = changes.values("assignee_id").annotate(n=Sum("change")).values_list("assignee_id", "n")
    return {user_id: n for user_id, n in rows if n}


def open_lead_counts_fold() -> int:
    """Fold each person's recorded changes into one row (beat). Returns the rows folded away."""
    if connection.vendor == "postgresql":
        # One statement: changes committed while it runs are not in its snapshot, so they stay to be folded
        # next time; two folds at once cannot both take the same rows.
        with connection.cursor() as cursor:
            cursor.execute(
                "WITH folded AS (DELETE FROM routing_openleadcount RETURNING assignee_id, change), "
                "kept AS (INSERT INTO routing_openleadcount (assignee_id, change) "
                "SELECT assignee_id, sum(change) FROM folded GROUP BY assignee_id HAVING sum(change) <> 0 RETURNING 1) "
                "SELECT (SELECT count(*) FROM folded) - (SELECT count(*) FROM kept)"
            )
            return cursor.fetchone()[0]
    with transaction.atomic():  # SQLite: one writer at a time, so read, delete and write back cannot race
        totals = _totals(OpenLeadCount.objects.all())
        before, _ = OpenLeadCount.objects.all().delete()
        OpenLeadCount.objects.bulk_create(OpenLeadCount(assignee_id=k, change=n) for k, n in totals.items())
    return before - len(totals)


class _Rotation:
    """One locked queue's eligible members, for picks made one after another in memory."""

    def __init__(self, queue: Queue, exclude_user_id: int | None):
        self.queue = queue
        self.members = list(
            queue.memberships.filter(is_available=True, user__is_active=True)
            .exclude(user_id=exclude_user_id)
            .select_related("user")
            .order_by("id")
        )
        self.cap = queue.max_open_per_member
        self.least_loaded = queue.strategy == AssignmentStrategy.LEAST_LOADED
        self.weighted = queue.strategy == AssignmentStrategy.WEIGHTED_ROUND_ROBIN
        self.moved: dict[int, QueueMembership] = {}
        self.load: dict[int, int] = {}
        if not self.members:
            return
        if self.cap is not None:
            # A member may sit in several queues: lock the people, then count, so two queues routing at once
            # cannot both hand over the last free slot. (In pk order, so two batches never lock in a circle.)
            user_ids = sorted({m.user_id for m in self.members})
            list(
                get_user_model()
                .objects.select_for_update(no_key=True)
                .filter(pk__in=user_ids)
                .order_by("pk")
                .values("pk")
            )
        if self.least_loaded or self.cap is not None:
            self.load = open_lead_counts(m.user_id for m in self.members)

    def pick(self) -> QueueMembership | None:
        queue, cap, load = self.queue, self.cap, self.load
        # Members at the cap sit this pick out, and do not hold the round back for everyone else.
        eligible = [m for m in self.members if cap is None or load.get(m.user_id, 0) < cap]
        if not eligible:
            return None

        def start(member):
            return max(member.rotation_pass, queue.virtual_time)

        if self.least_loaded:
            member = min(eligible, key=lambda m: (load.get(m.user_id, 0), start(m), m.id))
        else:
            member = min(eligible, key=lambda m: (start(m), m.id))
        member.rotation_pass = start(member) + 1.0 / (member.weight if self.weighted else 1)
        queue.virtual_time = min(max(m.rotation_pass, queue.virtual_time) for m in eligible)
        load[member.user_id] = load.get(member.user_id, 0) + 1
        self.moved[member.pk] = member
        return member

    def save(self) -> None:
        """Write the rotation once. Updates, not save(): the rotation is bookkeeping, and save() would write a
        membership history row per lead."""
        for member in self.moved.values():
            QueueMembership.objects.filter(pk=member.pk).update(rotation_pass=member.rotation_pass)
        if self.moved:
            Queue.objects.filter(pk=self.queue.pk).update(virtual_time=self.queue.virtual_time)
