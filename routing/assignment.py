"""Who gets the lead: the queue's strategy over its eligible members, following overflow queues.

Fairness is stride scheduling: each member carries a `rotation_pass`, the queue a `virtual_time`
(the lowest pass among the members eligible for the last pick, i.e. the round being served). The eligible member
whose start tag max(pass, floor) is lowest is served, ties to the earlier member, and its pass moves on by
1/weight (weight 1 under plain round robin); least loaded serves the fewest open leads first, then the same tag.
So the rotation is exact; a member who leaves changes nothing for the rest.

Eligible, at the instant of the batch (`at`): an active user, marked available in the queue, in (not on time
off, inside their working hours: routing/availability/schedule.py) and under the queue's open-lead cap. A member
who sits a pick out keeps their pass; what they get back depends on the queue's return policy, through the
floor of the start tag:
- keep place: floor = virtual_time. A returning member enters the round being served in their usual place (no
  burst to "catch up", no reset of everyone else's counts).
- catch up: floor = period_virtual_time, the virtual time when the current distribution period (day, ISO week
  or month in the queue's business time zone) began. A returning member is served first until their pass
  reaches the others': exactly the turns they missed this period, never more, never those of an earlier one.
A new member starts at the queue's virtual time either way (QueueMembership.save): never owed earlier turns.

The queue row is locked for the pick, so concurrent workers serialise per queue and never hand out the same
turn twice. A batch of leads for one queue is served under one lock: the picks are made one after another in
memory, exactly as separate picks would be, and the rotation and the distribution ledger
(routing/availability/ledger.py) are written once (`pick_assignees`).

When nobody is eligible, the lead overflows to the queue's overflow queue, unless everyone who could take it is
only away or out of hours and the queue says otherwise (when_everyone_away): hold (the lead waits until the
first of them is in: Pick.hold_until) or exception (no overflow). A pick that finds nobody says why
(Pick.why_nobody), member by member.
"""

import datetime as dt
from dataclasses import dataclass
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from django.contrib.auth import get_user_model
from django.db import connection, transaction
from django.db.models import Sum
from django.utils import timezone

from routing.availability.ledger import Ledger, missed_shares
from routing.availability.models import TimeOff
from routing.availability.schedule import Schedule, Why
from routing.availability.selectors import schedules_for
from routing.models import (
    AssignmentStrategy,
    DistributionPeriod,
    EveryoneAway,
    OpenLeadCount,
    Queue,
    QueueMembership,
    ReturnPolicy,
)


@dataclass(frozen=True)
class Pick:
    queue: Queue  # where the lead lands: the rule's queue or an overflow queue
    assignee: object | None  # a user, or None when nobody in the overflow chain is eligible
    overflowed_from: tuple[str, ...] = ()
    # Nobody eligible because everyone is away or out of hours and the queue holds (when_everyone_away = hold):
    # the lead waits until then, the first member's hours start.
    hold_until: dt.datetime | None = None
    why_nobody: str = ""  # who was skipped and why, in words, when assignee is None


def pick_assignee(
    *,
    queue_id: int,
    exclude_user_id: int | None = None,
    follow_overflow: bool = True,
    at: dt.datetime | None = None,
) -> Pick:
    """Call inside a transaction: locks each queue it tries until commit. `exclude_user_id` skips one
    person (handing an item on to someone else); `follow_overflow=False` stays in this queue."""
    (pick,) = pick_assignees(
        queue_id=queue_id, count=1, exclude_user_id=exclude_user_id, follow_overflow=follow_overflow, at=at
    )
    return pick


def pick_assignees(
    *,
    queue_id: int,
    count: int,
    exclude_user_id: int | None = None,
    follow_overflow: bool = True,
    at: dt.datetime | None = None,
) -> list[Pick]:
    """`count` picks in a row, as `count` calls of pick_assignee would make them, under one lock per queue
    tried; who is in is decided at `at` (the batch's now). Call inside a transaction."""
    at = at or timezone.now()
    picks: list[Pick] = []
    tried: list[Queue] = []
    why: list[str] = []
    next_id: int | None = queue_id
    while len(picks) < count and next_id is not None and next_id not in {q.id for q in tried}:
        # NO KEY: PostgreSQL checks Django's (deferred) foreign keys at commit with FOR KEY SHARE on the row they
        # name, which a plain FOR UPDATE blocks: every transaction writing a lead or an item of this queue would
        # wait for whoever holds the queue. The rotation changes no key, so NO KEY UPDATE is the lock it needs.
        queue = Queue.objects.select_for_update(no_key=True).get(pk=next_id)
        rotation = _Rotation(queue, exclude_user_id, at)
        overflowed_from = tuple(q.name for q in tried)
        while len(picks) < count and (member := rotation.pick()) is not None:
            picks.append(Pick(queue=queue, assignee=member.user, overflowed_from=overflowed_from))
        hold_until, stop_here = None, False
        if len(picks) < count:
            rotation.nobody(count - len(picks))  # the ledger explains the leads nobody here took
            why.append(rotation.why_nobody())
            hold_until, stop_here = rotation.when_everyone_away()
        rotation.save()
        tried.append(queue)
        if hold_until is not None:
            held = Pick(
                queue=queue,
                assignee=None,
                overflowed_from=overflowed_from,
                hold_until=hold_until,
                why_nobody=" ".join(why),
            )
            return picks + [held] * (count - len(picks))
        next_id = queue.overflow_queue_id if follow_overflow and not stop_here else None
    if len(picks) == count:
        return picks
    nobody = Pick(
        queue=tried[0], assignee=None, overflowed_from=tuple(q.name for q in tried[1:]), why_nobody=" ".join(why)
    )
    return picks + [nobody] * (count - len(picks))


def until_words(schedule: Schedule, at: dt.datetime, why: str) -> str:
    """When a person who is not in at `at` is back, in their time zone: "until 09:00 Europe/Berlin (Mon 7 Dec)"
    out of hours, "until 2026-12-07" (or a time, when it ends mid-day) for time off."""
    zone = schedule.timezone
    zone_name = getattr(zone, "key", None) or str(zone)  # a ZoneInfo, or datetime.UTC when no hours were set
    if why == Why.AWAY:
        back = at
        while blocking := [end for start, end in schedule.time_off if start <= back < end]:
            back = max(blocking)  # periods that touch or overlap make one absence
        local = back.astimezone(zone)
        if local.time() == dt.time(0):
            return f"until {local.date().isoformat()}"
        return f"until {local:%Y-%m-%d %H:%M} {zone_name}"
    back = schedule.next_available_at(at)
    if back is None:
        return "with no working hours ahead"
    local = back.astimezone(zone)
    return f"until {local:%H:%M} {zone_name} ({local:%a} {local.day} {local:%b})"


def period_start(period: str, at: dt.datetime, zone: ZoneInfo) -> dt.datetime:
    """The start of the distribution period holding `at`: local midnight of the day, of the Monday of the ISO
    week, or of the 1st of the month, in `zone`."""
    day = at.astimezone(zone).date()
    if period == DistributionPeriod.WEEK:
        day -= dt.timedelta(days=day.weekday())
    elif period == DistributionPeriod.MONTH:
        day = day.replace(day=1)
    return dt.datetime.combine(day, dt.time(0), tzinfo=zone).astimezone(dt.UTC)


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
    """One locked queue's members, for picks made one after another in memory at one instant."""

    def __init__(self, queue: Queue, exclude_user_id: int | None, at: dt.datetime):
        self.queue, self.at = queue, at
        # Everyone active, marked available or not: the ledger counts who sat a pick out and why.
        self.members = list(
            queue.memberships.filter(user__is_active=True)
            .exclude(user_id=exclude_user_id)
            .select_related("user")
            .order_by("id")
        )
        self.cap = queue.max_open_per_member
        self.least_loaded = queue.strategy == AssignmentStrategy.LEAST_LOADED
        self.weighted = queue.strategy == AssignmentStrategy.WEIGHTED_ROUND_ROBIN
        self.weights = {m.user_id: m.weight if self.weighted else 1 for m in self.members}
        self.moved: dict[int, QueueMembership] = {}
        self.load: dict[int, int] = {}
        self.ledger = Ledger(queue.pk, at.astimezone(dt.UTC).date())
        self.period_rolled = self._roll_period()
        self.schedules: dict[int, Schedule | None] = {}
        self.why: dict[int, str] = {}  # user id -> why they sit the next pick out ("" when eligible)
        self.eligible: list[QueueMembership] = []
        if not self.members:
            self.absent: dict[int, str] = {}
            return
        self.schedules = schedules_for([m.user_id for m in self.members], at=at)
        # Why a member sits out every pick of this batch, whatever the loads: the queue's flag, then time off,
        # then working hours (in that order: the first reason is the one counted).
        self.absent = {m.user_id: self._absent(m) for m in self.members}
        present = sorted(m.user_id for m in self.members if not self.absent[m.user_id])
        if self.cap is not None and present:
            # A member may sit in several queues: lock the people, then count, so two queues routing at once
            # cannot both hand over the last free slot. (In pk order, so two batches never lock in a circle.)
            list(
                get_user_model()
                .objects.select_for_update(no_key=True)
                .filter(pk__in=present)
                .order_by("pk")
                .values("pk")
            )
        if self.least_loaded or self.cap is not None:
            self.load = open_lead_counts(m.user_id for m in self.members)
        # Least loaded balances open leads, so a member back from time off would be served until even: that is
        # catch up. Under keep place the share each member missed (or got extra) while someone was out this
        # period counts as load, so the returning member resumes level with the others instead.
        self.missed: dict[int, float] = {}
        if self.least_loaded and queue.return_policy == ReturnPolicy.KEEP_PLACE:
            since = (queue.period_started_at or at).astimezone(dt.UTC).date()
            self.missed = missed_shares(queue.pk, since=since)
        # Kept up to date pick by pick: within a batch only the picked member's load changes.
        self.why = {m.user_id: self.absent[m.user_id] or (Why.AT_CAP if self._at_cap(m) else "") for m in self.members}
        self.eligible = [m for m in self.members if not self.why[m.user_id]]

    def _absent(self, member: QueueMembership) -> str:
        if not member.is_available:
            return Why.UNAVAILABLE
        schedule = self.schedules.get(member.user_id)
        return schedule.why_not_in(self.at) if schedule is not None else ""

    def _roll_period(self) -> bool:
        """At the first pick in a new distribution period, the catch-up floor becomes today's virtual time."""
        queue = self.queue
        try:
            zone = ZoneInfo(queue.business_timezone)
        except (ZoneInfoNotFoundError, ValueError):
            zone = ZoneInfo("UTC")
        start = period_start(queue.distribution_period, self.at, zone)
        if queue.period_started_at is not None and queue.period_started_at >= start:
            return False
        queue.period_started_at, queue.period_virtual_time = start, queue.virtual_time
        return True

    def _at_cap(self, member: QueueMembership) -> bool:
        return self.cap is not None and self.load.get(member.user_id, 0) >= self.cap

    def _why_not(self) -> dict[int, str]:
        """user id -> why they sit this pick out ("" when eligible)."""
        return self.why

    def _served(self, member: QueueMembership) -> None:
        """The member got a lead: their load, and whether the cap now sits them out."""
        self.load[member.user_id] = self.load.get(member.user_id, 0) + 1
        self.moved[member.pk] = member
        if self._at_cap(member):
            self.why[member.user_id] = Why.AT_CAP
            self.eligible = [m for m in self.eligible if m is not member]

    def pick(self) -> QueueMembership | None:
        queue, load, why_not = self.queue, self.load, self.why
        # Members at the cap sit this pick out, and do not hold the round back for everyone else.
        eligible = self.eligible
        if not eligible:
            return None
        owed = [m for m in eligible if m.turn_credits > 0]
        if owed:
            # A turn given back (a lead taken from them by hand): served first, and their pass stays where it is,
            # since this is the turn they already had (routing/availability/credit.py).
            member = min(owed, key=lambda m: m.id)
            member.turn_credits -= 1
            self.ledger.pick(weights=self.weights, why_not=why_not, picked=member.user_id)
            self._served(member)
            return member
        floor = queue.period_virtual_time if queue.return_policy == ReturnPolicy.CATCH_UP else queue.virtual_time

        def start(member):
            return max(member.rotation_pass, floor)

        if self.least_loaded:
            missed = self.missed
            member = min(eligible, key=lambda m: (load.get(m.user_id, 0) + missed.get(m.user_id, 0.0), start(m), m.id))
        else:
            member = min(eligible, key=lambda m: (start(m), m.id))
        member.rotation_pass = start(member) + 1.0 / self.weights[member.user_id]
        queue.virtual_time = min(max(m.rotation_pass, queue.virtual_time) for m in eligible)
        self.ledger.pick(weights=self.weights, why_not=why_not, picked=member.user_id)
        self._served(member)
        return member

    def nobody(self, times: int) -> None:
        """`times` leads found nobody eligible here: the ledger still counts who sat them out and why."""
        self.ledger.pick(weights=self.weights, why_not=self._why_not(), picked=None, times=times)

    def when_everyone_away(self) -> tuple[dt.datetime | None, bool]:
        """Nobody is eligible. If some member would be once in (only away or out of hours, under the cap), the
        queue's when_everyone_away decides: (hold until, stop following overflow)."""
        waiting = [m for m in self.members if self.absent[m.user_id] in (Why.AWAY, Why.OUT_OF_HOURS)]
        waiting = [m for m in waiting if not self._at_cap(m)]
        policy = self.queue.when_everyone_away
        if not waiting or policy == EveryoneAway.OVERFLOW:
            return None, False
        if policy == EveryoneAway.HOLD:
            back = [self.schedules[m.user_id].next_available_at(self.at) for m in waiting]
            back = [instant for instant in back if instant is not None]
            if back:
                return min(back), True
        return None, True  # exception, or a hold with nobody back within the horizon

    def why_nobody(self) -> str:
        """Who sat the pick out and why, member by member."""
        queue = self.queue
        if not self.members:
            return f"Nobody eligible in {queue.name}: it has no active members."
        why_not = self._why_not()
        away = [user_id for user_id, why in why_not.items() if why == Why.AWAY]
        notes: dict[int, str] = {}
        if away:  # only when nobody is in: the time off's note, for the words
            periods = TimeOff.objects.filter(user_id__in=away, start__lte=self.at, end__gt=self.at)
            for user_id, note in periods.order_by("-start").values_list("user_id", "note"):
                notes[user_id] = note
        words = []
        for member in self.members:
            name, why = member.user.get_username(), why_not[member.user_id]
            if why == Why.UNAVAILABLE:
                words.append(f"{name} marked unavailable")
            elif why == Why.AT_CAP:
                words.append(f"{name} at the cap of {self.cap} open leads")
            elif why == Why.AWAY:
                note = f": {notes[member.user_id]}" if notes.get(member.user_id) else ""
                until = until_words(self.schedules[member.user_id], self.at, why)
                words.append(f"{name} away (time off{note}) {until}")
            elif why == Why.OUT_OF_HOURS:
                words.append(f"{name} out of hours {until_words(self.schedules[member.user_id], self.at, why)}")
        return f"Nobody eligible in {queue.name}: {'; '.join(words)}."

    def save(self) -> None:
        """Write the rotation and the ledger once. Updates, not save(): the rotation is bookkeeping, and save()
        would write a membership history row per lead."""
        if self.moved:
            QueueMembership.objects.bulk_update(list(self.moved.values()), ["rotation_pass", "turn_credits"])
        fields = {}
        if self.moved:
            fields["virtual_time"] = self.queue.virtual_time
        if self.period_rolled:
            fields["period_started_at"] = self.queue.period_started_at
            fields["period_virtual_time"] = self.queue.period_virtual_time
        if fields:
            Queue.objects.filter(pk=self.queue.pk).update(**fields)
        self.ledger.write()
